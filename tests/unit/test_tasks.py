"""Task deciders: each worker answer and each lost attempt leads where the rules say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from chronik.core.actions import Actions, DispatchTask
from chronik.core.blueprint import Blueprint
from chronik.core.decide import HandlerOutcome, decide_create, decide_step
from chronik.core.errors import ActionError, JobNotRetryable
from chronik.core.events import (
    AnyEvent,
    ErrorInfo,
    JobCancelled,
    JobFailed,
    JobQuarantined,
    JobRetried,
    StateEntered,
    TaskCompleted,
    TaskDispatched,
    TaskFailed,
    TaskLost,
    TaskResultIgnored,
    TaskRetryScheduled,
)
from chronik.core.evolve import fold
from chronik.core.retry import RetryPolicy
from chronik.core.state import JobState, JobStatus
from chronik.core.tasks import TaskResult, decide_retry, decide_task_lost, decide_task_result

NOW = datetime(2026, 3, 3, tzinfo=UTC)
TASK = UUID(int=1)
POLICY = RetryPolicy(base_seconds=1.0, max_seconds=60.0)


def blueprint(**dispatch: Any) -> Blueprint:
    bp = Blueprint("tasks")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task(
            "work", {"x": 1}, transitions={"success": "done", "review": "check"}, **dispatch
        )

    @bp.handler_for("check", is_end=True)
    async def check() -> None: ...

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def waiting(max_retries: int = 2, transitions: dict[str, str] | None = None) -> JobState:
    bp = blueprint()
    created = decide_create(uuid4(), bp, {}, NOW)
    action = DispatchTask(
        task_type="work",
        params={"x": 1},
        transitions=transitions or {"success": "done"},
        max_retries=max_retries,
    )
    dispatched = decide_step(
        fold(created),  # type: ignore[arg-type]
        bp,
        HandlerOutcome(state="start", action=action, updates={"seen": True}),
        NOW,
        new_id=lambda: TASK,
    )
    assert [type(e) for e in dispatched] == [TaskDispatched]
    state = fold([*created, *dispatched])
    assert state is not None
    return state


def result(state: JobState, **kwargs: Any) -> tuple[AnyEvent, ...]:
    values: dict[str, Any] = {"task_id": TASK, "attempt": 1, "worker_id": "w", "status": "success"}
    values.update(kwargs)
    return decide_task_result(state, TaskResult(**values), NOW, policy=POLICY, rand=0.5)


def apply(state: JobState, events: tuple[AnyEvent, ...]) -> JobState:
    after = fold(events, state)
    assert after is not None
    return after


def test_dispatch_waits_for_a_worker() -> None:
    state = waiting()
    assert state.status == JobStatus.WAITING_FOR_WORKER
    assert state.state_history == {"seen": True}
    assert state.task is not None and (state.task.task_id, state.task.attempt) == (TASK, 1)


def test_success_merges_data_and_moves_on() -> None:
    events = result(waiting(), data={"answer": 42})
    assert [type(e) for e in events] == [TaskCompleted, StateEntered]
    after = apply(waiting(), events)
    assert (after.status, after.current_state) == (JobStatus.RUNNING, "done")
    assert after.state_history == {"seen": True, "answer": 42}
    assert after.task is None


def test_non_object_data_is_recorded_but_not_merged() -> None:
    completed, entered = result(waiting(), data=[1, 2])
    assert isinstance(completed, TaskCompleted) and completed.data == [1, 2]
    assert isinstance(entered, StateEntered) and entered.updates == {}


def test_custom_and_unhandled_statuses() -> None:
    state = waiting(transitions={"success": "done", "review": "check"})
    assert isinstance(result(state, status="review")[1], StateEntered)
    _, failed = result(state, status="shrug")
    assert isinstance(failed, JobFailed) and failed.error.code == "UNHANDLED_TASK_STATUS"
    assert "'shrug'" in failed.error.message


def test_cancelled_status_without_transition_cancels_the_job() -> None:
    _, cancelled = result(waiting(), status="cancelled")
    assert isinstance(cancelled, JobCancelled) and cancelled.actor == "w"


@pytest.mark.parametrize(
    "code", ["TRANSIENT_ERROR", "RESOURCE_EXHAUSTED_ERROR", "TIMEOUT_ERROR", "INTERNAL_ERROR"]
)
def test_retryable_errors_retry_with_growing_delays_then_quarantine(code: str) -> None:
    state = waiting(max_retries=3)
    delays = []
    for attempt in (1, 2, 3):
        failed, retry = result(
            state, attempt=attempt, status="failure", error=ErrorInfo(code=code, message="x")
        )
        assert isinstance(failed, TaskFailed) and isinstance(retry, TaskRetryScheduled)
        assert retry.attempt == attempt + 1
        delays.append(retry.delay_seconds)
        state = apply(state, (failed, retry))
        assert state.task is not None and state.task.available_at == NOW + timedelta(
            seconds=retry.delay_seconds
        )
    assert delays == [0.75, 1.5, 3.0]
    _, quarantined = result(state, attempt=4, status="failure", error=ErrorInfo(code=code, message="x"))
    assert isinstance(quarantined, JobQuarantined) and quarantined.error.code == code
    assert "gave up after 4 attempt(s)" in quarantined.error.message
    assert apply(state, (_, quarantined)).status == JobStatus.QUARANTINED


@pytest.mark.parametrize("code", ["PERMANENT_ERROR", "SECURITY_ERROR", "DEPENDENCY_ERROR"])
def test_permanent_errors_quarantine_at_once(code: str) -> None:
    _, quarantined = result(waiting(), status="failure", error=ErrorInfo(code=code, message="no"))
    assert isinstance(quarantined, JobQuarantined)


def test_invalid_input_fails_or_follows_the_failure_transition() -> None:
    error = ErrorInfo(code="INVALID_INPUT_ERROR", message="bad")
    _, failed = result(waiting(), status="failure", error=error)
    assert isinstance(failed, JobFailed) and failed.error == error
    _, entered = result(
        waiting(transitions={"success": "done", "failure": "check"}), status="failure", error=error
    )
    assert isinstance(entered, StateEntered) and entered.state == "check"
    # The failure path runs, but the job carries the error and ends failed at a plain end.
    after = apply(waiting(transitions={"success": "done", "failure": "check"}), (_, entered))
    assert after.failure == error and after.status == JobStatus.RUNNING
    (ended,) = decide_step(after, blueprint(), HandlerOutcome(state="check"), NOW)
    assert isinstance(ended, JobFailed) and ended.error == error and ended.state == "check"


def test_an_attempt_no_worker_took_in_time_fails_the_job() -> None:
    state = waiting()
    state = apply(state, ())
    lost = decide_task_lost(
        state, task_id=TASK, attempt=1, worker_id="", reason="not_taken", claimed_at=None, at=NOW,
        policy=POLICY, rand=0.5,
    )  # fmt: skip
    assert [type(e) for e in lost] == [TaskLost, JobFailed]
    failed = lost[1]
    assert isinstance(failed, JobFailed) and failed.error.code == "DISPATCH_TIMEOUT"


def test_failure_without_error_is_transient() -> None:
    failed, retry = result(waiting(), status="failure")
    assert isinstance(failed, TaskFailed) and failed.error.code == "TRANSIENT_ERROR"
    assert isinstance(retry, TaskRetryScheduled)


def test_stale_results_are_recorded_as_ignored() -> None:
    state = waiting()
    (ignored,) = result(state, attempt=7)
    assert isinstance(ignored, TaskResultIgnored) and ignored.reason == "superseded by a later attempt"
    assert apply(state, (ignored,)).status == JobStatus.WAITING_FOR_WORKER
    finished = apply(state, result(state))
    (other,) = result(finished)
    assert isinstance(other, TaskResultIgnored)


def test_lost_attempts_retry_as_transient_or_timeout() -> None:
    state = waiting(max_retries=1)
    lost, retry = decide_task_lost(
        state, task_id=TASK, attempt=1, worker_id="w", reason="lease_expired", claimed_at=NOW, at=NOW,
        policy=POLICY, rand=0.0,
    )  # fmt: skip
    assert isinstance(lost, TaskLost) and isinstance(retry, TaskRetryScheduled)
    assert retry.error_code == "TRANSIENT_ERROR"
    state = apply(state, (lost, retry))
    lost, quarantined = decide_task_lost(
        state, task_id=TASK, attempt=2, worker_id="w", reason="timed_out", claimed_at=NOW, at=NOW,
        policy=POLICY, rand=0.0,
    )  # fmt: skip
    assert isinstance(quarantined, JobQuarantined) and quarantined.error.code == "TIMEOUT_ERROR"
    assert decide_task_lost(
        state, task_id=TASK, attempt=1, worker_id="w", reason="lease_expired", claimed_at=None, at=NOW,
        policy=POLICY, rand=0.0,
    ) == ()  # fmt: skip


def test_retry_only_a_quarantined_job_with_a_fresh_budget() -> None:
    state = waiting(max_retries=0)
    with pytest.raises(JobNotRetryable):
        decide_retry(state, NOW)
    state = apply(
        state, result(state, status="failure", error=ErrorInfo(code="PERMANENT_ERROR", message="x"))
    )
    (retried,) = decide_retry(state, NOW, actor="admin")
    assert retried == JobRetried(at=NOW, task_id=TASK, attempt=2, actor="admin")
    state = apply(state, (retried,))
    assert state.status == JobStatus.WAITING_FOR_WORKER and state.error is None
    assert state.task is not None and state.task.retries_left == 0


def test_dispatch_arguments_are_checked() -> None:
    actions = Actions("s")
    with pytest.raises(ActionError, match="needs transitions"):
        actions.dispatch_task("t", transitions={})
    with pytest.raises(ActionError, match="params must be a dict"):
        actions.dispatch_task("t", [1], transitions={"success": "x"})  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="timeout_seconds must be positive"):
        actions.dispatch_task("t", transitions={"success": "x"}, timeout_seconds=0)
    with pytest.raises(ActionError, match="max_retries must be an int"):
        actions.dispatch_task("t", transitions={"success": "x"}, max_retries=2.5)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="priority must be a 32-bit int"):
        actions.dispatch_task("t", transitions={"success": "x"}, priority=2**40)


def test_dispatch_targets_are_validated_statically() -> None:
    assert blueprint().validate() == ()
    bad = Blueprint("bad")

    @bad.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("work", transitions={"success": "nowhere"})

    with pytest.raises(Exception, match="unknown state 'nowhere'"):
        bad.validate()


def test_retry_policy_caps_and_grows() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=4)
    assert [policy.delay(n, 1.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 4, 4]
    assert [policy.delay(n, 0.0) for n in (1, 2, 3)] == [0.5, 1, 2]
