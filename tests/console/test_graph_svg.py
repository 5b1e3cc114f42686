"""The state graph the job page draws (no database): valid SVG, escaped, the path laid over it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from chronik import Blueprint
from chronik.api.console.graph_svg import state_graph_svg

SVG = "{http://www.w3.org/2000/svg}"


def flow() -> Blueprint:
    bp = Blueprint("flow", api_endpoint="flow")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("work", transitions={"success": "check", "failure": "broken"})

    @bp.handler_for("check")
    async def check(actions: Any) -> None:
        actions.await_human_approval("again?", transitions={"again": "start", "stay": "check", "no": "end"})

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    @bp.handler_for("broken", is_end=True, is_failure=True)
    async def broken() -> None: ...

    return bp


def groups(svg: str) -> tuple[dict[str, list[str]], dict[tuple[str, str], list[str]]]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    nodes = {
        g.get("data-state") or "": (g.get("class") or "").split()
        for g in root.iter(f"{SVG}g")
        if g.get("data-state")
    }
    edges = {
        (g.get("data-from") or "", g.get("data-to") or ""): (g.get("class") or "").split()
        for g in root.iter(f"{SVG}g")
        if g.get("data-from")
    }
    return nodes, edges


def test_the_blueprint_with_the_path_taken() -> None:
    moves = {(None, "start"): 1, ("start", "check"): 2, ("check", "start"): 1, ("check", "check"): 1}
    nodes, edges = groups(str(state_graph_svg(flow(), moves, current="check")))
    assert set(nodes) == {"start", "check", "end", "broken"}
    assert "current" in nodes["check"] and "visited" in nodes["start"] and "visited" not in nodes["end"]
    assert {"start", "visited"} <= set(nodes["start"]) and {"end", "failure"} <= set(nodes["broken"])
    assert "taken" in edges["start", "check"] and "taken" not in edges["check", "end"]
    assert "back" in edges["check", "start"] and "taken" in edges["check", "check"]
    svg = str(state_graph_svg(flow(), moves, current="check"))
    assert "\N{MULTIPLICATION SIGN}2" in svg  # the move made twice says so


def test_names_are_escaped_and_moves_off_the_blueprint_are_drawn_dashed() -> None:
    hostile = '<script>alert("x")</script>&'
    svg = str(
        state_graph_svg(flow(), {(None, "start"): 1, ("start", hostile): 1}, current=hostile, title=hostile)
    )
    assert "<script>" not in svg
    nodes, edges = groups(svg)
    assert "current" in nodes[hostile]
    assert "undeclared" in edges["start", hostile]


def test_without_the_blueprint_the_path_alone() -> None:
    nodes, edges = groups(str(state_graph_svg(None, {(None, "a"): 1, ("a", "b"): 3}, current="b")))
    assert set(nodes) == {"a", "b"} and "current" in nodes["b"] and "taken" in edges["a", "b"]


def test_a_long_chain_lays_out_without_recursion() -> None:
    moves = {(f"s{i}", f"s{i + 1}"): 1 for i in range(1000)}
    nodes, _edges = groups(str(state_graph_svg(None, {(None, "s0"): 1, **moves}, current="s1000")))
    assert len(nodes) == 1001
