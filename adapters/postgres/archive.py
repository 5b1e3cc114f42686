"""The log in bulk: read it out in position order, and load an export into an empty database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = ["ExportedEvent", "continue_positions", "count_events", "insert_events", "stream_events"]


class ExportedEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One event as an export holds it: a line of ``chronik events export``."""

    position: int
    job_id: UUID
    version: int
    type: str
    data: dict[str, Any]
    meta: dict[str, Any]
    recorded_at: datetime


_data = msgspec.json.Decoder(dict[str, Any])


async def stream_events(conn: Connection, *, since: int) -> AsyncIterator[ExportedEvent]:
    """Every event after position ``since``, in position order (inside a transaction: a cursor)."""
    async for row in conn.cursor(QUERIES["export_events"], since, prefetch=1000):
        yield ExportedEvent(
            position=row["position"],
            job_id=UUID(str(row["job_id"])),
            version=row["version"],
            type=row["type"],
            data=_data.decode(row["data"]),
            meta=_data.decode(row["meta"]),
            recorded_at=row["recorded_at"],
        )


async def count_events(conn: Connection) -> int:
    """How many events the log holds."""
    count: int = await conn.fetchval(QUERIES["count_events"])
    return count


async def insert_events(conn: Connection, batch: Sequence[ExportedEvent]) -> None:
    """Load exported events with their own positions (an import into an empty database)."""
    if not batch:
        return
    await conn.execute(
        QUERIES["import_events"],
        [line.position for line in batch],
        [line.job_id for line in batch],
        [line.version for line in batch],
        [line.type for line in batch],
        [msgspec.json.encode(line.data).decode() for line in batch],
        [msgspec.json.encode(line.meta).decode() for line in batch],
        [line.recorded_at for line in batch],
    )


async def continue_positions(conn: Connection) -> None:
    """After an import, new events continue after the highest imported position."""
    await conn.execute(QUERIES["continue_positions"])
