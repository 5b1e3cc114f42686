"""Reads of one job for the console's job page: typed pages of its stream, its moves, its open tasks.

Each is bounded by something other than the length of the job's log (a page size, the number of
distinct moves, the job's queue rows), so a job of many thousands of events reads as fast as any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import msgspec

from chronik.core.records import RecordedEvent

from .database import Connection
from .event_store import _recorded
from .queries import QUERIES

__all__ = ["OpenTask", "events_of_types", "moves", "open_tasks", "version_after_types"]


class OpenTask(msgspec.Struct, frozen=True, kw_only=True):
    """A queue row of a job's attempt: ``queued`` for a worker, or ``leased`` to one."""

    task_id: UUID
    attempt: int
    status: str
    worker_id: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None


async def events_of_types(
    conn: Connection, job_id: UUID, types: Sequence[str], *, upto: int, limit: int | None
) -> list[RecordedEvent]:
    """The job's events of ``types`` at or below version ``upto``, newest first, at most ``limit``."""
    rows = await conn.fetch(QUERIES["job_events_of_types_down"], job_id, list(types), upto, limit)
    return [_recorded(row) for row in rows]


async def version_after_types(
    conn: Connection, job_id: UUID, types: Sequence[str], *, after: int, limit: int
) -> tuple[int | None, int]:
    """The newest version among the next ``limit`` events of ``types`` above ``after`` (None: none),
    and how many of them there are."""
    row = await conn.fetchrow(QUERIES["job_version_after_types"], job_id, list(types), after, limit)
    assert row is not None
    return row["newest"], int(row["found"])


async def moves(conn: Connection, job_id: UUID) -> dict[tuple[str | None, str], int]:
    """How many times the job moved from one state to another; ``(None, start)`` for its start."""
    rows = await conn.fetch(QUERIES["job_moves"], job_id)
    return {(row["from_state"], row["state"]): int(row["times"]) for row in rows}


async def open_tasks(conn: Connection, job_id: UUID) -> list[OpenTask]:
    """The job's attempts in the task queue now."""
    rows = await conn.fetch(QUERIES["job_open_tasks"], job_id)
    return [
        OpenTask(
            task_id=row["task_id"],
            attempt=row["attempt"],
            status=row["status"],
            worker_id=row["worker_id"],
            claimed_at=row["claimed_at"],
            lease_expires_at=row["lease_expires_at"],
        )
        for row in rows
    ]
