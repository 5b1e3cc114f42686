"""The fold: each event's effect on a job's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from chronik.core.events import (
    ErrorInfo,
    HandlerFailed,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobFinished,
    StateEntered,
)
from chronik.core.evolve import EventOutOfOrder, evolve, fold, replay
from chronik.core.state import JobState, JobStatus, result_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def created() -> JobCreated:
    return JobCreated(at=T0, job_id=uuid4(), blueprint="bp", start_state="start", initial_data={"n": 1})


def test_created_starts_running_in_start_state() -> None:
    event = created()
    state = evolve(None, event)
    assert state == JobState(
        job_id=event.job_id,
        blueprint="bp",
        status=JobStatus.RUNNING,
        current_state="start",
        initial_data={"n": 1},
        state_history={},
        version=1,
        created_at=T0,
        updated_at=T0,
    )


def test_a_stream_must_start_with_created() -> None:
    with pytest.raises(EventOutOfOrder):
        evolve(None, JobCancelled(at=T0))
    state = evolve(None, created())
    with pytest.raises(EventOutOfOrder):
        evolve(state, created())


def test_transitions_merge_history_and_count_versions() -> None:
    state = fold(
        [
            created(),
            StateEntered(at=at(1), state="a", from_state="start", updates={"x": 1, "y": 2}),
            StateEntered(at=at(2), state="done", from_state="a", updates={"x": 3}, removed=("y",)),
            JobFinished(at=at(3), state="done", updates={"done": {"ok": True}}),
        ]
    )
    assert state is not None
    assert state.version == 4
    assert state.current_state == "done"
    assert state.state_history == {"x": 3, "done": {"ok": True}}
    assert state.status == JobStatus.FINISHED
    assert state.finished_at == at(3)
    assert state.updated_at == at(3)
    assert result_of(state) == {"ok": True}


def test_handler_failure_then_job_failed() -> None:
    error = ErrorInfo(code="HANDLER_ERROR", type="KeyError", message="'x'")
    state = fold([created(), HandlerFailed(at=at(1), state="start", error=error)])
    assert state is not None and state.status == JobStatus.RUNNING and state.version == 2
    state = evolve(state, JobFailed(at=at(1), state="start", error=error))
    assert state.status == JobStatus.FAILED
    assert state.error == error
    assert state.is_terminal
    assert result_of(state) is None


def test_cancel_records_reason() -> None:
    state = fold([created(), JobCancelled(at=at(5), reason="no longer needed", actor="client")])
    assert state is not None
    assert state.status == JobStatus.CANCELLED
    assert state.error == ErrorInfo(code="CANCELLED", message="no longer needed")
    assert state.finished_at == at(5)


def test_fold_does_not_mutate_earlier_states() -> None:
    first = fold([created(), StateEntered(at=at(1), state="a", from_state="start", updates={"x": 1})])
    assert first is not None
    second = evolve(first, StateEntered(at=at(2), state="b", from_state="a", updates={"x": 2}))
    assert first.state_history == {"x": 1}
    assert second.state_history == {"x": 2}


def test_result_is_none_until_the_job_ends() -> None:
    state = fold([created(), StateEntered(at=at(1), state="a", from_state="start", updates={"a": 1})])
    assert state is not None and result_of(state) is None


def test_replay_gives_the_state_after_each_event() -> None:
    events = [
        created(),
        StateEntered(at=at(1), state="a", from_state="start", updates={"x": 1}),
        JobFinished(at=at(2), state="a"),
    ]
    states = replay(events)
    assert [(s.version, s.status, s.current_state) for s in states] == [
        (1, JobStatus.RUNNING, "start"),
        (2, JobStatus.RUNNING, "a"),
        (3, JobStatus.FINISHED, "a"),
    ]
    assert states[-1] == fold(events)


def test_cancel_clears_a_pending_approval() -> None:
    from chronik.core.events import ApprovalRequested

    state = fold(
        [created(), ApprovalRequested(at=at(1), state="start", message="ok?", transitions={"yes": "a"})]
    )
    assert state is not None and state.approval is not None
    assert evolve(state, JobCancelled(at=at(2))).approval is None
