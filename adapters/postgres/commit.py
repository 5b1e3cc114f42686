"""The one statement that commits a change of a job: events, projection row, step and task rows."""

from __future__ import annotations

import asyncpg
import msgspec

from chronik.core.effects import JobChange
from chronik.core.errors import VersionConflict
from chronik.core.events import encode_event_data

from .database import Connection
from .errors import refusing_bad_values
from .jobs import columns_of
from .queries import QUERIES

__all__ = ["commit"]

_encoder = msgspec.json.Encoder()


async def commit(conn: Connection, change: JobChange) -> None:
    """Append the change's events after its ``expected_version`` and write its rows, atomically.

    Raises ``VersionConflict`` when another writer appended first.
    """
    first = change.expected_version + 1
    events, row, tasks, webhook = change.events, change.row, change.tasks, change.webhook
    queued = tasks.queued
    try:
        async with refusing_bad_values():
            await conn.execute(
                QUERIES["commit_job"],
                change.job_id,
                list(range(first, first + len(events))),
                [type(event).__struct_config__.tag for event in events],
                [encode_event_data(event).decode() for event in events],
                _encoder.encode(change.meta).decode(),
                *columns_of(row)[1:],  # $1 is the job's id already
                change.step,
                change.step_due,
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
                change.wake,
                None if webhook is None else webhook.url,
                None if webhook is None else webhook.event,
                None if webhook is None else _encoder.encode(webhook.payload).decode(),
                None if webhook is None else webhook.event_id,
                row.state.traceparent,
                change.remove_files,
            )
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
        # A deadlock here is two writers of one job meeting on its rows: the same race, lost.
        raise VersionConflict(
            f"job {change.job_id} moved past version {change.expected_version} while this change was decided"
        ) from exc
