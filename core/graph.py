"""A blueprint's state machine as a diagram: Mermaid (the default) or Graphviz dot."""

from __future__ import annotations

from .blueprint import Blueprint

__all__ = ["to_dot", "to_mermaid"]


def to_mermaid(blueprint: Blueprint) -> str:
    """A Mermaid ``stateDiagram-v2``; end states lead to ``[*]``, failure states are marked."""
    lines = [
        "stateDiagram-v2",
        f"    %% blueprint {blueprint.name} (POST /api/v1/jobs/{blueprint.api_endpoint})",
    ]
    if blueprint.start_state is not None:
        lines.append(f"    [*] --> {blueprint.start_state}")
    for spec in blueprint.states.values():
        conditional = [edge for c in blueprint.conditions.get(spec.name, ()) for edge in c.edges]
        for target, label in [*conditional, *spec.edges]:
            lines.append(f"    {spec.name} --> {target}" + (f" : {label}" if label else ""))
        if spec.transitions is None:
            lines.append(f"    note right of {spec.name} : targets computed at run time")
        if spec.is_end:
            lines.append(f"    {spec.name} --> [*]" + (" : failed" if spec.is_failure else ""))
    return "\n".join(lines) + "\n"


def to_dot(blueprint: Blueprint) -> str:
    """A Graphviz digraph; the start state is bold, end states double circles, failure states red."""
    lines = [f'digraph "{blueprint.name}" {{', "    rankdir=LR;", "    node [shape=circle];"]
    for spec in blueprint.states.values():
        attributes = []
        if spec.is_start:
            attributes.append("style=bold")
        if spec.is_end:
            attributes.append("shape=doublecircle")
        if spec.is_failure:
            attributes.append("color=red")
        lines.append(f'    "{spec.name}"' + (f" [{', '.join(attributes)}]" if attributes else "") + ";")
    for spec in blueprint.states.values():
        conditional = [edge for c in blueprint.conditions.get(spec.name, ()) for edge in c.edges]
        for target, label in [*conditional, *spec.edges]:
            escaped = label.replace('"', '\\"')
            lines.append(
                f'    "{spec.name}" -> "{target}"' + (f' [label="{escaped}"]' if label else "") + ";"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"
