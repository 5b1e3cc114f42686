"""What one commit of a job changes besides its log: the pure derivation of every row it writes.

A commit appends events and, in the same statement, rewrites the job's ``jobs``
row, its step, its task rows, and whatever it owes others (a parent to wake, a
webhook to send, files to remove). All of that follows from the job's state
before and after the events; this module decides it, ``adapters/postgres/commit.py``
writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from .deadlines import needs_step, wakes_at
from .events import AnyEvent, ChildEnded, JobForked, TaskCompleted, TaskFailed, TaskLost
from .state import JobState, TaskState, pending_attempts, pending_task, result_of

__all__ = [
    "JobChange",
    "JobRow",
    "StepChange",
    "TaskChanges",
    "WebhookNotice",
    "abandoned_child",
    "change_of",
    "step_change",
    "task_changes",
    "webhook_notice",
]

StepChange = Literal["enqueue", "delete", "keep"]

_ANNOUNCED = {"finished": "job_finished", "failed": "job_failed", "quarantined": "job_quarantined",
              "cancelled": "job_cancelled"}  # fmt: skip


class JobRow(msgspec.Struct, frozen=True, kw_only=True):
    """The ``jobs`` projection row of a state: its indexed columns and the whole state."""

    job_id: UUID
    blueprint: str
    status: str
    current_state: str
    version: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    state: JobState

    @classmethod
    def of(cls, state: JobState) -> JobRow:
        """The row ``state`` is stored as."""
        return cls(
            job_id=state.job_id,
            blueprint=state.blueprint,
            status=state.status,
            current_state=state.current_state,
            version=state.version,
            created_at=state.created_at,
            updated_at=state.updated_at,
            finished_at=state.finished_at,
            state=state,
        )


class TaskChanges(msgspec.Struct, frozen=True, kw_only=True):
    """What happens to a job's rows in the task queue."""

    queued: Sequence[TaskState] = ()
    """Attempts to queue: new tasks, and retries of existing ones."""
    dropped: Sequence[UUID] = ()
    """Tasks answered for good (a result, or a lost attempt that is not retried): rows go."""
    cancelled: Sequence[UUID] = ()
    """Tasks the job no longer waits on without an answer: rows are marked, workers told."""


class WebhookNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A notification to queue in the webhook outbox with this change."""

    url: str
    event: str
    event_id: str
    payload: dict[str, Any]


class JobChange(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one commit of a job writes, in one statement."""

    job_id: UUID
    expected_version: int
    """The version the change was decided on; another writer past it is a conflict."""
    events: Sequence[AnyEvent]
    meta: dict[str, Any]
    row: JobRow
    step: StepChange
    step_due: datetime | None = None
    """When an enqueued step is due; ``None``: now."""
    tasks: TaskChanges = TaskChanges()
    wake: UUID | None = None
    """Another job whose step becomes due now: the parent of a child that ended."""
    webhook: WebhookNotice | None = None
    remove_files: bool = False
    """The job ended now with files in S3: its folder is queued for removal."""


def change_of(
    before: JobState | None,
    after: JobState,
    events: Sequence[AnyEvent],
    *,
    meta: dict[str, Any],
    files: bool,
    derive_only: bool = False,
) -> JobChange:
    """The commit that takes a job from ``before`` to ``after`` by ``events``.

    ``files``: S3 ``task_files`` are on, so an ended job's folder is emptied.
    ``derive_only``: the rows of a loaded log (an import), which announces nothing:
    no webhook, no wake-up, no clean-up; those happened, or were owed, when the log
    was first written.
    """
    ended_now = not derive_only and after.is_terminal and not (before is not None and before.is_terminal)
    # Records alone (a fork taken of the job) change nothing it waits on: its step, which an
    # instance may hold right now to run a handler, is left as it is (re-enqueuing it would take
    # that lease away and let a second instance run the same handler).
    records_only = before is not None and bool(events) and all(isinstance(e, JobForked) for e in events)
    step, due = ("keep", None) if records_only else step_change(before, after)
    return JobChange(
        job_id=after.job_id,
        expected_version=before.version if before else 0,
        events=events,
        meta=meta,
        row=JobRow.of(after),
        step=step,
        step_due=due,
        tasks=task_changes(before, after, events),
        wake=after.parent_job_id if ended_now else None,
        webhook=None if derive_only else webhook_notice(before, after),
        remove_files=ended_now and files,
    )


def webhook_notice(before: JobState | None, after: JobState) -> WebhookNotice | None:
    """The notification a change owes the job's webhook: it ended, or it was quarantined.

    The payload is Avtomatika's (``event``, ``job_id``, ``status``, ``result``, ``error``)
    plus ``event_id``, the same on every attempt, for receivers to de-duplicate by.
    """
    event = _ANNOUNCED.get(after.status)
    if after.webhook_url is None or event is None or (before is not None and before.status == after.status):
        return None
    event_id = f"{after.job_id}:{after.version}"
    payload = {
        "event": event,
        "event_id": event_id,
        "job_id": str(after.job_id),
        "status": after.status,
        "result": result_of(after),
        "error": None if after.error is None else msgspec.to_builtins(after.error),
    }
    return WebhookNotice(url=after.webhook_url, event=event, event_id=event_id, payload=payload)


def step_change(before: JobState | None, after: JobState) -> tuple[StepChange, datetime | None]:
    """A step exists exactly while the job has a handler to run (due now) or a timer (due at its time).

    A timer is a sleep's end or an approval's deadline (``wakes_at``).
    """
    if needs_step(after):
        return "enqueue", None
    if (due := wakes_at(after)) is not None:
        return "enqueue", due
    had_step = before is not None and (needs_step(before) or wakes_at(before) is not None)
    return ("delete" if had_step else "keep"), None


def task_changes(before: JobState | None, after: JobState, events: Sequence[AnyEvent] = ()) -> TaskChanges:
    """The job's task rows follow the attempts it waits on (``pending_attempts``).

    New or retried attempts are queued. An attempt the job stops waiting on goes at
    once when these events answer it (its worker is done with it); otherwise it was
    abandoned (a cancel, a timeout) and its row is marked so that its worker is told.
    """
    was = pending_attempts(before) if before is not None else {}
    now = pending_attempts(after)
    if not was and not now:
        return TaskChanges()
    queued = [pending_task(after, key) for key, attempt in now.items() if was.get(key) != attempt]
    gone = [UUID(key) for key in was if key not in now]
    answered = {event.task_id for event in events if isinstance(event, TaskCompleted | TaskFailed | TaskLost)}
    return TaskChanges(
        queued=queued,
        dropped=[task_id for task_id in gone if task_id in answered],
        cancelled=[task_id for task_id in gone if task_id not in answered],
    )


def abandoned_child(before: JobState | None, after: JobState, events: Sequence[AnyEvent]) -> UUID | None:
    """The child job a change stopped waiting on before it ended (a cancel, a timeout): to cancel."""
    if before is None or before.child is None:
        return None
    child_id = before.child.job_id
    if after.child is not None and after.child.job_id == child_id:
        return None
    if any(isinstance(event, ChildEnded) and event.child_job_id == child_id for event in events):
        return None
    return child_id
