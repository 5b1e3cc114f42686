"""A blueprint's state graph as inline SVG, drawn on the server: no Graphviz binary, no script.

A small layered layout in the manner of Graphviz's ``dot`` (Sugiyama): back edges are found by a
depth-first walk from the start state, each state goes in the column of its longest path from
the start, an edge that spans several columns gets a waypoint in each column it crosses (so it
keeps a lane of its own instead of running through the states between), and a few barycentre
sweeps order each column to untangle the edges. Forward edges are curves from left to right,
back edges run in lanes below the states, loops sit above their state.

The job's path is laid over it: the states it visited and the moves it made (counted, from its
``StateEntered`` events) are highlighted, its current state is marked. Moves the blueprint does
not declare (targets computed at run time, or a blueprint that changed since) are drawn dashed.
Every name and label is escaped here, so the markup is safe to put in a page as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from itertools import pairwise

from markupsafe import Markup

from chronik.core.blueprint import Blueprint

__all__ = ["state_graph_svg"]

_NODE_HEIGHT = 34
_ROW_GAP = 26
_COLUMN_GAP = 70
_PAD = 14
_LOOP_ROOM = 34
"""Space above the top row for loops (a state that moves to itself)."""
_CHAR_WIDTH = 7.2
_LABEL_CHAR_WIDTH = 6.0
_MAX_GAP = 260.0
_MAX_LABEL = 26
_SWEEPS = 4
_WAYPOINT_WIDTH = 16.0
_LANE = 14.0
"""The spacing of back-edge lanes below the states."""
_WAYPOINT = "\x00"
"""Marks a waypoint's id (no state name holds a NUL)."""


class _Edge:
    __slots__ = ("back", "declared", "labels", "source", "target", "times", "via")

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        self.labels: list[str] = []
        self.declared = False
        self.times = 0
        self.back = False
        self.via: list[str] = []
        """Waypoints in the columns a long forward edge crosses."""


def state_graph_svg(
    blueprint: Blueprint | None,
    moves: Mapping[tuple[str | None, str], int],
    *,
    current: str,
    title: str = "",
) -> Markup:
    """The graph of ``blueprint`` with the job's ``moves`` ((from, to) → times; ``(None, start)``
    for its start) highlighted and ``current`` marked; the job's path alone without a blueprint."""
    names: list[str] = []
    kinds: dict[str, set[str]] = {}
    edges: dict[tuple[str, str], _Edge] = {}

    def node(name: str) -> None:
        if name not in kinds:
            names.append(name)
            kinds[name] = set()

    def edge(source: str, target: str) -> _Edge:
        node(source)
        node(target)
        return edges.setdefault((source, target), _Edge(source, target))

    start = blueprint.start_state if blueprint is not None else None
    if blueprint is not None:
        for spec in blueprint.states.values():
            node(spec.name)
            kinds[spec.name].update(
                kind for kind, on in (("start", spec.is_start), ("end", spec.is_end),
                                      ("failure", spec.is_failure)) if on
            )  # fmt: skip
        for spec in blueprint.states.values():
            conditional = [pair for c in blueprint.conditions.get(spec.name, ()) for pair in c.edges]
            for target, label in [*conditional, *spec.edges]:
                found = edge(spec.name, target)
                found.declared = True
                if label and label not in found.labels:
                    found.labels.append(label)
    for (source, target), times in moves.items():
        node(target)
        kinds[target].add("visited")
        if source is None:
            start = start or target
            continue
        edge(source, target).times += times
        kinds[source].add("visited")
    if current:
        node(current)
        kinds[current].update(("current", "visited"))
    if not names:
        return Markup("")
    columns = _columns(names, edges, start)
    return _draw(names, kinds, edges, columns, title=title)


def _columns(
    names: Sequence[str], edges: Mapping[tuple[str, str], _Edge], start: str | None
) -> list[list[str]]:
    """States (and waypoints) in columns, each column in the order that crosses the fewest edges."""
    successors: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        if source != target:
            successors[source].append(target)
    seen: set[str] = set()
    on_path: set[str] = set()
    finished: list[str] = []

    def walk(first: str) -> None:
        # Iterative, so a long chain of states cannot exhaust the recursion limit.
        stack: list[tuple[str, int]] = [(first, 0)]
        seen.add(first)
        on_path.add(first)
        while stack:
            name, index = stack[-1]
            if index < len(successors[name]):
                stack[-1] = (name, index + 1)
                target = successors[name][index]
                if target in on_path:
                    edges[name, target].back = True
                elif target not in seen:
                    seen.add(target)
                    on_path.add(target)
                    stack.append((target, 0))
            else:
                stack.pop()
                on_path.discard(name)
                finished.append(name)

    for first in [start] if start in successors else []:
        walk(first)
    for name in names:
        if name not in seen:
            walk(name)
    column: dict[str, int] = {}
    for name in reversed(finished):  # a topological order of the edges that are not back edges
        column.setdefault(name, 0)
        for target in successors[name]:
            if not edges[name, target].back:
                column[target] = max(column.get(target, 0), column[name] + 1)
    columns: list[list[str]] = [[] for _ in range(max(column.values()) + 1)]
    for name in names:
        columns[column[name]].append(name)
    for number, found in enumerate(edges.values()):
        if found.back or found.source == found.target:
            continue
        for crossed in range(column[found.source] + 1, column[found.target]):
            waypoint = f"{_WAYPOINT}{number}:{crossed}"
            found.via.append(waypoint)
            columns[crossed].append(waypoint)
    _untangle(columns, edges)
    return columns


