"""The event store: read a job's stream. Appending is ``commit.py``'s one statement."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg

from chronik.core.errors import UnknownEventType
from chronik.core.events import decode_event
from chronik.core.records import LogPosition, RecordedEvent

from .queries import QUERIES

__all__ = ["read_log", "read_stream"]


async def read_log(
    conn: asyncpg.Connection, after: LogPosition, *, limit: int
) -> list[tuple[LogPosition, RecordedEvent]]:
    """The next events of the whole log after ``after``, safe to apply in order (see ``read_log``)."""
    rows = await conn.fetch(QUERIES["read_log"], after.tx, after.position, limit)
    return [(LogPosition(int(row["tx"]), row["position"]), _recorded(row)) for row in rows]


async def read_stream(
    conn: asyncpg.Connection, job_id: UUID, *, after_version: int = 0, limit: int | None = None
) -> list[RecordedEvent]:
    """One job's events in order: all of them, or a page after ``after_version``."""
    rows = await conn.fetch(QUERIES["read_stream"], job_id, after_version, limit)
    return [_recorded(row) for row in rows]


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    event = decode_event(row["type"], row["data"])
    if event is None:
        raise UnknownEventType(row["type"], row["position"])
    return RecordedEvent(
        position=row["position"],
        job_id=UUID(str(row["job_id"])),
        version=row["version"],
        type=row["type"],
        event=event,
        meta=json.loads(row["meta"]),
        recorded_at=row["recorded_at"],
    )
