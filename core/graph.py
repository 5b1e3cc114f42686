"""A blueprint's state machine as a diagram: Mermaid (the default) or Graphviz dot."""

from __future__ import annotations

from .blueprint import Blueprint

__all__ = ["to_dot", "to_mermaid"]


def _mermaid_id(name: str) -> str:
    # Mermaid state ids are words; any other name is drawn through an alias.
    return (
        name if name.replace("_", "").isalnum() else "s_" + "".join(c if c.isalnum() else "_" for c in name)
    )


def _mermaid_label(text: str) -> str:
    # A label runs to the end of its line; a state name is a word (see _mermaid_id).
    return text.replace("\n", " ")


def to_mermaid(blueprint: Blueprint) -> str:
    """A Mermaid ``stateDiagram-v2``; end states lead to ``[*]``, failure states are marked."""
    lines = [
        "stateDiagram-v2",
        f"    %% blueprint {blueprint.name} (POST /api/v1/jobs/{blueprint.api_endpoint})",
    ]
    for spec in blueprint.states.values():
        if _mermaid_id(spec.name) != spec.name:
            lines.append(f'    state "{spec.name.replace(chr(34), "#quot;")}" as {_mermaid_id(spec.name)}')
    if blueprint.start_state is not None:
        lines.append(f"    [*] --> {_mermaid_id(blueprint.start_state)}")
    for spec in blueprint.states.values():
        name = _mermaid_id(spec.name)
        conditional = [edge for c in blueprint.conditions.get(spec.name, ()) for edge in c.edges]
        for target, label in [*conditional, *spec.edges]:
            lines.append(
                f"    {name} --> {_mermaid_id(target)}" + (f" : {_mermaid_label(label)}" if label else "")
            )
        if spec.transitions is None:
            lines.append(f"    note right of {name} : targets computed at run time")
        if spec.is_end:
            lines.append(f"    {name} --> [*]" + (" : failed" if spec.is_failure else ""))
    return "\n".join(lines) + "\n"


def to_dot(blueprint: Blueprint) -> str:
    """A Graphviz digraph; the start state is bold, end states double circles, failure states red."""
    lines = [f"digraph {_dot_id(blueprint.name)} {{", "    rankdir=LR;", "    node [shape=circle];"]
    for spec in blueprint.states.values():
        attributes = []
        if spec.is_start:
            attributes.append("style=bold")
        if spec.is_end:
            attributes.append("shape=doublecircle")
        if spec.is_failure:
            attributes.append("color=red")
        lines.append(
            f"    {_dot_id(spec.name)}" + (f" [{', '.join(attributes)}]" if attributes else "") + ";"
        )
    for spec in blueprint.states.values():
        conditional = [edge for c in blueprint.conditions.get(spec.name, ()) for edge in c.edges]
        for target, label in [*conditional, *spec.edges]:
            lines.append(
                f"    {_dot_id(spec.name)} -> {_dot_id(target)}"
                + (f" [label={_dot_id(label)}]" if label else "")
                + ";"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    """A quoted Graphviz id: backslashes and quotes escaped, so any name is drawn as written."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
