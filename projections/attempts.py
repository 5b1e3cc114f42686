"""``task_attempts``: one row per task attempt that ended, with its wait and run times."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from chronik.core.audit import LOST_CODES
from chronik.core.events import JobCancelled, TaskCompleted, TaskFailed, TaskLost, TimedOut
from chronik.core.state import JobState, pending_attempts, pending_task

from .framework import Change, Projector

__all__ = ["TaskAttempts"]


class TaskAttempts(Projector):
    """Attempts answered by a worker, lost, or withdrawn when their job stopped waiting."""

    name: ClassVar[str] = "task_attempts"
    version: ClassVar[int] = 1
    columns: ClassVar[tuple[str, ...]] = (
        "task_id",
        "attempt",
        "job_id",
        "blueprint",
        "state",
        "task_type",
        "branch",
        "queued_at",
        "claimed_at",
        "ended_at",
        "worker_id",
        "outcome",
        "status",
        "error_code",
        "wait_seconds",
        "run_seconds",
    )

    def rows(self, change: Change) -> list[tuple[Any, ...]]:
        before, after, event = change.before, change.after, change.recorded.event
        if before is None:
            return []
        was = pending_attempts(before)
        if not was:
            return []
        match event:
            case TaskCompleted() if _is_current(was, event.task_id, event.attempt):
                return [
                    self._row(before, event.task_id, event.at, event.claimed_at, event.worker_id, "completed",
                              event.status, None)
                ]  # fmt: skip
            case TaskFailed() if _is_current(was, event.task_id, event.attempt):
                return [
                    self._row(before, event.task_id, event.at, event.claimed_at, event.worker_id, "failed",
                              "failure", event.error.code)
                ]  # fmt: skip
            case TaskLost() if _is_current(was, event.task_id, event.attempt):
                code = LOST_CODES.get(event.reason, "TRANSIENT_ERROR")
                return [
                    self._row(before, event.task_id, event.at, event.claimed_at, event.worker_id or None,
                              event.reason, None, code)
                ]  # fmt: skip
            case JobCancelled() | TimedOut():
                # Attempts the job stopped waiting on without an answer: withdrawn. (Every other
                # way out of waiting follows the answer of the attempt, which has its row.)
                now = pending_attempts(after)
                return [
                    self._row(before, UUID(key), event.at, None, None, "withdrawn", None, None)
                    for key in was
                    if key not in now
                ]
        return []

    @staticmethod
    def _row(
        before: JobState,
        task_id: UUID,
        ended_at: datetime,
        claimed_at: datetime | None,
        worker_id: str | None,
        outcome: str,
        status: str | None,
        error_code: str | None,
    ) -> tuple[Any, ...]:
        task = pending_task(before, str(task_id))
        wait = (claimed_at - task.available_at).total_seconds() if claimed_at is not None else None
        run = (ended_at - claimed_at).total_seconds() if claimed_at is not None else None
        return (
            task_id,
            task.attempt,
            before.job_id,
            before.blueprint,
            task.state,
            task.task_type,
            before.fan_out is not None,
            task.available_at,
            claimed_at,
            ended_at,
            worker_id,
            outcome,
            status,
            error_code,
            wait,
            run,
        )


def _is_current(pending: dict[str, tuple[int, datetime]], task_id: UUID, attempt: int) -> bool:
    current = pending.get(str(task_id))
    return current is not None and current[0] == attempt
