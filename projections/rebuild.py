"""Rebuild a projection from the log while the orchestrator keeps running, and report lag.

The rebuild folds the whole log into a shadow table, then, holding the
projection's checkpoint row (the live runner waits), catches the shadow up and
swaps it in: readers see the old table until the swap commits, and the new one after.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from chronik.adapters.postgres.queries import QUERIES
from chronik.core.records import LogPosition

from .framework import Projector, StateCache, apply_batch, table_ddl
from .setup import analytics_grants, install_analytics

__all__ = ["ProjectionStatus", "build_shadow", "differences", "rebuild", "shadow_of", "status"]


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a projection stands: its checkpoint and how far behind the log it is."""

    name: str
    version: int
    position: int
    lag_events: int
    lag_seconds: float
    updated_at: datetime


def shadow_of(projector: Projector) -> str:
    """The table a rebuild fills before it is swapped in."""
    return f"{projector.name}__rebuild"


async def build_shadow(conn: asyncpg.Connection, projector: Projector, *, batch: int = 1000) -> LogPosition:
    """Fold the whole log (as far as it is safe to read) into a fresh shadow table; its position."""
    shadow = shadow_of(projector)
    await conn.execute(f"DROP TABLE IF EXISTS {shadow}")
    await conn.execute(table_ddl(projector, shadow))
    return await _catch_up(conn, projector, shadow, LogPosition(), StateCache(), batch=batch)


async def rebuild(conn: asyncpg.Connection, projector: Projector, *, batch: int = 1000) -> LogPosition:
    """Rebuild ``projector``'s table from the log and swap it in; the position it is at."""
    cache = StateCache()
    shadow = shadow_of(projector)
    await conn.execute(f"DROP TABLE IF EXISTS {shadow}")
    await conn.execute(table_ddl(projector, shadow))
    reached = await _catch_up(conn, projector, shadow, LogPosition(), cache, batch=batch)
    async with conn.transaction():
        await conn.fetchrow(QUERIES["wait_for_checkpoint"], projector.name)
        reached = await _catch_up(conn, projector, shadow, reached, cache, batch=batch)
        grants = await analytics_grants(conn)
        old = f"{projector.name}__old"
        await conn.execute(f"ALTER TABLE {projector.name} RENAME TO {old}")
        await conn.execute(f"DROP TABLE {old} CASCADE")  # and the views on it, installed again below
        await conn.execute(f"ALTER TABLE {shadow} RENAME TO {projector.name}")
        for index in await conn.fetch(QUERIES["table_indexes"], projector.name):
            name = index["indexname"]
            if name.startswith(shadow):
                await conn.execute(f"ALTER INDEX {name} RENAME TO {projector.name}{name[len(shadow) :]}")
        await conn.execute(QUERIES["save_checkpoint"], projector.name, reached.tx, reached.position)
        await install_analytics(conn, grants)
    return reached


async def differences(conn: asyncpg.Connection, projector: Projector) -> tuple[int, int]:
    """Rows only in the live table, and rows only in its shadow: (0, 0) when they are identical."""
    live, shadow = projector.name, shadow_of(projector)
    only_live = await conn.fetchval(f"SELECT count(*) FROM (TABLE {live} EXCEPT ALL TABLE {shadow}) AS d")
    only_shadow = await conn.fetchval(f"SELECT count(*) FROM (TABLE {shadow} EXCEPT ALL TABLE {live}) AS d")
    return int(only_live), int(only_shadow)


async def status(conn: asyncpg.Connection) -> list[ProjectionStatus]:
    """Every projection's checkpoint and lag."""
    found = []
    for row in await conn.fetch(QUERIES["list_checkpoints"]):
        lag = await conn.fetchrow(QUERIES["log_lag"], int(row["tx"]), row["position"])
        found.append(
            ProjectionStatus(
                name=row["name"],
                version=row["version"],
                position=row["position"],
                lag_events=lag["events"],
                lag_seconds=lag["seconds"] or 0.0,
                updated_at=row["updated_at"],
            )
        )
    return found


async def _catch_up(
    conn: asyncpg.Connection,
    projector: Projector,
    table: str,
    at: LogPosition,
    cache: StateCache,
    *,
    batch: int,
) -> LogPosition:
    while (moved := await apply_batch(conn, projector, table, at, cache, limit=batch)) is not None:
        at = moved
    return at
