"""Request and response bodies. Responses are their own Structs, never events."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from chronik.core.approvals import decisions_of
from chronik.core.events import ErrorInfo
from chronik.core.records import RecordedEvent
from chronik.core.state import JobState, result_of

__all__ = [
    "ApprovalAccepted",
    "ApprovalRequest",
    "ApprovalView",
    "CancelAccepted",
    "CancelRequest",
    "CreateJobRequest",
    "ErrorBody",
    "ErrorDetail",
    "EventStreamMessage",
    "ForkOrigin",
    "HistoryEntry",
    "JobAccepted",
    "JobPage",
    "JobView",
    "PublicApprovalRequest",
    "RetryAccepted",
    "Status",
    "TaskView",
    "WebhookView",
]


class CreateJobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /api/v1/jobs/{api_endpoint}``."""

    initial_data: dict[str, Any] = {}
    timeout_seconds: float | None = None
    """How long the job may run before it fails with ``JOB_TIMEOUT``; default: the blueprint's."""
    webhook_url: str | None = None
    """Told (POST, signed) when the job finishes, fails, is cancelled or quarantined."""
    metadata: dict[str, Any] | None = None
    """Avtomatika's: the client's own annotations; kept on the job, shown with it, sent with its tasks."""
    result_timeout: float | None = None
    """Avtomatika's: the job's deadline in seconds from now, as ``timeout_seconds`` (the sooner wins)."""
    dispatch_timeout: float | None = None
    """Avtomatika's: how long each of the job's tasks may wait for a worker to take it; past it the
    job fails with ``DISPATCH_TIMEOUT``."""
    max_transitions: int | None = None
    """How many states the job may enter; one more fails it with ``MAX_TRANSITIONS_EXCEEDED``.
    Default ``MAX_TRANSITIONS_PER_JOB`` (100)."""
    security: dict[str, Any] | None = None
    """Avtomatika's: recorded with the job's creation as sent; chronik does not act on it."""
    policy: dict[str, Any] | None = None
    """Avtomatika's: recorded with the job's creation as sent; chronik does not act on it."""

    def job_timeout(self) -> float | None:
        """The job's deadline in seconds: the sooner of ``timeout_seconds`` and ``result_timeout``."""
        given = [t for t in (self.timeout_seconds, self.result_timeout) if t is not None]
        return min(given) if given else None


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The optional body of ``POST /api/v1/jobs/{job_id}/cancel``."""

    reason: str = ""


class ApprovalRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /api/v1/jobs/{job_id}/approval``."""

    decision: str
    comment: str = ""


class PublicApprovalRequest(msgspec.Struct, kw_only=True):
    """The body of ``POST /_public/webhooks/approval/{job_id}``; other fields (Avtomatika's
    ``security``, ``metadata``) are accepted and ignored."""

    decision: str
    comment: str = ""
    token: str | None = None
    """The link's token, when it is not in the query (``?token=``) or the ``X-Approval-Token`` header."""


class ApprovalAccepted(msgspec.Struct, kw_only=True):
    """A decision was recorded and the job moved on."""

    status: str = "approval_received"
    job_id: UUID


class ApprovalView(msgspec.Struct, kw_only=True):
    """The decision a job waits for."""

    message: str
    decisions: list[str]
    """What a person may send as ``decision``, sorted."""
    requested_at: datetime
    timeout_at: datetime | None = None
    """When the job stops waiting (``transitions["timeout"]``, or it fails); None: never."""
    public_url: str
    """The public approval link (path and token): ``POST`` it with ``{"decision": ...}`` to decide
    without a client token, e.g. from an e-mail or a chat button. Valid while this request is open."""


class JobAccepted(msgspec.Struct, kw_only=True):
    """A job was created and its first step queued."""

    status: str = "accepted"
    job_id: UUID


class CancelAccepted(msgspec.Struct, kw_only=True):
    """A job was cancelled."""

    status: str = "cancellation_request_accepted"
    job_id: UUID


class RetryAccepted(msgspec.Struct, kw_only=True):
    """A quarantined job's task was queued again."""

    status: str = "retry_accepted"
    job_id: UUID


class ForkOrigin(msgspec.Struct, kw_only=True):
    """Where a forked job came from: the source job and the version of it the fork started from."""

    job_id: UUID
    version: int


class TaskView(msgspec.Struct, kw_only=True):
    """The task a job waits on."""

    task_id: UUID
    task_type: str
    attempt: int
    max_retries: int
    available_at: datetime


