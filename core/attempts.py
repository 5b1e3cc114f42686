"""A job's task attempts, read from its own task events: who ran each, how long it waited and ran.

The ``task_attempts`` projection holds the same facts for analytics, across jobs. For one job the
job's own events are the better source: they are current the moment they commit (the projection
follows the log asynchronously), they carry the error message and the attempt still open, and
only the handful of task event types needs reading (``ATTEMPT_EVENT_TYPES``), never the whole log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import msgspec

from .audit import LOST_CODES
from .events import (
    AnyEvent,
    ErrorInfo,
    JobCancelled,
    JobRetried,
    ParallelDispatched,
    TaskCompleted,
    TaskDispatched,
    TaskFailed,
    TaskLost,
    TaskRetryScheduled,
    TimedOut,
)

__all__ = ["ATTEMPT_EVENT_TYPES", "TaskAttempt", "task_attempts"]

ATTEMPT_EVENT_TYPES: Final = (
    "TaskDispatched",
    "ParallelDispatched",
    "TaskRetryScheduled",
    "JobRetried",
    "TaskCompleted",
    "TaskFailed",
    "TaskLost",
    "JobCancelled",
    "TimedOut",
)
"""The event types ``task_attempts`` reads: an attempt queued, answered, lost or withdrawn."""

_LOST_MESSAGES = {
    "lease_expired": "the worker stopped renewing its lease",
    "timed_out": "the attempt ran past its timeout",
    "not_taken": "no worker took the attempt within the job's dispatch_timeout",
}


class TaskAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of one task of a job."""

    task_id: UUID
    task_type: str
    state: str
    """The job state whose handler dispatched the task."""
    attempt: int
    available_at: datetime | None
    """When the attempt could be claimed (its dispatch, or the end of a retry's backoff)."""
    claimed_at: datetime | None = None
    ended_at: datetime | None = None
    worker_id: str | None = None
    outcome: str = "open"
    """``completed``, ``failed``, a loss (``lease_expired``, ``timed_out``, ``not_taken``),
    ``withdrawn`` (the job stopped waiting on it), or ``open`` (queued or running now)."""
    status: str | None = None
    """The status the worker returned (``success`` or a custom one), for a completed attempt."""
    error: ErrorInfo | None = None

    @property
    def wait_seconds(self) -> float | None:
        """From available to claimed: time in the queue."""
        if self.claimed_at is None or self.available_at is None:
            return None
        return (self.claimed_at - self.available_at).total_seconds()

    @property
    def run_seconds(self) -> float | None:
        """From claimed to ended: time on the worker."""
        if self.claimed_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.claimed_at).total_seconds()


def task_attempts(events: Iterable[AnyEvent]) -> list[TaskAttempt]:
    """Every attempt the events record, in the order they were queued.

    ``events`` are a job's events in version order; any others than ``ATTEMPT_EVENT_TYPES``
    are passed over, so a type-filtered read of the stream is enough.
    """
    tasks: dict[UUID, tuple[str, str]] = {}
    found: dict[tuple[UUID, int], TaskAttempt] = {}
    open_keys: dict[tuple[UUID, int], None] = {}

    def queue(task_id: UUID, attempt: int, available_at: datetime) -> None:
        task_type, state = tasks.get(task_id, ("?", "?"))
        key = (task_id, attempt)
        found[key] = TaskAttempt(
            task_id=task_id, task_type=task_type, state=state, attempt=attempt, available_at=available_at
        )
        open_keys[key] = None

    def end(
        task_id: UUID,
        attempt: int,
        at: datetime,
        *,
        outcome: str,
        claimed_at: datetime | None = None,
        worker_id: str | None = None,
        status: str | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        key = (task_id, attempt)
        if key not in found:  # an answer to an attempt queued before the events given (defensive)
            task_type, state = tasks.get(task_id, ("?", "?"))
            found[key] = TaskAttempt(
                task_id=task_id, task_type=task_type, state=state, attempt=attempt, available_at=None
            )
        found[key] = msgspec.structs.replace(
            found[key],
            claimed_at=claimed_at,
            ended_at=at,
            worker_id=worker_id or None,
            outcome=outcome,
            status=status,
            error=error,
        )
        open_keys.pop(key, None)

    for event in events:
        match event:
            case TaskDispatched():
                tasks[event.task_id] = (event.task_type, event.state)
                queue(event.task_id, 1, event.at)
            case ParallelDispatched():
                for branch in event.branches:
                    tasks[branch.task_id] = (branch.task_type, event.state)
                    queue(branch.task_id, 1, event.at)
            case TaskRetryScheduled():
                queue(event.task_id, event.attempt, event.at + timedelta(seconds=event.delay_seconds))
            case JobRetried():
                queue(event.task_id, event.attempt, event.at)
            case TaskCompleted():
                end(event.task_id, event.attempt, event.at, outcome="completed", claimed_at=event.claimed_at,
                    worker_id=event.worker_id, status=event.status)  # fmt: skip
            case TaskFailed():
                end(event.task_id, event.attempt, event.at, outcome="failed", claimed_at=event.claimed_at,
                    worker_id=event.worker_id, error=event.error)  # fmt: skip
            case TaskLost():
                code = "DISPATCH_TIMEOUT" if event.reason == "not_taken" else LOST_CODES.get(event.reason)
                error = ErrorInfo(
                    code=code or "TRANSIENT_ERROR", message=_LOST_MESSAGES.get(event.reason, event.reason)
                )
                end(event.task_id, event.attempt, event.at, outcome=event.reason, claimed_at=event.claimed_at,
                    worker_id=event.worker_id, error=error)  # fmt: skip
            case JobCancelled() | TimedOut():
                # The job stopped waiting: whatever was still queued or running is withdrawn.
                for task_id, attempt in list(open_keys):
                    end(task_id, attempt, event.at, outcome="withdrawn")
            case _:
                pass
    return list(found.values())
