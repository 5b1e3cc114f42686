"""``projection_checkpoints``: where each asynchronous projection stands in the log."""

from __future__ import annotations

from datetime import datetime

import msgspec

from chronik.core.records import LogPosition

from .database import Connection
from .queries import QUERIES

__all__ = [
    "Checkpoint",
    "CheckpointStatus",
    "get",
    "horizon_holder",
    "list_with_lag",
    "lock",
    "reset",
    "save",
    "wait_for",
]


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A projection's recorded version and position."""

    version: int
    position: LogPosition


class CheckpointStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a projection stands: its checkpoint and how far behind the log it is."""

    name: str
    version: int
    position: int
    lag_events: int
    lag_seconds: float
    updated_at: datetime
    held_by: str | None = None
    """While it lags: the session whose open transaction holds the log's horizon, if one can be seen."""


async def get(conn: Connection, name: str) -> Checkpoint | None:
    """The projection's checkpoint; ``None`` when it was never set up."""
    row = await conn.fetchrow(QUERIES["get_checkpoint"], name)
    if row is None:
        return None
    return Checkpoint(version=row["version"], position=LogPosition(int(row["tx"]), row["position"]))


async def lock(conn: Connection, name: str) -> LogPosition | None:
    """Take the projection's checkpoint for this transaction; ``None`` when another holds it (no wait)."""
    row = await conn.fetchrow(QUERIES["lock_checkpoint"], name)
    return None if row is None else LogPosition(int(row["tx"]), row["position"])


async def wait_for(conn: Connection, name: str) -> None:
    """Take the projection's checkpoint for this transaction, waiting for its holder."""
    await conn.fetchrow(QUERIES["wait_for_checkpoint"], name)


async def save(conn: Connection, name: str, at: LogPosition) -> None:
    """Move the checkpoint, in the transaction that applied the events up to ``at``."""
    await conn.execute(QUERIES["save_checkpoint"], name, at.tx, at.position)


async def reset(conn: Connection, name: str, version: int) -> None:
    """(Re)start a projection at the beginning of the log, at ``version``."""
    await conn.execute(QUERIES["reset_checkpoint"], name, version)


async def list_with_lag(conn: Connection) -> list[CheckpointStatus]:
    """Every projection's checkpoint and lag."""
    found = []
    for row in await conn.fetch(QUERIES["list_checkpoints"]):
        lag = await conn.fetchrow(QUERIES["log_lag"], int(row["tx"]), row["position"])
        found.append(
            CheckpointStatus(
                name=row["name"],
                version=row["version"],
                position=row["position"],
                lag_events=lag["events"],
                lag_seconds=lag["seconds"] or 0.0,
                updated_at=row["updated_at"],
            )
        )
    if any(status.lag_events for status in found):
        holder = await horizon_holder(conn)
        found = [
            msgspec.structs.replace(status, held_by=holder) if status.lag_events else status
            for status in found
        ]
    return found


async def horizon_holder(conn: Connection) -> str | None:
    """Who holds the projections' horizon: a session with an open transaction that may append."""
    row = await conn.fetchrow(QUERIES["log_horizon_holder"])
    if row is None:
        return None
    since = row["xact_start"].isoformat(timespec="seconds") if row["xact_start"] else "an unknown time"
    return (
        f"pid {row['pid']} (database {row['datname']}, user {row['usename'] or '?'}, "
        f"application {row['application_name'] or '?'}, {row['state'] or 'state hidden'}, "
        f"in a transaction since {since})"
    )
