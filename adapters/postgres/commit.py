"""The one statement that commits a change of a job: events, projection row, step and task rows."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from chronik.core.effects import JobChange
from chronik.core.errors import VersionConflict
from chronik.core.events import encode_event_data

from .database import Connection
from .errors import refusing_bad_values
from .jobs import columns_of
from .queries import QUERIES

__all__ = ["Committed", "StepHold", "commit"]

_encoder = msgspec.json.Encoder()


class StepHold(msgspec.Struct, frozen=True, kw_only=True):
    """This instance takes the step the change enqueues, to run its handler at once itself."""

    instance: str
    lease_seconds: float


class Committed(msgspec.Struct, frozen=True, kw_only=True):
    """What the statement answered: the held step's claim count (``None``: not held), and its clock."""

    step_attempts: int | None
    at: datetime


async def commit(conn: Connection, change: JobChange, *, hold: StepHold | None = None) -> Committed:
    """Append the change's events after its ``expected_version`` and write its rows, atomically.

    With ``hold``, a step the change enqueues due now is leased to ``hold.instance`` in the same
    statement (no other instance is woken for it). Raises ``VersionConflict`` when another
    writer appended first.
    """
    first = change.expected_version + 1
    events, row, tasks, webhook = change.events, change.row, change.tasks, change.webhook
    queued = tasks.queued
    try:
        async with refusing_bad_values():
            row = await conn.fetchrow(
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
                None if hold is None else hold.lease_seconds,
                None if hold is None else hold.instance,
                [task.dispatch_timeout for task in queued],
            )
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
        # A deadlock here is two writers of one job meeting on its rows: the same race, lost.
        raise VersionConflict(
            f"job {change.job_id} moved past version {change.expected_version} while this change was decided"
        ) from exc
    return Committed(step_attempts=row["step_attempts"], at=row["at"])
