"""The one statement that commits a change of a job: events, projection row, step and task rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from chronik.core.errors import VersionConflict
from chronik.core.events import AnyEvent, encode_event_data
from chronik.core.state import TaskState

from .errors import refusing_bad_values
from .queries import QUERIES

__all__ = ["StepChange", "TaskChange", "commit"]

StepChange = Literal["enqueue", "delete", "keep"]
TaskChange = Literal["queue", "cancel", "drop", "keep"]

_encoder = msgspec.json.Encoder()


async def commit(
    conn: asyncpg.Connection,
    *,
    job_id: UUID,
    expected_version: int,
    events: Sequence[AnyEvent],
    meta: dict[str, Any] | None,
    job_row: tuple[Any, ...],
    step: tuple[StepChange, datetime | None],
    task_change: TaskChange,
    task: TaskState | None,
) -> None:
    """Append ``events`` after ``expected_version`` and apply the row changes, atomically.

    ``job_row`` is the projection row from ``projections.jobs.job_row`` (job id first);
    ``step`` is what happens to the job's step row and, for ``enqueue``, when it is due (None: now).
    Raises ``VersionConflict`` when another writer appended first.
    """
    versions = list(range(expected_version + 1, expected_version + 1 + len(events)))
    types = [type(event).__struct_config__.tag for event in events]
    data = [encode_event_data(event).decode() for event in events]
    queued = task if task_change == "queue" else None
    task_args = (
        (None,) * 8
        if queued is None
        else (
            queued.task_id,
            queued.task_type,
            _encoder.encode(queued.params).decode(),
            queued.priority,
            queued.attempt,
            queued.available_at,
            queued.timeout_seconds,
            queued.dispatched_at,
        )
    )
    try:
        async with refusing_bad_values():
            await conn.execute(
                QUERIES["commit_job"],
                job_id,
                versions,
                types,
                data,
                json.dumps(meta or {}),
                *job_row[1:],
                step[0],
                task_change,
                *task_args,
                step[1],
            )
    except asyncpg.UniqueViolationError as exc:
        raise VersionConflict(
            f"job {job_id} moved past version {expected_version} while this change was decided"
        ) from exc
