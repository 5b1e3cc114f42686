"""The log in bulk: read it out in position order, and load an export into an empty database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = [
    "ExportedEvent",
    "canonical_json",
    "continue_positions",
    "count_events",
    "insert_events",
    "stream_events",
]


class ExportedEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One event as an export holds it: a line of ``chronik events export``."""

    position: int
    job_id: UUID
    version: int
    type: str
    data: dict[str, Any]
    meta: dict[str, Any]
    recorded_at: datetime
    hash: str | None = None
    """The event's link in its job's hash chain (hex); exports since the log was chained carry it."""


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
            hash=bytes(row["hash"]).hex(),
        )


async def count_events(conn: Connection) -> int:
    """How many events the log holds."""
    count: int = await conn.fetchval(QUERIES["count_events"])
    return count


async def canonical_json(conn: Connection, documents: Sequence[str]) -> list[str]:
    """Each JSON document as PostgreSQL stores it (jsonb's text form), which the hash chain encodes."""
    rows = await conn.fetch(QUERIES["canonical_json"], list(documents))
    return [row["text"] for row in rows]


async def insert_events(
    conn: Connection,
    batch: Sequence[ExportedEvent],
    *,
    data: Sequence[str],
    meta: Sequence[str],
    hashes: Sequence[bytes],
) -> None:
    """Load exported events with their own positions and chain hashes (an import, or a restore).

    ``data`` and ``meta`` are the events' JSON as the file holds it, so nothing is lost to a float.
    """
    if not batch:
        return
    await conn.execute(
        QUERIES["import_events"],
        [line.position for line in batch],
        [line.job_id for line in batch],
        [line.version for line in batch],
        [line.type for line in batch],
        list(data),
        list(meta),
        [line.recorded_at for line in batch],
        list(hashes),
    )


async def continue_positions(conn: Connection) -> None:
    """After an import, new events continue after the highest imported position."""
    await conn.execute(QUERIES["continue_positions"])
