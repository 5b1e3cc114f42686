"""A job's task attempts from its task events (``core.attempts``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from chronik.core.attempts import ATTEMPT_EVENT_TYPES, task_attempts
from chronik.core.events import (
    EVENT_TYPES,
    BranchSpec,
    ErrorInfo,
    JobCancelled,
    JobRetried,
    ParallelDispatched,
    StateEntered,
    TaskCompleted,
    TaskDispatched,
    TaskFailed,
    TaskLost,
    TaskRetryScheduled,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_every_attempt_with_its_wait_run_and_outcome() -> None:
    task = uuid4()
    boom = ErrorInfo(code="TRANSIENT_ERROR", message="boom")
    events = [
        TaskDispatched(at=at(0), task_id=task, task_type="charge", state="start"),
        TaskFailed(at=at(5), task_id=task, attempt=1, worker_id="w1", error=boom, claimed_at=at(2)),
        TaskRetryScheduled(at=at(5), task_id=task, attempt=2, delay_seconds=10, error_code="TRANSIENT_ERROR"),
        TaskLost(
            at=at(40), task_id=task, attempt=2, worker_id="w2", reason="lease_expired", claimed_at=at(16)
        ),
        TaskRetryScheduled(at=at(40), task_id=task, attempt=3, delay_seconds=1, error_code="TRANSIENT_ERROR"),
        StateEntered(at=at(41), state="x", from_state="start"),  # not a task event: passed over
        TaskCompleted(at=at(50), task_id=task, attempt=3, worker_id="w1", status="paid", claimed_at=at(45)),
    ]
    first, second, third = task_attempts(events)
    assert (first.attempt, first.worker_id, first.outcome, first.error) == (1, "w1", "failed", boom)
    assert (first.wait_seconds, first.run_seconds) == (2.0, 3.0)
    assert (second.outcome, second.available_at, second.wait_seconds) == ("lease_expired", at(15), 1.0)
    assert second.error is not None and second.error.code == "TRANSIENT_ERROR"
    assert (third.outcome, third.status, third.wait_seconds, third.run_seconds) == (
        "completed",
        "paid",
        4.0,
        5.0,
    )
    assert {a.task_type for a in (first, second, third)} == {"charge"}


def test_branches_a_person_retry_and_withdrawn_attempts() -> None:
    one, two, single = uuid4(), uuid4(), uuid4()
    fan = ParallelDispatched(
        at=at(0),
        state="split",
        aggregate_into="join",
        branches=(BranchSpec(task_id=one, task_type="a"), BranchSpec(task_id=two, task_type="b")),
    )
    permanent = ErrorInfo(code="PERMANENT_ERROR", message="no")
    events = [
        fan,
        TaskCompleted(at=at(3), task_id=one, attempt=1, worker_id="w1", status="success", claimed_at=at(1)),
        TaskDispatched(at=at(4), task_id=single, task_type="c", state="next"),
        TaskFailed(at=at(6), task_id=single, attempt=1, worker_id="w1", error=permanent, claimed_at=at(5)),
        JobRetried(at=at(60), task_id=single, attempt=2, actor="ops"),
        JobCancelled(at=at(70), reason="enough"),
    ]
    found = {(a.task_type, a.attempt): a for a in task_attempts(events)}
    assert found["a", 1].outcome == "completed" and found["a", 1].state == "split"
    assert found["b", 1].outcome == "withdrawn" and found["b", 1].ended_at == at(70)
    assert found["c", 2].available_at == at(60) and found["c", 2].outcome == "withdrawn"
    assert found["c", 1].outcome == "failed"


def test_an_attempt_still_open_and_the_types_read() -> None:
    task = uuid4()
    (open_attempt,) = task_attempts([TaskDispatched(at=at(0), task_id=task, task_type="t", state="s")])
    assert open_attempt.outcome == "open" and open_attempt.wait_seconds is None
    assert set(ATTEMPT_EVENT_TYPES) <= set(EVENT_TYPES)
