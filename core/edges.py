"""Edges of a handler: the states its actions can lead to, read from its source.

A blueprint's transitions are found by reading each handler's source for literal
action calls (``actions.transition_to("state")``, a task's ``transitions={...}``),
as Avtomatika does; a handler whose targets are computed at run time declares
them with ``transitions=(...)`` instead.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "declared_or_found",
    "find_edges",
]

_TRANSITION_METHODS = frozenset({"transition_to"})
_DICT_TRANSITION_METHODS = frozenset({"dispatch_task", "await_human_approval", "run_blueprint"})


def declared_or_found(
    transitions: Iterable[str] | None, func: Callable[..., Any]
) -> tuple[tuple[str, str], ...] | None:
    """The handler's edges: those declared with ``transitions=``, else those read from its source."""
    return tuple((target, "") for target in transitions) if transitions is not None else find_edges(func)


def find_edges(func: Callable[..., Any]) -> tuple[tuple[str, str], ...] | None:
    """The literal (target, label) pairs of a handler's actions, read from its source.

    ``actions.transition_to("x")`` targets ``x`` (no label); ``actions.dispatch_task("t",
    transitions={"success": "y"})`` targets ``y``, labelled ``t: success``.

    ``None`` when the source is not available or a target is computed at run time.
    Reading the source is the one file access in core: it happens once, at
    registration, and only reads the user's own module.
    """
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    edges: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method = node.func.attr
        if method == "dispatch_parallel":
            into = _keyword(node, "aggregate_into")
            if not (isinstance(into, ast.Constant) and isinstance(into.value, str)):
                return None
            edges.append((into.value, "fan-out: all branches in"))
        elif method == "sleep":
            then = _keyword(node, "then") or (node.args[1] if len(node.args) > 1 else None)
            if not (isinstance(then, ast.Constant) and isinstance(then.value, str)):
                return None
            edges.append((then.value, "after sleep"))
        elif method in _TRANSITION_METHODS:
            arg = node.args[0] if node.args else _keyword(node, "state")
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                return None
            edges.append((arg.value, ""))
        elif method in _DICT_TRANSITION_METHODS:
            mapping = _keyword(node, "transitions")
            if not isinstance(mapping, ast.Dict):
                return None
            task = node.args[0] if node.args else _keyword(node, "task_type") or _keyword(node, "blueprint")
            task_name = (
                task.value if isinstance(task, ast.Constant) and isinstance(task.value, str) else "task"
            )
            if method == "await_human_approval":
                task_name = "approval"
            elif method == "run_blueprint":
                task_name = f"child {task_name}" if task_name != "task" else "child"
            for key, value in zip(mapping.keys, mapping.values, strict=True):
                if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                    return None
                status = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else "?"
                edges.append((value.value, f"{task_name}: {status}"))
    return tuple(dict.fromkeys(edges))


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)
