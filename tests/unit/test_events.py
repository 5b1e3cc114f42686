"""Event types: stable tags, and a lossless round trip through JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from chronik.core.events import (
    EVENT_TYPES,
    ApprovalGiven,
    ApprovalRequested,
    ApprovalTimedOut,
    BranchesJoined,
    BranchFailed,
    BranchSpec,
    ChildEnded,
    ChildStarted,
    ErrorInfo,
    FilesStored,
    ForkedFrom,
    HandlerFailed,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobFinished,
    JobForked,
    JobQuarantined,
    JobRetried,
    ParallelDispatched,
    StateEntered,
    TaskCompleted,
    TaskDispatched,
    TaskFailed,
    TaskLost,
    TaskResultIgnored,
    TaskRetryScheduled,
    TimedOut,
    TimerFired,
    TimerStarted,
    decode_event,
    encode_event_data,
)

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
TASK = uuid4()


def test_stored_tags_never_change() -> None:
    # A snapshot: renaming a tag would orphan every stored event of that type.
    assert sorted(EVENT_TYPES) == [
        "ApprovalGiven",
        "ApprovalRequested",
        "ApprovalTimedOut",
        "BranchFailed",
        "BranchesJoined",
        "ChildEnded",
        "ChildStarted",
        "FilesStored",
        "HandlerFailed",
        "JobCancelled",
        "JobCreated",
        "JobFailed",
        "JobFinished",
        "JobForked",
        "JobQuarantined",
        "JobRetried",
        "ParallelDispatched",
        "StateEntered",
        "TaskCompleted",
        "TaskDispatched",
        "TaskFailed",
        "TaskLost",
        "TaskResultIgnored",
        "TaskRetryScheduled",
        "TimedOut",
        "TimerFired",
        "TimerStarted",
    ]


def test_every_event_type_round_trips() -> None:
    error = ErrorInfo(code="HANDLER_ERROR", type="ValueError", message="boom")
    samples = [
        JobCreated(at=AT, job_id=uuid4(), blueprint="b", start_state="s", initial_data={"x": [1, 2]}),
        StateEntered(at=AT, state="b", from_state="a", updates={"k": {"n": 1}}, removed=("old",)),
        HandlerFailed(at=AT, state="a", error=error, traceback="tb"),
        JobFinished(at=AT, state="done", updates={"done": 1}),
        JobFailed(at=AT, state="a", error=error),
        JobCancelled(at=AT, reason="r", actor="client"),
        TaskDispatched(
            at=AT, task_id=TASK, task_type="t", state="s", params={"p": 1}, transitions={"success": "x"}
        ),
        TaskCompleted(at=AT, task_id=TASK, attempt=1, worker_id="w", status="success", data=[1, "two"]),
        TaskFailed(at=AT, task_id=TASK, attempt=2, worker_id="w", error=error, claimed_at=AT),
        TaskLost(at=AT, task_id=TASK, attempt=3, worker_id="w", reason="lease_expired"),
        TaskRetryScheduled(at=AT, task_id=TASK, attempt=4, delay_seconds=1.5, error_code="TRANSIENT_ERROR"),
        TaskResultIgnored(at=AT, task_id=TASK, attempt=1, worker_id="w", status="success", reason="stale"),
        JobQuarantined(at=AT, state="s", error=error),
        JobRetried(at=AT, task_id=TASK, attempt=5, actor="admin"),
        ApprovalRequested(at=AT, state="s", message="ok?", transitions={"yes": "a"}),
        ApprovalGiven(at=AT, decision="yes", comment="c", actor="ops"),
        ApprovalTimedOut(at=AT, state="s"),
        TimerStarted(at=AT, state="s", fire_at=AT, then="t", updates={"u": 1}),
        TimerFired(at=AT, state="s", then="t"),
        TimedOut(at=AT, scope="state", state="s", deadline_at=AT),
        ParallelDispatched(
            at=AT,
            state="s",
            aggregate_into="agg",
            branches=(BranchSpec(task_id=TASK, task_type="t", params={"i": 1}, timeout_seconds=2.0),),
        ),
        BranchFailed(at=AT, task_id=TASK, error=error),
        BranchesJoined(at=AT, state="agg", from_state="s", state_deadline_at=AT, on_timeout="late"),
        ChildStarted(at=AT, state="s", child_job_id=uuid4(), blueprint="c", transitions={"success": "x"}),
        ChildEnded(at=AT, child_job_id=uuid4(), status="failed", result={"r": 1}, error=error),
        FilesStored(at=AT, keys=("jobs/x/a.bin",), by="w"),
        JobForked(at=AT, new_job_id=uuid4(), from_version=3, actor="ops"),
        JobCreated(
            at=AT,
            job_id=uuid4(),
            blueprint="b",
            start_state="s",
            state_history={"k": [1]},
            forked_from=ForkedFrom(job_id=uuid4(), version=3),
        ),
    ]
    assert {type(s).__struct_config__.tag for s in samples} == set(EVENT_TYPES)
    for sample in samples:
        tag = type(sample).__struct_config__.tag
        assert decode_event(tag, encode_event_data(sample)) == sample


def test_unknown_type_decodes_to_none() -> None:
    assert decode_event("NoSuchEvent", b"{}") is None


def test_old_event_without_new_fields_still_decodes() -> None:
    # Fields are only ever added with defaults, so an event stored before they existed still reads.
    stored = b'{"type":"StateEntered","at":"2026-01-02T03:04:05Z","state":"b","from_state":"a"}'
    event = decode_event("StateEntered", stored)
    assert event == StateEntered(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), state="b", from_state="a")
