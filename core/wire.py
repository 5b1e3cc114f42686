"""The worker protocol's messages, one set for the routes, the service and the SDK.

This is Avtomatika's ``rxon`` 1.0b17 wire format. Workers send more fields than chronik
reads, and a server may answer more than the SDK reads: unknown fields are accepted and
ignored on both sides, as the protocol expects. That is also why these bodies do not set
``forbid_unknown_fields``, unlike the client API's.

Encoding writes every field except those left ``UNSET``. A field that a sender may leave
out defaults to ``UNSET`` and reads as empty. A field with a protocol default is always
written. Both directions keep their exact JSON: the SDK sends ``"status": "success"``, and
a failure carries no ``data``. A result from Avtomatika's SDK, which leaves ``status`` out
when it succeeds, still reads as a success.

Task ids on the wire name one attempt, ``<task uuid>:<attempt>`` (:class:`TaskRef`). They
are parsed where a message comes in, so the service only sees parsed references.

Two extensions save round trips and change no existing message: a poll that asks for
``max_tasks`` is answered :class:`TasksAnswer` (several tasks), and ``POST
/_worker/tasks/results`` takes :class:`ResultsBody` (several results) and answers
:class:`ResultsAnswer`. A poll without ``max_tasks`` gets one :class:`TaskMessage`, as
Avtomatika's worker expects.
"""

from __future__ import annotations

import math
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from .errors import Forbidden, InvalidInput
from .events import ErrorInfo

__all__ = [
    "MAX_RESULTS_PER_MESSAGE",
    "MAX_TASKS_PER_POLL",
    "PROTOCOL_VERSION",
    "SHORT_LIVED_TOKEN_PREFIX",
    "EventAnswer",
    "EventBody",
    "HeartbeatAnswer",
    "HeartbeatBody",
    "ProgressReport",
    "RegisterAnswer",
    "RegisterBody",
    "ReportedResult",
    "ResultAnswer",
    "ResultBody",
    "ResultsAnswer",
    "ResultsBody",
    "SkillInfo",
    "TaskErrorBody",
    "TaskMessage",
    "TaskMetadata",
    "TaskRef",
    "TasksAnswer",
    "TokenAnswer",
    "TokenHolder",
]

PROTOCOL_VERSION = "1.0b17"

SHORT_LIVED_TOKEN_PREFIX = "chronik_wt_"
"""How a short-lived worker token begins: the orchestrator looks such a token up among those it
issued (``POST /_worker/auth/token``), and compares any other with the long-lived ones."""
"""The ``rxon`` version chronik speaks; the SDK sends it as ``X-RXON-Version``."""

MAX_TASKS_PER_POLL = 1000
"""The most tasks one poll takes (``max_tasks``, chronik's extension); a larger ask gets this many."""

MAX_RESULTS_PER_MESSAGE = 1000
"""The most results one ``POST /_worker/tasks/results`` carries."""


class TaskRef(msgspec.Struct, frozen=True):
    """One attempt of one task. On the wire it is ``<task uuid>:<attempt>``, its ``str()``."""

    task_id: UUID
    attempt: int

    @classmethod
    def parse(cls, raw: str) -> TaskRef:
        """Read a wire task id; ``InvalidInput`` for one this orchestrator never hands out."""
        task_part, sep, attempt_part = raw.partition(":")
        try:
            task_id = UUID(task_part)
            attempt = int(attempt_part) if sep else 0
        except ValueError:
            raise InvalidInput(
                f"task_id {raw!r} is not a task id of this orchestrator (<uuid>:<attempt>)"
            ) from None
        if not 1 <= attempt < 2**31:
            raise InvalidInput(
                f"task_id {raw!r} has no valid attempt number (<uuid>:<attempt>, attempt from 1)"
            )
        return cls(task_id, attempt)

    def __str__(self) -> str:
        return f"{self.task_id}:{self.attempt}"


# -- messages a worker sends --------------------------------------------------------


class SkillInfo(msgspec.Struct, kw_only=True):
    """One skill a worker offers; tasks are routed by its ``name``."""

    name: str
    type: str | None = None


class RegisterBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/workers/register``."""

    worker_id: str
    worker_type: str = "generic"
    task_types: list[str] = []
    """chronik's SDK names its task types here; Avtomatika's names skills in ``supported_skills``."""
    supported_skills: list[SkillInfo] = []
    available_skills: list[str] | UnsetType = UNSET
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    resources: dict[str, Any] | UnsetType = UNSET
    capabilities: dict[str, Any] | UnsetType = UNSET

    def all_task_types(self) -> list[str]:
        """Every task type the worker can run."""
        names = [skill.name for skill in self.supported_skills]
        names += (self.available_skills or []) + self.task_types
        return sorted(set(names))

    def info(self) -> dict[str, Any]:
        """What is kept about the worker besides its task types and capacity."""
        return {
            "worker_type": self.worker_type,
            "resources": self.resources or {},
            "capabilities": self.capabilities or {},
        }


class HeartbeatBody(msgspec.Struct, kw_only=True):
    """``PATCH /_worker/workers/{worker_id}``; may be empty."""

    worker_id: str | None = None
    status: str | None = None
    current_tasks: list[str] | None = None
    """The attempts the worker runs; only their leases are extended when it is sent."""

    def running(self) -> list[TaskRef] | None:
        """The attempts of ``current_tasks`` that are this orchestrator's (``None`` without a list).

        Any other id belongs to another orchestrator, or to nobody: not ours to extend.
        """
        if self.current_tasks is None:
            return None
        refs = []
        for raw in self.current_tasks:
            try:
                refs.append(TaskRef.parse(raw))
            except InvalidInput:
                continue
        return refs


class TaskErrorBody(msgspec.Struct, kw_only=True):
    """A failed result's error."""

    code: str = "TRANSIENT_ERROR"
    message: str = ""
    details: Any = UNSET
    """Avtomatika's extra detail; read, and kept nowhere."""


class ResultBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/tasks/result``."""

    job_id: str | None = None
    task_id: str
    worker_id: str | None = None
    status: str = "success"
    data: Any = UNSET
    error: TaskErrorBody | UnsetType | None = UNSET
    files: list[str] | UnsetType = UNSET
    """Object keys the task stored in its job's folder (``task_files``), recorded in the history."""

    def report(self, worker_id: str) -> ReportedResult:
        """This result as ``worker_id`` (the authenticated worker) reports it; parses the task id."""
        error = None
        if isinstance(self.error, TaskErrorBody):
            error = ErrorInfo(code=self.error.code, message=self.error.message)
        return ReportedResult(
            ref=TaskRef.parse(self.task_id),
            worker_id=worker_id,
            status=self.status,
            data=None if self.data is UNSET else self.data,
            error=error,
            files=tuple(self.files or ()),
        )


class ResultsBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/tasks/results``: several results in one message (chronik's extension of rxon).

    The message is signed as a whole, like any other; each entry is a :class:`ResultBody`
    with its own task id. Entries stay plain until :meth:`reports` reads them one by one,
    so that a bad entry is answered in its place instead of refusing the others.
    """

    results: Annotated[list[Any], msgspec.Meta(min_length=1, max_length=MAX_RESULTS_PER_MESSAGE)]
    """The entries as sent (each should be a ``ResultBody``; even one that is not an object is
    answered in its place)."""

    def reports(self, worker_id: str) -> list[ReportedResult | InvalidInput | Forbidden]:
        """Each entry as ``worker_id`` reports it, or why it is refused, in the order sent."""
        reports: list[ReportedResult | InvalidInput | Forbidden] = []
        for index, entry in enumerate(self.results):
            try:
                body = msgspec.convert(entry, ResultBody)
            except msgspec.ValidationError as exc:
                reports.append(InvalidInput(f"invalid ResultBody at results[{index}]: {exc}"))
                continue
            if body.worker_id is not None and body.worker_id != worker_id:
                reports.append(
                    Forbidden(
                        f"results[{index}]: the worker_id {body.worker_id!r} is not the "
                        f"authenticated worker {worker_id!r}"
                    )
                )
                continue
            try:
                reports.append(body.report(worker_id))
            except InvalidInput as exc:
                reports.append(exc)
        return reports


class EventBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/events``: progress (``event_type="progress"``) or a custom event."""

    event_id: str | None = None
    event_type: str
    worker_id: str | None = None
    origin_worker_id: str | None = None
    target_job_id: str | None = None
    target_task_id: str | None = None
    origin_task_id: str | UnsetType | None = UNSET
    payload: dict[str, Any] = {}

    def progress_report(self, worker_id: str) -> ProgressReport | None:
        """The progress this event reports for an attempt; ``None`` for any other event.

        Raises ``InvalidInput`` for a progress that is not a finite number, or a task id
        that is not one of this orchestrator's.
        """
        raw = self.target_task_id or self.origin_task_id
        if self.event_type != "progress" or not isinstance(raw, str):
            return None
        progress = self.payload.get("progress")
        if progress is not None and (not isinstance(progress, int | float) or not math.isfinite(progress)):
            raise InvalidInput(f"payload.progress must be a finite number, got {progress!r}")
        return ProgressReport(
            ref=TaskRef.parse(raw),
            worker_id=worker_id,
            progress=progress,
            message=str(self.payload.get("message", "")),
        )


# -- what the service takes, parsed from those messages -------------------------------


class ReportedResult(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's result for one attempt, as the service settles it."""

    ref: TaskRef
    worker_id: str
    """The authenticated worker, whatever ``worker_id`` its message names."""
    status: str = "success"
    data: Any = None
    error: ErrorInfo | None = None
    files: tuple[str, ...] = ()


class ProgressReport(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's progress on one attempt."""

    ref: TaskRef
    worker_id: str
    progress: float | None = None
    message: str = ""


class TokenHolder(msgspec.Struct, frozen=True, kw_only=True):
    """Whom a short-lived worker token was issued to, and for which credential."""

    worker_id: str
    by_certificate: bool
    """Issued for a client certificate (``mtls-only`` accepts only these), not for a worker token."""


# -- messages the orchestrator sends -----------------------------------------------


class TaskMetadata(msgspec.Struct, kw_only=True):
    """A task's ``metadata``: the attempt, and the job's trace context when it has one."""

    attempt: int = 1
    traceparent: str | UnsetType = UNSET


class TaskMessage(msgspec.Struct, kw_only=True):
    """A task handed to a worker by a poll.

    Avtomatika's worker depends on the types: ids are strings, times integer unix seconds.
    """

    job_id: str
    task_id: str
    """The attempt's wire id (:class:`TaskRef`)."""
    type: str
    params: dict[str, Any] = {}
    priority: int = 0
    timestamp: int = 0
    metadata: TaskMetadata = msgspec.field(default_factory=TaskMetadata)
    deadline: int | UnsetType = UNSET
    """When the attempt times out, if its task has a timeout."""


class RegisterAnswer(msgspec.Struct, kw_only=True):
    """The answer to a registration."""

    status: str = "registered"
    version: str = PROTOCOL_VERSION


class HeartbeatAnswer(msgspec.Struct, kw_only=True):
    """The answer to a heartbeat: the attempts the worker must stop."""

    status: str = "ok"
    cancel_task_ids: list[str] = []


class TasksAnswer(msgspec.Struct, kw_only=True):
    """The answer to a poll that asked for ``max_tasks``: the tasks it took (at least one)."""

    tasks: list[TaskMessage]


class ResultAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The answer to a result: ``accepted``, or ``ignored`` with the reason.

    In a batch's answer an entry may also be ``refused`` (the request's fault: ``reason`` is
    the error code the single route answers, e.g. ``TASK_NOT_HELD``; sending it again changes
    nothing) or ``error`` (the server's: send it again later).
    """

    status: str
    reason: str | None = None
    message: str | None = None


class ResultsAnswer(msgspec.Struct, kw_only=True):
    """The answer to a batch of results: one :class:`ResultAnswer` per entry, in order."""

    results: list[ResultAnswer]


class EventAnswer(msgspec.Struct, kw_only=True):
    """The answer to an event; a progress report's names the attempts the worker must stop."""

    status: str = "event_accepted"
    cancel_task_ids: list[str] | UnsetType = UNSET


class TokenAnswer(msgspec.Struct, kw_only=True):
    """The answer to ``POST /_worker/auth/token``: a short-lived token, in Avtomatika's shape.

    chronik issues no refresh token (``refresh_token`` is null): a worker renews by exchanging
    its long-lived token or its certificate again, and a short-lived token cannot mint another.
    """

    access_token: str
    expires_in: int
    """Seconds the token lasts from when it was issued."""
    worker_id: str
    refresh_token: str | None = None
