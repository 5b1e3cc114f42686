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

__all__ = ["StepChange", "TaskChanges", "WebhookNotice", "commit"]

StepChange = Literal["enqueue", "delete", "keep"]

_encoder = msgspec.json.Encoder()


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


async def commit(
    conn: asyncpg.Connection,
    *,
    job_id: UUID,
    expected_version: int,
    events: Sequence[AnyEvent],
    meta: dict[str, Any] | None,
    job_row: tuple[Any, ...],
    step: tuple[StepChange, datetime | None],
    tasks: TaskChanges,
    wake: UUID | None = None,
    webhook: WebhookNotice | None = None,
    traceparent: str | None = None,
    remove_files: bool = False,
) -> None:
    """Append ``events`` after ``expected_version`` and apply the row changes, atomically.

    ``job_row`` is the projection row from ``projections.jobs.job_row`` (job id first);
    ``step`` is what happens to the job's step row and, for ``enqueue``, when it is due (None: now);
    ``wake`` is another job whose step becomes due now. Raises ``VersionConflict`` when
    another writer appended first.
    """
    versions = list(range(expected_version + 1, expected_version + 1 + len(events)))
    types = [type(event).__struct_config__.tag for event in events]
    data = [encode_event_data(event).decode() for event in events]
    queued = tasks.queued
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
                step[1],
                [task.task_id for task in queued],
                [task.task_type for task in queued],
                [_encoder.encode(task.params).decode() for task in queued],
                [task.priority for task in queued],
                [task.attempt for task in queued],
                [task.available_at for task in queued],
                [task.timeout_seconds for task in queued],
                [task.dispatched_at for task in queued],
                list(tasks.dropped),
                list(tasks.cancelled),
                wake,
                *(
                    (None, None, None, None)
                    if webhook is None
                    else (
                        webhook.url,
                        webhook.event,
                        _encoder.encode(webhook.payload).decode(),
                        webhook.event_id,
                    )
                ),
                traceparent,
                remove_files,
            )
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
        # A deadlock here is two writers of one job meeting on its rows: the same race, lost.
        raise VersionConflict(
            f"job {job_id} moved past version {expected_version} while this change was decided"
        ) from exc
