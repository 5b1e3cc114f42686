"""The event store: append to and read a job's stream.

Functions take a connection so that the caller chooses the transaction: the
engine appends events, writes the inline projection and changes the step queue
in one transaction, so none of them commits without the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik.core.errors import UnknownEventType, VersionConflict
from chronik.core.events import AnyEvent, decode_event, encode_event_data

from .queries import QUERIES

__all__ = ["RecordedEvent", "append", "read_stream"]


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: its place in the log and the domain event."""

    position: int
    job_id: UUID
    version: int
    type: str
    event: AnyEvent
    meta: dict[str, Any]
    recorded_at: datetime


async def append(
    conn: asyncpg.Connection,
    job_id: UUID,
    expected_version: int,
    events: Sequence[AnyEvent],
    *,
    meta: dict[str, Any] | None = None,
) -> list[int]:
    """Append ``events`` after ``expected_version``; return their global positions.

    Raises ``VersionConflict`` when another writer appended first.
    """
    versions = list(range(expected_version + 1, expected_version + 1 + len(events)))
    types = [type(event).__struct_config__.tag for event in events]
    data = [encode_event_data(event).decode() for event in events]
    try:
        # A savepoint keeps the caller's transaction usable after a conflict.
        async with conn.transaction():
            rows = await conn.fetch(
                QUERIES["append_events"], job_id, versions, types, data, json.dumps(meta or {})
            )
    except asyncpg.UniqueViolationError as exc:
        raise VersionConflict(
            f"job {job_id} moved past version {expected_version} while this change was decided"
        ) from exc
    return [row["position"] for row in rows]


async def read_stream(conn: asyncpg.Connection, job_id: UUID) -> list[RecordedEvent]:
    """Every event of one job, in order."""
    rows = await conn.fetch(QUERIES["read_stream"], job_id)
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
