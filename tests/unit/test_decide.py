"""Deciders: from a handler's outcome to the events that record it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from chronik.core.actions import Actions, TransitionTo
from chronik.core.blueprint import Blueprint
from chronik.core.decide import (
    HandlerOutcome,
    decide_cancel,
    decide_create,
    decide_step,
    decide_transition_cap,
    history_diff,
)
from chronik.core.errors import ActionError, JobNotCancellable
from chronik.core.events import ErrorInfo, HandlerFailed, JobCancelled, JobFailed, JobFinished, StateEntered
from chronik.core.evolve import evolve, fold
from chronik.core.state import JobState

NOW = datetime(2026, 5, 5, tzinfo=UTC)


def blueprint() -> Blueprint:
    bp = Blueprint("flow")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("ok")

    @bp.handler_for("ok", is_end=True)
    async def ok() -> None: ...

    @bp.handler_for("bad", is_end=True, is_failure=True, transitions=())
    async def bad() -> None: ...

    return bp


def job(bp: Blueprint, state: str = "start") -> JobState:
    created = fold(decide_create(uuid4(), bp, {"n": 1}, NOW))
    assert created is not None
    if state == "start":
        return created
    return evolve(created, StateEntered(at=NOW, state=state, from_state="start"))


def test_transition_records_state_and_history_changes() -> None:
    bp = blueprint()
    outcome = HandlerOutcome(state="start", action=TransitionTo("ok"), updates={"a": 1}, removed=("b",))
    assert decide_step(job(bp), bp, outcome, NOW) == (
        StateEntered(at=NOW, state="ok", from_state="start", updates={"a": 1}, removed=("b",)),
    )


def test_no_action_in_a_non_end_state_fails_the_job() -> None:
    bp = blueprint()
    failed, ended = decide_step(job(bp), bp, HandlerOutcome(state="start"), NOW)
    assert isinstance(failed, HandlerFailed) and isinstance(ended, JobFailed)
    assert failed.error.code == "ACTION_ERROR"
    assert "returned without an action" in failed.error.message


def test_a_second_action_raises_at_the_call() -> None:
    actions = Actions("start")
    actions.transition_to("ok")
    with pytest.raises(ActionError, match="exactly one action per run"):
        actions.transition_to("bad")
    assert actions.taken == TransitionTo("ok")


def test_handler_error_is_recorded_then_fails_the_job() -> None:
    bp = blueprint()
    error = ErrorInfo(code="HANDLER_ERROR", type="ZeroDivisionError", message="division by zero")
    events = decide_step(job(bp), bp, HandlerOutcome(state="start", error=error, traceback="tb"), NOW)
    assert events == (
        HandlerFailed(at=NOW, state="start", error=error, traceback="tb"),
        JobFailed(at=NOW, state="start", error=error),
    )


def test_end_state_finishes_or_fails() -> None:
    bp = blueprint()
    done = decide_step(job(bp, "ok"), bp, HandlerOutcome(state="ok", updates={"ok": 1}), NOW)
    assert done == (JobFinished(at=NOW, state="ok", updates={"ok": 1}),)
    (failed,) = decide_step(job(bp, "bad"), bp, HandlerOutcome(state="bad"), NOW)
    assert isinstance(failed, JobFailed) and failed.error.code == "FAILURE_STATE"


def test_end_state_may_not_act() -> None:
    bp = blueprint()
    events = decide_step(job(bp, "ok"), bp, HandlerOutcome(state="ok", action=TransitionTo("start")), NOW)
    assert [type(e) for e in events] == [HandlerFailed, JobFailed]


def test_transition_to_unknown_state_at_run_time_fails_the_job() -> None:
    bp = blueprint()
    events = decide_step(job(bp), bp, HandlerOutcome(state="start", action=TransitionTo("ghost")), NOW)
    assert [type(e) for e in events] == [HandlerFailed, JobFailed]
    assert "unknown state 'ghost'" in events[0].error.message  # type: ignore[union-attr]


def test_outcome_for_a_job_that_moved_on_is_dropped() -> None:
    bp = blueprint()
    moved = job(bp, "ok")
    assert decide_step(moved, bp, HandlerOutcome(state="start", action=TransitionTo("ok")), NOW) == ()
    cancelled = evolve(job(bp), JobCancelled(at=NOW))
    assert decide_step(cancelled, bp, HandlerOutcome(state="start", action=TransitionTo("ok")), NOW) == ()


def test_cancel_only_before_the_end() -> None:
    bp = blueprint()
    assert decide_cancel(job(bp), NOW, reason="r", actor="a") == (
        JobCancelled(at=NOW, reason="r", actor="a"),
    )
    ended = evolve(job(bp, "ok"), JobFinished(at=NOW, state="ok"))
    with pytest.raises(JobNotCancellable, match="already ended with status 'finished'"):
        decide_cancel(ended, NOW)


def test_history_diff() -> None:
    assert history_diff({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == ({"b": 5, "d": 4}, ("c",))


def test_approval_waits_then_follows_the_decision() -> None:
    from chronik.core.actions import AwaitApproval
    from chronik.core.approvals import decide_approval
    from chronik.core.errors import InvalidDecision, JobNotAwaitingApproval
    from chronik.core.events import ApprovalGiven, ApprovalRequested

    bp = blueprint()
    waiting_for = AwaitApproval(message="ship it?", transitions={"approved": "ok", "rejected": "bad"})
    (requested,) = decide_step(job(bp), bp, HandlerOutcome(state="start", action=waiting_for), NOW)
    assert isinstance(requested, ApprovalRequested)
    waiting = evolve(job(bp), requested)
    assert waiting.status == "waiting_for_human" and waiting.approval is not None
    with pytest.raises(InvalidDecision, match="'maybe' is not one"):
        decide_approval(waiting, "maybe", NOW)
    given, entered = decide_approval(waiting, "rejected", NOW, comment="no", actor="ops")
    assert given == ApprovalGiven(at=NOW, decision="rejected", comment="no", actor="ops")
    moved = fold([given, entered], waiting)
    assert moved is not None and (moved.status, moved.current_state, moved.approval) == (
        "running",
        "bad",
        None,
    )
    with pytest.raises(JobNotAwaitingApproval):
        decide_approval(moved, "approved", NOW)


def test_a_job_past_its_transition_cap_fails_before_its_handler_runs() -> None:
    bp = Blueprint("cap")

    @bp.handler_for("a", is_start=True)
    async def a(actions: Any) -> None:
        actions.transition_to("a")

    created = decide_create(UUID(int=9), bp, {}, NOW, max_transitions=2, client="billing")
    state = fold(created)
    assert state is not None and state.client == "billing" and state.max_transitions == 2
    for expected in (1, 2):
        state = fold((StateEntered(at=NOW, state="a", from_state="a"),), state)
        assert state is not None and state.transitions == expected
        assert decide_transition_cap(state, NOW) == ()
    state = fold((StateEntered(at=NOW, state="a", from_state="a"),), state)
    assert state is not None
    (failed,) = decide_transition_cap(state, NOW)
    assert isinstance(failed, JobFailed) and failed.error.code == "MAX_TRANSITIONS_EXCEEDED"
    # Jobs from before the cap (max_transitions 0) are never capped.
    uncapped = fold(decide_create(UUID(int=8), bp, {}, NOW))
    assert uncapped is not None and decide_transition_cap(uncapped, NOW) == ()


def test_an_approval_past_its_deadline_and_a_wrong_link_token_decide_nothing() -> None:
    from datetime import timedelta

    from chronik.core.actions import AwaitApproval
    from chronik.core.approvals import decide_approval
    from chronik.core.errors import JobNotAwaitingApproval, JobNotFound

    bp = blueprint()
    asked = AwaitApproval(message="ok?", transitions={"approved": "ok"}, timeout_seconds=60)
    (requested,) = decide_step(job(bp), bp, HandlerOutcome(state="start", action=asked), NOW)
    waiting = evolve(job(bp), requested)
    assert waiting.approval is not None and len(waiting.approval.token) == 32
    with pytest.raises(JobNotAwaitingApproval, match="stopped waiting"):
        decide_approval(waiting, "approved", NOW + timedelta(seconds=60))
    for token in ("0" * 32, "é" * 32, ""):
        with pytest.raises(JobNotFound):
            decide_approval(waiting, "approved", NOW, token=token)
    assert decide_approval(waiting, "approved", NOW, token=waiting.approval.token)