def _untangle(columns: list[list[str]], edges: Mapping[tuple[str, str], _Edge]) -> None:
    """Order each column by the mean row of its neighbours, sweeping right, then left, a few times."""
    neighbours: dict[str, list[str]] = {}
    for found in edges.values():
        chain = [found.source, *found.via, found.target]
        for one, other in pairwise(chain):
            if one != other:
                neighbours.setdefault(one, []).append(other)
                neighbours.setdefault(other, []).append(one)
    column_of = {name: number for number, column in enumerate(columns) for name in column}
    row = {name: index for column in columns for index, name in enumerate(column)}
    for sweep in range(_SWEEPS):
        order = range(1, len(columns)) if sweep % 2 == 0 else range(len(columns) - 2, -1, -1)
        for number in order:

            def centre(name: str, number: int = number) -> float:
                others = [row[other] for other in neighbours.get(name, ()) if column_of[other] != number]
                return sum(others) / len(others) if others else row[name]

            columns[number].sort(key=centre)
            row.update((name, index) for index, name in enumerate(columns[number]))


def _shown(found: _Edge) -> str:
    """An edge's label as drawn: its labels, cut short, and how many times the job took it."""
    label = ", ".join(found.labels)
    shown = label if len(label) <= 2 * _MAX_LABEL else label[: 2 * _MAX_LABEL - 1] + "…"
    if found.times > 1:
        shown = f"{shown} \N{MULTIPLICATION SIGN}{found.times}".strip()
    return shown


def _gaps(columns: Sequence[Sequence[str]], edges: Mapping[tuple[str, str], _Edge]) -> list[float]:
    """The room after each column: enough for the label of an edge leaving it rightwards."""
    column_of = {name: index for index, column in enumerate(columns) for name in column}
    gaps = [float(_COLUMN_GAP)] * len(columns)
    for found in edges.values():
        first = column_of[found.source]
        if not found.back and column_of[found.target] > first:
            # The label sits on the first stretch of the edge (see _route).
            need = len(_shown(found)) * _LABEL_CHAR_WIDTH + 36
            gaps[first] = min(_MAX_GAP, max(gaps[first], need))
    return gaps


def _width(name: str) -> float:
    if name.startswith(_WAYPOINT):
        return _WAYPOINT_WIDTH
    return min(_MAX_LABEL, len(name)) * _CHAR_WIDTH + 26


