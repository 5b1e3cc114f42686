"""``job_history``: the audit trail a person reads, one row per event."""

from __future__ import annotations

from typing import Any, ClassVar

from chronik.core.audit import facts_of

from .framework import Change, Projector

__all__ = ["JobHistory"]


class JobHistory(Projector):
    """Who did what to each job, when, and what it changed."""

    name: ClassVar[str] = "job_history"
    version: ClassVar[int] = 1
    columns: ClassVar[tuple[str, ...]] = (
        "position",
        "job_id",
        "version",
        "blueprint",
        "type",
        "at",
        "recorded_at",
        "actor",
        "status_before",
        "status_after",
        "state_before",
        "state_after",
        "task_id",
        "task_type",
        "attempt",
        "worker_id",
        "error_code",
        "outcome",
        "duration_seconds",
        "summary",
    )

    def rows(self, change: Change) -> list[tuple[Any, ...]]:
        recorded, before, after = change.recorded, change.before, change.after
        facts = facts_of(recorded.event, before, recorded.meta)
        since = (recorded.event.at - before.updated_at).total_seconds() if before is not None else 0.0
        return [
            (
                recorded.position,
                recorded.job_id,
                recorded.version,
                after.blueprint,
                recorded.type,
                recorded.event.at,
                recorded.recorded_at,
                facts.actor,
                before.status if before is not None else None,
                after.status,
                before.current_state if before is not None else None,
                after.current_state,
                facts.task_id,
                facts.task_type,
                facts.attempt,
                facts.worker_id,
                facts.error_code,
                facts.outcome,
                since,
                facts.summary,
            )
        ]
