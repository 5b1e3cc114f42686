"""``schedule_runs``: one row per fire of a schedule, so that one fire starts one job."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from .database import Connection
from .queries import QUERIES

__all__ = ["claim_run", "prune_fired"]

_PRUNE_BATCH = 5000
"""Rows one prune statement deletes at most: a short transaction, however large the backlog."""


async def claim_run(conn: Connection, name: str, fire_time: datetime, *, job_id: UUID, instance: str) -> bool:
    """Take one fire for this instance's ``job_id``; ``False`` when another instance took it first."""
    taken = await conn.fetchval(QUERIES["claim_schedule_run"], name, fire_time, job_id, instance)
    return taken is not None


async def prune_fired(conn: Connection, *, limit: int = _PRUNE_BATCH) -> bool:
    """Forget up to ``limit`` fires older than 30 days, never a schedule's newest one.

    Such a fire can never be tried again (the clock tries one only within 30 s of its
    time), so its row no longer guards exactly-once. Returns whether a whole batch
    went: then more may be due.
    """
    status = await conn.execute(QUERIES["prune_schedule_runs"], limit)
    return int(status.rpartition(" ")[2]) >= limit
