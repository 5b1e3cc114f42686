"""The event types of a job's stream.

Each event is a frozen msgspec Struct tagged by an explicit name, so renaming or
moving a class never changes what is stored. Events evolve only by appending
fields with defaults; history is never rewritten. The time an event happened is
part of the event (``at``), which keeps the fold pure: replaying the same events
gives the same state, byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "ApprovalGiven",
    "ApprovalRequested",
    "ApprovalTimedOut",
    "BranchFailed",
    "BranchSpec",
    "BranchesJoined",
    "ChildEnded",
    "ChildStarted",
    "ErrorInfo",
    "Event",
    "FilesStored",
    "ForkedFrom",
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
    "decode_event",
    "encode_event_data",
]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What went wrong, as stored in events and shown to clients."""

    code: str
    """A machine-readable code, e.g. ``HANDLER_ERROR`` or ``FAILURE_STATE``."""
    message: str
    """What happened, for a person."""
    type: str | None = None
    """The Python exception type, when an exception caused it."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event; ``at`` is when it happened (UTC)."""

    at: datetime


class ForkedFrom(msgspec.Struct, frozen=True, kw_only=True):
    """The job and version a forked job was started from (``POST /jobs/{id}/fork``)."""

    job_id: UUID
    version: int


class JobCreated(Event, frozen=True, tag="JobCreated"):
    """A client created the job; it starts in ``start_state``."""

    job_id: UUID
    blueprint: str
    start_state: str
    initial_data: dict[str, Any] = {}
    parent_job_id: UUID | None = None
    """The job that started this one with ``actions.run_blueprint``; it resumes when this one ends."""
    deadline_at: datetime | None = None
    """The job's own timeout: past it, the job fails with ``JOB_TIMEOUT``."""
    state_deadline_at: datetime | None = None
    """The start state's timeout (see ``StateEntered.state_deadline_at``)."""
    on_timeout: str | None = None
    webhook_url: str | None = None
    """Where to announce the job's end (and quarantine), as the client asked at creation."""
    traceparent: str | None = None
    """The W3C trace context of the job's trace: every step and task span joins it."""
    client: str = ""
    """The client that owns the job: its creator's name (a child job: its root's). Empty: no
    client (the scheduler, an embedding program); only admins see such a job over HTTP."""
    metadata: dict[str, Any] = {}
    """The client's own annotations (Avtomatika's ``metadata``): kept, shown, sent with each task."""
    max_transitions: int = 0
    """How many times the job may enter a state; one more fails it (``MAX_TRANSITIONS_EXCEEDED``).
    0: no cap (jobs created before the cap existed)."""
    security: dict[str, Any] | None = None
    """Avtomatika's ``security`` of the create request, recorded as sent; chronik does not act on it."""
    policy: dict[str, Any] | None = None
    """Avtomatika's ``policy`` of the create request, recorded as sent; chronik does not act on it."""
    dispatch_timeout: float | None = None
    """How long each task of the job may wait for a worker to take it (Avtomatika's
    ``dispatch_timeout``); past it the job fails with ``DISPATCH_TIMEOUT``. None: as long as it takes."""
    state_history: dict[str, Any] = {}
    """What the job starts with in ``state_history``: empty, except for a fork (the source's as of
    ``forked_from.version``)."""
    forked_from: ForkedFrom | None = None
    """Set when the job is a fork: it starts in ``start_state`` with the source's data as of that version."""


class StateEntered(Event, frozen=True, tag="StateEntered"):
    """The handler of ``from_state`` moved the job to ``state``.

    ``updates`` and ``removed`` are the changes the handler made to
    ``state_history`` (top-level keys), recorded so that the fold can repeat them.
    """

    state: str
    from_state: str
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()
    state_deadline_at: datetime | None = None
    """When the job must have left ``state``, from ``handler_for(..., timeout_seconds=)``.

    Written into the event when it is appended, so the fold never needs the blueprint.
    """
    on_timeout: str | None = None
    """Where the job goes when that deadline passes; it fails with ``STATE_TIMEOUT`` when None."""
    error: ErrorInfo | None = None
    """Set when an error moved the job (a task's ``INVALID_INPUT_ERROR`` down its ``failure``
    transition): the job keeps going, and whatever end it reaches, it ends failed with this error."""


class HandlerFailed(Event, frozen=True, tag="HandlerFailed"):
    """The handler of ``state`` raised or misused its actions."""

    state: str
    error: ErrorInfo
    traceback: str = ""