def _draw(
    names: Sequence[str],
    kinds: Mapping[str, set[str]],
    edges: Mapping[tuple[str, str], _Edge],
    columns: Sequence[Sequence[str]],
    *,
    title: str,
) -> Markup:
    widths = [max(_width(name) for name in column) for column in columns]
    tallest = max(len(column) for column in columns)
    height_of_rows = tallest * _NODE_HEIGHT + (tallest - 1) * _ROW_GAP
    box: dict[str, tuple[float, float, float]] = {}  # name -> (x, y, width)
    gaps = _gaps(columns, edges)
    x = float(_PAD)
    for column, width, gap in zip(columns, widths, gaps, strict=True):
        top = (
            _PAD
            + _LOOP_ROOM
            + (height_of_rows - (len(column) * _NODE_HEIGHT + (len(column) - 1) * _ROW_GAP)) / 2
        )
        for index, name in enumerate(column):
            box[name] = (
                x + (width - _width(name)) / 2,
                top + index * (_NODE_HEIGHT + _ROW_GAP),
                _width(name),
            )
        x += width + gap
    band_bottom = _PAD + _LOOP_ROOM + height_of_rows
    lanes = 0
    parts: list[str] = []
    for found in edges.values():
        lane = None
        if found.back and found.source != found.target:
            lanes += 1
            lane = band_bottom + 8 + lanes * _LANE
        path, label_at = _route(found, box, lane)
        classes = ["edge"]
        if found.times:
            classes.append("taken")
        if found.back:
            classes.append("back")
        if not found.declared:
            classes.append("undeclared")
        label = ", ".join(found.labels)
        shown = _shown(found)
        hint = f"{found.source} → {found.target}" + (f" ({label})" if label else "")
        if found.times:
            hint += f": taken {found.times} time(s)"
        marker = "arrow-taken" if found.times else "arrow"
        parts.append(
            f'<g class="{" ".join(classes)}" data-from="{escape(found.source)}" '
            f'data-to="{escape(found.target)}">'
            f"<title>{escape(hint)}</title>"
            f'<path d="{path}" marker-end="url(#{marker})"/>'
            + (
                f'<text x="{label_at[0]:.1f}" y="{label_at[1]:.1f}" text-anchor="middle">'
                f"{escape(shown)}</text>"
                if shown
                else ""
            )
            + "</g>"
        )
    for name in names:
        left, top, width = box[name]
        classes = ["node", *sorted(kinds[name])]
        shown = name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"
        current = ' aria-current="step"' if "current" in kinds[name] else ""
        parts.append(
            f'<g class="{" ".join(classes)}" data-state="{escape(name)}"{current}>'
            f"<title>{escape(name)}</title>"
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{_NODE_HEIGHT}" rx="'
            f'{_NODE_HEIGHT / 2 if "end" in kinds[name] else 6}"/>'
            f'<text x="{left + width / 2:.1f}" y="{top + _NODE_HEIGHT / 2 + 4:.1f}" text-anchor="middle">'
            f"{escape(shown)}</text></g>"
        )
    full_width = x - gaps[-1] + _PAD
    full_height = band_bottom + (8 + lanes * _LANE + 6 if lanes else 0) + _PAD
    label = escape(title or "state graph")
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="state-graph" role="img" aria-label="{label}" '
        f'viewBox="0 0 {full_width:.0f} {full_height:.0f}" '
        f'width="{full_width:.0f}" height="{full_height:.0f}">'
        f"<title>{label}</title><defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow"/></marker>'
        '<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow-taken"/></marker>'
        "</defs>" + "".join(parts) + "</svg>"
    )


def _route(
    found: _Edge, box: Mapping[str, tuple[float, float, float]], lane: float | None
) -> tuple[str, tuple[float, float]]:
    """The SVG path of an edge and where its label goes; a back edge runs along ``lane``."""
    sx, sy, sw = box[found.source]
    tx, ty, tw = box[found.target]
    if found.source == found.target:  # a loop over the top of the state
        cx = sx + sw / 2
        path = (
            f"M{cx - 10:.1f},{sy:.1f} C{cx - 30:.1f},{sy - 32:.1f} "
            f"{cx + 30:.1f},{sy - 32:.1f} {cx + 10:.1f},{sy:.1f}"
        )
        return path, (cx, sy - 26)
    if lane is not None:  # back: down from the source, along the lane, up into the target
        x0, y0 = sx + sw / 2, sy + _NODE_HEIGHT
        x3, y3 = tx + tw / 2, ty + _NODE_HEIGHT
        turn = min(24.0, abs(x0 - x3) / 2)
        step = -turn if x3 < x0 else turn
        path = (
            f"M{x0:.1f},{y0:.1f} L{x0:.1f},{lane - turn:.1f} Q{x0:.1f},{lane:.1f} {x0 + step:.1f},{lane:.1f} "
            f"L{x3 - step:.1f},{lane:.1f} Q{x3:.1f},{lane:.1f} {x3:.1f},{lane - turn:.1f} L{x3:.1f},{y3:.1f}"
        )
        return path, ((x0 + x3) / 2, lane - 4)
    # Forward: from the source's right side through each waypoint to the target's left side.
    points = [(sx + sw, sy + _NODE_HEIGHT / 2)]
    points += [(box[w][0] + _WAYPOINT_WIDTH / 2, box[w][1] + _NODE_HEIGHT / 2) for w in found.via]
    points.append((tx, ty + _NODE_HEIGHT / 2))
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    label_at = (0.0, 0.0)
    for index, ((x0, y0), (x3, y3)) in enumerate(pairwise(points)):
        bend = (x3 - x0) / 2
        path += f" C{x0 + bend:.1f},{y0:.1f} {x3 - bend:.1f},{y3:.1f} {x3:.1f},{y3:.1f}"
        if index == 0:  # the label sits on the first stretch (the gap after the source is sized for it)
            label_at = ((x0 + x3) / 2, (y0 + y3) / 2 - 4)
    return path, label_at
