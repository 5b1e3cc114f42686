"""Blueprint validation: every malformed state machine is refused, naming blueprint and state."""

from __future__ import annotations

from typing import Any

import pytest

from chronik.core.blueprint import Blueprint, normalize_endpoint
from chronik.core.edges import find_edges
from chronik.core.errors import BlueprintError


def linear() -> Blueprint:
    bp = Blueprint("linear", api_endpoint="linear")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("middle")

    @bp.handler_for("middle")
    async def middle(actions: Any, initial_data: dict[str, Any]) -> None:
        if initial_data.get("fail"):
            actions.transition_to("failed")
        else:
            actions.transition_to(state="done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("failed", is_end=True, is_failure=True)
    async def failed() -> None: ...

    return bp


def test_valid_blueprint_passes_and_knows_its_shape() -> None:
    bp = linear()
    assert bp.validate() == ()
    assert bp.start_state == "start"
    assert bp.end_states == {"done", "failed"}
    assert bp.states["middle"].transitions == {"done", "failed"}
    assert bp.states["failed"].is_failure


def test_no_start_state() -> None:
    bp = Blueprint("nostart")

    @bp.handler_for("only", is_end=True)
    async def only() -> None: ...

    with pytest.raises(BlueprintError, match="'nostart' has no start state"):
        bp.validate()


def test_two_start_states() -> None:
    bp = Blueprint("twostarts")

    @bp.handler_for("a", is_start=True, is_end=True)
    async def a() -> None: ...

    @bp.handler_for("b", is_start=True, is_end=True)
    async def b() -> None: ...

    with pytest.raises(BlueprintError, match=r"'twostarts' has 2 start states \('a', 'b'\)"):
        bp.validate()


def test_transition_to_unknown_state() -> None:
    bp = Blueprint("dangling")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("nowhere")

    with pytest.raises(
        BlueprintError, match="'dangling', state 'start': transition to unknown state 'nowhere'"
    ):
        bp.validate()


def test_unreachable_state() -> None:
    bp = Blueprint("island")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("end")

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    @bp.handler_for("orphan", is_end=True)
    async def orphan() -> None: ...

    with pytest.raises(BlueprintError, match="'island', state 'orphan': unreachable"):
        bp.validate()


def test_non_end_state_without_action() -> None:
    bp = Blueprint("stuck")

    @bp.handler_for("start", is_start=True)
    async def start() -> None: ...

    with pytest.raises(BlueprintError, match="'stuck', state 'start': the handler takes no action"):
        bp.validate()


def test_end_state_that_transitions() -> None:
    bp = Blueprint("loop")

    @bp.handler_for("start", is_start=True, is_end=True)
    async def start(actions: Any) -> None:
        actions.transition_to("start")

    with pytest.raises(BlueprintError, match="an end state cannot transition"):
        bp.validate()


def test_duplicate_handler_and_failure_without_end() -> None:
    bp = Blueprint("dupes")

    @bp.handler_for("a", is_start=True, is_end=True)
    async def a() -> None: ...

    with pytest.raises(BlueprintError, match="already registered"):
        bp.handler_for("a")(a)
    with pytest.raises(BlueprintError, match="is_failure=True needs is_end=True"):
        bp.handler_for("b", is_failure=True)(a)


def test_computed_target_is_a_warning_unless_declared() -> None:
    bp = Blueprint("dynamic")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any, initial_data: dict[str, Any]) -> None:
        actions.transition_to(initial_data["next"])

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    (warning,) = bp.validate()
    assert "'start'" in warning and "transitions=" in warning

    declared = Blueprint("declared")
    declared.handler_for("start", is_start=True, transitions=("end",))(start)
    declared.handler_for("end", is_end=True)(end)
    assert declared.validate() == ()


def test_handlers_must_take_named_arguments() -> None:
    bp = Blueprint("kwargs")

    async def greedy(**kwargs: Any) -> None: ...

    with pytest.raises(BlueprintError, match=r"takes \*kwargs"):
        bp.handler_for("a", is_start=True, is_end=True)(greedy)


def test_transitions_are_read_from_lambdas_but_not_from_builtins() -> None:
    assert find_edges(lambda actions: actions.transition_to("x")) == (("x", ""),)
    assert find_edges(print) is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("orders", "orders"), ("/jobs/orders", "orders"), ("/orders/", "orders")]
)
def test_endpoint_normalization(raw: str, expected: str) -> None:
    assert normalize_endpoint(raw, blueprint="b") == expected


@pytest.mark.parametrize("raw", ["", "a b", "a/b", "jobs/a/b"])
def test_bad_endpoint(raw: str) -> None:
    with pytest.raises(BlueprintError, match="must be one path segment"):
        Blueprint("b", api_endpoint=raw or "/")


def test_graphs_show_states_edges_and_labels() -> None:
    from chronik.core.graph import to_dot, to_mermaid

    bp = Blueprint("g")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("resize", transitions={"success": "done", "failure": "bad"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("bad", is_end=True, is_failure=True)
    async def bad() -> None: ...

    assert bp.states["start"].edges == (("done", "resize: success"), ("bad", "resize: failure"))
    mermaid = to_mermaid(bp)
    assert "[*] --> start" in mermaid and "start --> done : resize: success" in mermaid
    assert "bad --> [*] : failed" in mermaid
    dot = to_dot(bp)
    assert (
        '"start" -> "bad" [label="resize: failure"];' in dot
        and '"bad" [shape=doublecircle, color=red];' in dot
    )


def test_conditional_handlers_need_a_default_and_are_validated_and_drawn() -> None:
    from chronik.core.graph import to_mermaid

    bp = Blueprint("cond")

    @bp.handler_for("start").when("initial_data.vip")
    async def vip(actions: Any) -> None:
        actions.transition_to("fast")

    bp.handler_for("fast", is_end=True)(lambda: None)
    with pytest.raises(BlueprintError, match="has conditional handlers but no plain one"):
        bp.validate()

    @bp.handler_for("start", is_start=True)
    async def default(actions: Any) -> None:
        actions.transition_to("slow")

    bp.handler_for("slow", is_end=True)(lambda: None)
    assert bp.validate() == ()
    assert "start --> fast : when initial_data.vip" in to_mermaid(bp)
    with pytest.raises(BlueprintError, match="on the plain handler"):
        bp.handler_for("slow", is_end=True).when("initial_data.x")
    with pytest.raises(BlueprintError, match="column 1: unknown name 'vip'"):
        bp.handler_for("start").when("vip == 1")