class JobFinished(Event, frozen=True, tag="JobFinished"):
    """The job ended in the end state ``state``."""

    state: str
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class JobFailed(Event, frozen=True, tag="JobFailed"):
    """The job ended as failed, in ``state``, for ``error``."""

    state: str
    error: ErrorInfo
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class JobCancelled(Event, frozen=True, tag="JobCancelled"):
    """Someone cancelled the job."""

    reason: str = ""
    actor: str = ""


class JobForked(Event, frozen=True, tag="JobForked"):
    """A new job, ``new_job_id``, was started from this job's state as of ``from_version``.

    A record in the source's history, not a change of the source: its status, state and
    ``updated_at`` stay as they were (it may have ended long ago), and nothing is dispatched,
    woken or announced for it.
    """

    new_job_id: UUID
    from_version: int
    actor: str = ""


class TaskDispatched(Event, frozen=True, tag="TaskDispatched"):
    """The handler of ``state`` handed a task to the workers; attempt 1 is queued."""

    task_id: UUID
    task_type: str
    state: str
    params: dict[str, Any] = {}
    transitions: dict[str, str] = {}
    timeout_seconds: float | None = None
    max_retries: int = 3
    priority: int = 0
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()
    dispatch_timeout: float | None = None
    """The job's ``dispatch_timeout``: each attempt must be taken by a worker this soon after it
    becomes available, or the job fails with ``DISPATCH_TIMEOUT``."""


class TaskCompleted(Event, frozen=True, tag="TaskCompleted"):
    """A worker returned ``status`` (``success`` or a custom one) with ``data`` for an attempt."""

    task_id: UUID
    attempt: int
    worker_id: str
    status: str
    data: Any = None
    """What the worker returned; an object is merged into ``state_history`` by the next StateEntered."""
    claimed_at: datetime | None = None


class TaskFailed(Event, frozen=True, tag="TaskFailed"):
    """A worker reported that an attempt failed with ``error``."""

    task_id: UUID
    attempt: int
    worker_id: str
    error: ErrorInfo
    data: Any = None
    claimed_at: datetime | None = None


class TaskLost(Event, frozen=True, tag="TaskLost"):
    """An attempt ended without a result.

    ``reason`` is ``lease_expired`` (the worker stopped answering) or ``timed_out``
    (it ran past ``timeout_seconds``).
    """

    task_id: UUID
    attempt: int
    worker_id: str
    reason: str
    claimed_at: datetime | None = None


class TaskRetryScheduled(Event, frozen=True, tag="TaskRetryScheduled"):
    """Attempt ``attempt`` of the task is queued to run after ``delay_seconds``."""

    task_id: UUID
    attempt: int
    delay_seconds: float
    error_code: str


class TaskResultIgnored(Event, frozen=True, tag="TaskResultIgnored"):
    """A result arrived for an attempt that no longer counts (it was superseded); it changed nothing."""

    task_id: UUID
    attempt: int
    worker_id: str
    status: str
    reason: str


class JobQuarantined(Event, frozen=True, tag="JobQuarantined"):
    """The job's task cannot succeed by retrying; it waits for a person (``POST .../retry``)."""

    state: str
    error: ErrorInfo


class JobRetried(Event, frozen=True, tag="JobRetried"):
    """Someone re-ran a quarantined job: its task is queued again as attempt ``attempt``."""

    task_id: UUID
    attempt: int
    actor: str = ""


class ApprovalRequested(Event, frozen=True, tag="ApprovalRequested"):
    """The handler of ``state`` asked a person to decide; the job waits for ``POST .../approval``."""

    state: str
    message: str
    transitions: dict[str, str]
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()
    timeout_at: datetime | None = None
    """When nobody has decided by then, the job follows ``transitions["timeout"]`` or fails."""
    token: str = ""
    """The secret of this request's public approval link (``POST /_public/webhooks/approval/{job_id}``):
    whoever holds it may decide, without a client token. A new request has a new one."""


class ApprovalTimedOut(Event, frozen=True, tag="ApprovalTimedOut"):
    """Nobody decided in time; a StateEntered of ``transitions["timeout"]`` or a JobFailed follows."""

    state: str


class ApprovalGiven(Event, frozen=True, tag="ApprovalGiven"):
    """A person decided; a StateEntered of ``transitions[decision]`` follows."""

    decision: str
    comment: str = ""
    actor: str = ""


class TimerStarted(Event, frozen=True, tag="TimerStarted"):
    """The handler of ``state`` slept: at ``fire_at`` the job moves to ``then``."""

    state: str
    fire_at: datetime
    then: str
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class TimerFired(Event, frozen=True, tag="TimerFired"):
    """The job's timer fired; a StateEntered of its ``then`` follows."""

    state: str
    then: str


