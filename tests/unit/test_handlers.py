"""Running a handler: its outcome captures the action, history changes and errors, without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from chronik._runtime.handlers import run_handler
from chronik.core.actions import TransitionTo
from chronik.core.blueprint import Blueprint
from chronik.core.decide import decide_create
from chronik.core.events import StateEntered
from chronik.core.evolve import evolve, fold
from chronik.core.state import JobState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def start_state(bp: Blueprint, history: dict[str, Any] | None = None) -> JobState:
    state = fold(decide_create(uuid4(), bp, {"n": 2}, NOW))
    assert state is not None
    return evolve(state, StateEntered(at=NOW, state="start", from_state="start", updates=history or {}))


async def test_outcome_has_action_and_history_diff() -> None:
    bp = Blueprint("h")

    @bp.handler_for("start", is_start=True)
    async def handler(n: int, state_history: dict[str, Any], actions: Any) -> None:
        state_history["double"] = n * 2
        del state_history["gone"]
        actions.transition_to("end")

    bp.handler_for("end", is_end=True)(lambda: None)
    state = start_state(bp, {"gone": 1, "kept": 2})
    outcome = await run_handler(bp, state)
    assert outcome.action == TransitionTo("end")
    assert outcome.updates == {"double": 4}
    assert outcome.removed == ("gone",)
    assert outcome.error is None
    assert state.state_history == {"gone": 1, "kept": 2}, "the handler must not touch the folded state"


async def test_exception_becomes_an_error_with_type_and_traceback() -> None:
    bp = Blueprint("h")

    @bp.handler_for("start", is_start=True, transitions=())
    def handler() -> None:  # a plain function works too
        raise LookupError("no such order")

    outcome = await run_handler(bp, start_state(bp))
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.type, outcome.error.message) == (
        "HANDLER_ERROR",
        "LookupError",
        "no such order",
    )
    assert "LookupError: no such order" in outcome.traceback


async def test_second_action_and_non_json_values_are_errors() -> None:
    bp = Blueprint("h")

    @bp.handler_for("start", is_start=True)
    async def twice(actions: Any) -> None:
        actions.transition_to("end")
        actions.transition_to("end")

    outcome = await run_handler(bp, start_state(bp))
    assert outcome.error is not None and outcome.error.code == "ACTION_ERROR"

    other = Blueprint("h2")

    @other.handler_for("start", is_start=True)
    async def unserializable(state_history: dict[str, Any], actions: Any) -> None:
        state_history["x"] = object()
        actions.transition_to("end")

    outcome = await run_handler(other, start_state(other))
    assert outcome.error is not None and "not JSON" in outcome.error.message


async def test_data_stores_are_injected_by_name() -> None:
    prices = {"apple": 3}
    bp = Blueprint("stores", data_stores={"prices": prices})

    @bp.handler_for("start", is_start=True)
    async def start(data_stores: Any, context: Any, state_history: dict[str, Any], actions: Any) -> None:
        assert context.data_stores is data_stores
        state_history["price"] = data_stores.prices["apple"]
        actions.transition_to("end")

    bp.handler_for("end", is_end=True)(lambda: None)
    outcome = await run_handler(bp, start_state(bp))
    assert outcome.updates == {"price": 3}
