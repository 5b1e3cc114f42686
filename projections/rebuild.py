"""Rebuild a projection from the log while the orchestrator keeps running.

The rebuild folds the whole log into a shadow table, then, holding the
projection's checkpoint row (the live runner waits), catches the shadow up and
swaps it in: readers see the old table until the swap commits, and the new one after.
"""

from __future__ import annotations

from chronik.adapters.postgres import checkpoints, projection_tables
from chronik.adapters.postgres.database import Connection, savepoint
from chronik.core.records import LogPosition

from .framework import Projector, StateCache, apply_batch

__all__ = ["build_shadow", "differences", "rebuild", "shadow_of"]


def shadow_of(projector: Projector) -> str:
    """The table a rebuild fills before it is swapped in."""
    return f"{projector.name}__rebuild"


async def build_shadow(conn: Connection, projector: Projector, *, batch: int = 1000) -> LogPosition:
    """Fold the whole log (as far as it is safe to read) into a fresh shadow table; its position."""
    return await _fresh_shadow(conn, projector, StateCache(), batch=batch)


async def rebuild(conn: Connection, projector: Projector, *, batch: int = 1000) -> LogPosition:
    """Rebuild ``projector``'s table from the log and swap it in; the position it is at."""
    cache = StateCache()
    shadow = shadow_of(projector)
    reached = await _fresh_shadow(conn, projector, cache, batch=batch)
    async with savepoint(conn):
        await checkpoints.wait_for(conn, projector.name)
        reached = await _catch_up(conn, projector, shadow, reached, cache, batch=batch)
        grants = await projection_tables.analytics_grants(conn)
        await projection_tables.swap_in(conn, shadow, projector.name)
        await checkpoints.save(conn, projector.name, reached)
        await projection_tables.install_analytics(conn, grants)
    return reached


async def differences(conn: Connection, projector: Projector) -> tuple[int, int]:
    """Rows only in the live table, and rows only in its shadow: (0, 0) when they are identical."""
    return await projection_tables.differences(conn, projector.name, shadow_of(projector))


async def _fresh_shadow(
    conn: Connection, projector: Projector, cache: StateCache, *, batch: int
) -> LogPosition:
    shadow = shadow_of(projector)
    await projection_tables.create_table(conn, projector.name, shadow)
    return await _catch_up(conn, projector, shadow, LogPosition(), cache, batch=batch)


async def _catch_up(
    conn: Connection,
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
