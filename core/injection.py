"""Handler arguments injected by name, the Avtomatika way.

A handler declares the parameters it wants; each is looked up, in order, among
the built-in names (``job_id``, ``initial_data``, ``state_history``, ``actions``,
``context``, ``current_state``), then the keys of ``state_history``, then the
keys of ``initial_data``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from .actions import Actions
from .errors import ActionError, BlueprintError

__all__ = [
    "BUILTIN_ARGUMENTS",
    "JobContext",
    "MissingArgument",
    "Parameter",
    "build_arguments",
    "plan_arguments",
]

BUILTIN_ARGUMENTS = (
    "job_id",
    "initial_data",
    "state_history",
    "actions",
    "context",
    "current_state",
    "data_stores",
    "aggregation_results",
    "task_files",
)


class MissingArgument(ActionError):
    """A handler asked for an argument that the job does not have."""

    code = "MISSING_ARGUMENT"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a handler: its name and whether it has a default."""

    name: str
    has_default: bool


@dataclass(slots=True)
class JobContext:
    """Everything a handler may look at, for handlers that prefer one object."""

    job_id: UUID
    blueprint: str
    current_state: str
    initial_data: dict[str, Any]
    state_history: dict[str, Any]
    actions: Actions
    data_stores: SimpleNamespace = field(default_factory=SimpleNamespace)
    """The blueprint's data stores by name (``data_stores.cache``), shared by all its jobs."""
    aggregation_results: dict[str, Any] = field(default_factory=dict)
    """In an aggregator's run: each branch's outcome by task id; empty otherwise."""
    task_files: Any = None
    """The job's S3 folder (``chronik.files.TaskFiles``) when S3 is configured."""


def plan_arguments(func: Callable[..., Any], *, where: str) -> tuple[Parameter, ...]:
    """Read a handler's parameters once, at registration."""
    params = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise BlueprintError(
                f"{where}: handler {func.__qualname__} takes *{param.name}; name each argument"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise BlueprintError(
                f"{where}: handler {func.__qualname__} has positional-only parameter {param.name!r}; "
                "arguments are passed by name"
            )
        params.append(Parameter(param.name, param.default is not param.empty))
    return tuple(params)


def build_arguments(params: tuple[Parameter, ...], context: JobContext) -> dict[str, Any]:
    """The keyword arguments for one handler call."""
    builtins: Mapping[str, Any] = {
        "job_id": context.job_id,
        "initial_data": context.initial_data,
        "state_history": context.state_history,
        "actions": context.actions,
        "context": context,
        "current_state": context.current_state,
        "data_stores": context.data_stores,
        "aggregation_results": context.aggregation_results,
    }
    if context.task_files is not None:
        builtins = {**builtins, "task_files": context.task_files}
    kwargs: dict[str, Any] = {}
    for param in params:
        for source in (builtins, context.state_history, context.initial_data):
            if param.name in source:
                kwargs[param.name] = source[param.name]
                break
        else:
            if not param.has_default:
                raise MissingArgument(
                    f"the handler of state {context.current_state!r} asks for {param.name!r}, which is not a "
                    f"built-in argument ({', '.join(BUILTIN_ARGUMENTS)}) nor a key of state_history or "
                    "initial_data; give it a default or produce that key earlier"
                )
    return kwargs
