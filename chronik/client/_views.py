"""What the client API answers, as the client reads it: typed, frozen, tolerant of newer servers.

The server's response Structs (``chronik.api.schemas``) are not imported: that module builds
its views from the runtime and the database adapters, which a program that only creates jobs
must not load. These mirror their fields (a test compares the two); a field a newer server adds
is ignored, and every field an older server may not send has a default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from chronik.core.events import ErrorInfo

__all__ = [
    "Accepted",
    "ApprovalView",
    "ErrorInfo",
    "ForkOrigin",
    "HistoryEntry",
    "JobPage",
    "JobView",
    "TaskView",
]


class TaskView(msgspec.Struct, frozen=True, kw_only=True):
    """The task a job waits on: which attempt, and when it may be taken."""

    task_id: UUID
    task_type: str
    attempt: int
    max_retries: int
    available_at: datetime


class ApprovalView(msgspec.Struct, frozen=True, kw_only=True):
    """The decision a job waits for."""

    message: str
    decisions: tuple[str, ...]
    """What ``decide()`` may send, sorted."""
    requested_at: datetime
    timeout_at: datetime | None = None
    """When the job stops waiting; None: never."""
    public_url: str | None = None
    """The public approval link (path and token), where the server offers one."""


class ForkOrigin(msgspec.Struct, frozen=True, kw_only=True):
    """The job and version a forked job started from."""

    job_id: UUID
    version: int


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the server shows it (``GET /api/v1/jobs/{id}``; Avtomatika's field names)."""

    job_id: UUID
    blueprint_name: str
    status: str
    """``running``, ``waiting_for_worker``, ``waiting_for_human``, ``waiting_for_timer``,
    ``waiting_for_child``, ``quarantined``, ``finished``, ``failed`` or ``cancelled``."""
    current_state: str
    initial_data: dict[str, Any]
    state_history: dict[str, Any]
    result: Any = None
    """Set once the job has ended: the ``state_history`` entry of its end state."""
    error: ErrorInfo | None = None
    """Why a job failed, was cancelled or quarantined: ``code``, ``message``, ``type``."""
    version: int
    """How many events the job has."""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    task: TaskView | None = None
    approval: ApprovalView | None = None
    timer: dict[str, Any] | None = None
    """While the job sleeps: ``{"fire_at", "then"}``."""
    progress: dict[str, Any] | None = None
    """The last progress a worker reported: ``progress``, ``message``, ``at``, ``worker_id``."""
    fan_out: dict[str, Any] | None = None
    """While branches run: ``{"aggregate_into", "branches", "pending"}``."""
    child_job_id: UUID | None = None
    children: tuple[UUID, ...] = ()
    parent_job_id: UUID | None = None
    deadline_at: datetime | None = None
    """When the job fails with ``JOB_TIMEOUT`` if it has not ended."""
    state_deadline_at: datetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    """The client's own annotations, as sent at creation."""
    client: str = ""
    """The client that owns the job."""
    transitions: int = 0
    """How many states the job has entered."""
    max_transitions: int = 0
    """The most ``transitions`` it may make (0: no cap)."""
    forked_from: ForkOrigin | None = None
    """The job and version this one was forked from (``fork()``)."""
    forks: tuple[UUID, ...] = ()
    """The jobs forked from this one."""


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of jobs, newest first."""

    jobs: tuple[JobView, ...]
    next_cursor: str | None = None
    """The ``cursor`` of the next page; None on the last."""


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a job: what happened (``type``, ``data``), when, and who did it (``meta``)."""

    position: int
    """Its place in the global log."""
    version: int
    """Its place in the job's stream, from 1."""
    type: str
    at: datetime
    recorded_at: datetime
    data: dict[str, Any]
    meta: dict[str, Any]


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of create, cancel, retry and decide."""

    status: str
    job_id: UUID