class JobView(msgspec.Struct, kw_only=True):
    """A job's current state as clients see it (Avtomatika's field names)."""

    id: UUID
    job_id: UUID
    blueprint_name: str
    status: str
    current_state: str
    initial_data: dict[str, Any]
    state_history: dict[str, Any]
    result: Any = None
    error: ErrorInfo | None = None
    version: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    task: TaskView | None = None
    approval: ApprovalView | None = None
    timer: dict[str, Any] | None = None
    """While the job sleeps: ``{"fire_at", "then"}``."""
    progress: dict[str, Any] | None = None
    """The last progress a worker reported: ``progress`` (as sent), ``message``, ``at``, ``worker_id``."""
    fan_out: dict[str, Any] | None = None
    """While branches run: ``{"aggregate_into", "branches", "pending"}``."""
    child_job_id: UUID | None = None
    """While the job waits for a child job (``run_blueprint``)."""
    children: list[UUID] = []
    """Every child job this job started."""
    parent_job_id: UUID | None = None
    deadline_at: datetime | None = None
    """When the job fails with ``JOB_TIMEOUT`` if it has not ended."""
    state_deadline_at: datetime | None = None
    """When the job must have left its current state."""
    client: str = ""
    """The client that owns the job (empty: none; only admins see it)."""
    metadata: dict[str, Any] = {}
    """The client's own annotations, as sent at creation."""
    transitions: int = 0
    """How many states the job has entered; ``max_transitions`` is its cap (0: none)."""
    max_transitions: int = 0
    forked_from: ForkOrigin | None = None
    """The job and version this job was forked from (``POST /jobs/{id}/fork``); None: not a fork."""
    forks: list[UUID] = []
    """Every job forked from this one, oldest first."""

    @classmethod
    def of(cls, state: JobState, *, progress: dict[str, Any] | None = None) -> JobView:
        """The view of a folded state."""
        task = state.task
        task_view = None
        if task is not None and not state.is_terminal:
            task_view = TaskView(
                task_id=task.task_id,
                task_type=task.task_type,
                attempt=task.attempt,
                max_retries=task.max_retries,
                available_at=task.available_at,
            )
        return cls(
            id=state.job_id,
            job_id=state.job_id,
            blueprint_name=state.blueprint,
            status=state.status,
            current_state=state.current_state,
            initial_data=state.initial_data,
            state_history=state.state_history,
            result=result_of(state),
            error=state.error,
            version=state.version,
            created_at=state.created_at,
            updated_at=state.updated_at,
            finished_at=state.finished_at,
            task=task_view,
            approval=None
            if state.approval is None
            else ApprovalView(
                message=state.approval.message,
                decisions=decisions_of(state.approval.transitions),
                requested_at=state.approval.requested_at,
                timeout_at=state.approval.timeout_at,
                public_url=f"/_public/webhooks/approval/{state.job_id}?token={state.approval.token}",
            ),
            timer=None if state.timer is None else {"fire_at": state.timer.fire_at, "then": state.timer.then},
            progress=progress,
            fan_out=None
            if state.fan_out is None
            else {
                "aggregate_into": state.fan_out.aggregate_into,
                "branches": len(state.fan_out.branches),
                "pending": state.fan_out.pending,
            },
            child_job_id=None if state.child is None else state.child.job_id,
            children=list(state.children),
            parent_job_id=state.parent_job_id,
            deadline_at=None if state.is_terminal else state.deadline_at,
            state_deadline_at=None if state.is_terminal else state.state_deadline_at,
            client=state.client,
            metadata=state.metadata,
            transitions=state.transitions,
            max_transitions=state.max_transitions,
            forked_from=None
            if state.forked_from is None
            else ForkOrigin(job_id=state.forked_from.job_id, version=state.forked_from.version),
            forks=list(state.forks),
        )


class JobPage(msgspec.Struct, kw_only=True):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    jobs: list[JobView]
    next_cursor: str | None = None


class EventStreamMessage(msgspec.Struct, kw_only=True):
    """One message of ``GET /jobs/{id}/events`` (``text/event-stream``), as the document describes it.

    ``id`` is the event's version, ``event`` its type, and ``data`` its ``HistoryEntry`` as JSON; a
    keep-alive is a comment, with none of them.
    """

    id: str | None = None
    event: str | None = None
    data: str | None = None


class HistoryEntry(msgspec.Struct, kw_only=True):
    """One event of a job's stream."""

    position: int
    version: int
    type: str
    at: datetime
    recorded_at: datetime
    data: dict[str, Any]
    meta: dict[str, Any]

    @classmethod
    def of(cls, recorded: RecordedEvent) -> HistoryEntry:
        """The entry of a stored event."""
        data = msgspec.to_builtins(recorded.event)
        data.pop("type", None)
        data.pop("at", None)
        return cls(
            position=recorded.position,
            version=recorded.version,
            type=recorded.type,
            at=recorded.event.at,
            recorded_at=recorded.recorded_at,
            data=data,
            meta=recorded.meta,
        )


class WebhookAttempt(msgspec.Struct, kw_only=True):
    """One attempt to deliver a notification."""

    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    seconds: float


class WebhookView(msgspec.Struct, kw_only=True):
    """A notification of a job's webhook and its attempts so far."""

    event_id: str
    event: str
    url: str
    status: str
    """``pending`` (due at ``next_attempt_at``), ``delivered`` or ``failed`` (out of attempts)."""
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None
    attempt_log: list[WebhookAttempt]


class Status(msgspec.Struct, kw_only=True):
    """The health answer."""

    status: str = "ok"


class ErrorDetail(msgspec.Struct, kw_only=True):
    """What went wrong: a stable code and a message that says what to fix."""

    code: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail
