"""``rate_limit_counters`` (UNLOGGED): request windows and monthly quotas, one statement a check."""

from __future__ import annotations

from .database import Connection
from .queries import QUERIES

__all__ = ["hit_monthly_quota", "hit_rate", "prune"]

_PRUNE_BATCH = 5000
"""Rows one prune statement deletes at most: a short transaction, however large the backlog."""


async def hit_rate(conn: Connection, key: str, per_seconds: float) -> tuple[int, float]:
    """Count one request against ``key`` in its window of ``per_seconds``: hits so far, seconds left."""
    row = await conn.fetchrow(QUERIES["hit_rate_limit"], key, per_seconds)
    return int(row["hits"]), max(0.0, float(row["retry_after"]))


async def hit_monthly_quota(conn: Connection, key: str) -> int:
    """Count one job against ``key``'s calendar month (UTC); the count so far.

    Call it in the transaction that creates the job: a refused or rolled-back
    create takes its count with it.
    """
    hits: int = await conn.fetchval(QUERIES["hit_monthly_quota"], key)
    return hits


async def prune(conn: Connection, *, limit: int = _PRUNE_BATCH) -> bool:
    """Forget up to ``limit`` windows that ended over a day ago (quota months are kept for 40 days).

    Returns whether a whole batch went: then more may be due.
    """
    status = await conn.execute(QUERIES["prune_rate_limits"], limit)
    return int(status.rpartition(" ")[2]) >= limit