class TimedOut(Event, frozen=True, tag="TimedOut"):
    """A deadline passed in ``state``: the job's own (``scope="job"``) or the state's (``"state"``).

    Whatever the job waited on is abandoned; a JobFailed or a StateEntered of the
    state's ``on_timeout`` follows in the same append.
    """

    scope: str
    state: str
    deadline_at: datetime


class FilesStored(Event, frozen=True, tag="FilesStored"):
    """A handler or a worker stored objects in the job's S3 folder (``task_files``); their keys."""

    keys: tuple[str, ...]
    by: str
    """``handler:<state>`` or the worker's id."""


class BranchSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One task of a fan-out, as dispatched."""

    task_id: UUID
    task_type: str
    params: dict[str, Any] = {}
    timeout_seconds: float | None = None
    max_retries: int = 3
    priority: int = 0


class ParallelDispatched(Event, frozen=True, tag="ParallelDispatched"):
    """The handler of ``state`` fanned out ``branches``; when every one is in, the job joins.

    Branch results are the usual task events (TaskCompleted, TaskFailed, ...) with the
    branch's ``task_id``; a BranchesJoined follows the last one.
    """

    state: str
    aggregate_into: str
    branches: tuple[BranchSpec, ...]
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class BranchFailed(Event, frozen=True, tag="BranchFailed"):
    """A branch failed for good (no retry left, or an error no retry can fix); the aggregator sees it."""

    task_id: UUID
    error: ErrorInfo


class BranchesJoined(Event, frozen=True, tag="BranchesJoined"):
    """Every branch is in: the job enters ``state`` (the aggregator's) with ``aggregation_results``."""

    state: str
    from_state: str
    state_deadline_at: datetime | None = None
    on_timeout: str | None = None


class ChildStarted(Event, frozen=True, tag="ChildStarted"):
    """The handler of ``state`` started ``child_job_id`` of ``blueprint``; the job waits for it to end."""

    state: str
    child_job_id: UUID
    blueprint: str
    transitions: dict[str, str]
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class ChildEnded(Event, frozen=True, tag="ChildEnded"):
    """The child job ended with ``status``; a StateEntered by the transitions (or a JobFailed) follows."""

    child_job_id: UUID
    status: str
    result: Any = None
    error: ErrorInfo | None = None


AnyEvent = (
    JobCreated
    | StateEntered
    | HandlerFailed
    | JobFinished
    | JobFailed
    | JobCancelled
    | TaskDispatched
    | TaskCompleted
    | TaskFailed
    | TaskLost
    | TaskRetryScheduled
    | TaskResultIgnored
    | JobQuarantined
    | JobRetried
    | ApprovalRequested
    | ApprovalGiven
    | ApprovalTimedOut
    | TimerStarted
    | TimerFired
    | TimedOut
    | ParallelDispatched
    | BranchFailed
    | BranchesJoined
    | ChildStarted
    | ChildEnded
    | FilesStored
    | JobForked
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        JobCreated,
        StateEntered,
        HandlerFailed,
        JobFinished,
        JobFailed,
        JobCancelled,
        TaskDispatched,
        TaskCompleted,
        TaskFailed,
        TaskLost,
        TaskRetryScheduled,
        TaskResultIgnored,
        JobQuarantined,
        JobRetried,
        ApprovalRequested,
        ApprovalGiven,
        ApprovalTimedOut,
        TimerStarted,
        TimerFired,
        TimedOut,
        ParallelDispatched,
        BranchFailed,
        BranchesJoined,
        ChildStarted,
        ChildEnded,
        FilesStored,
        JobForked,
    )
}
"""Every event class by its stored tag; a snapshot test pins this list."""

_encoder = msgspec.json.Encoder()
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    tag: msgspec.json.Decoder(cls) for tag, cls in EVENT_TYPES.items()
}


def encode_event_data(event: Event) -> bytes:
    """Encode an event for the ``data`` column; its tag goes in the ``type`` column too."""
    return _encoder.encode(event)


def decode_event(type_: str, data: bytes | str) -> AnyEvent | None:
    """Decode one stored event by its ``type`` column; ``None`` when the type is unknown.

    The caller turns ``None`` into ``UnknownEventType`` with the row's position.
    """
    decoder = _decoders.get(type_)
    if decoder is None:
        return None
    event: AnyEvent = decoder.decode(data)
    return event
