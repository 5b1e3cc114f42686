"""``idempotency_keys``: a client's key names the job its first use created, for 24 hours."""

from __future__ import annotations

from uuid import UUID

import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = ["KeyHolder", "claim", "holder", "prune"]

_PRUNE_BATCH = 5000
"""Rows one prune statement deletes at most: a short transaction, however large the backlog."""


class KeyHolder(msgspec.Struct, frozen=True, kw_only=True):
    """The job a key names, and the fingerprint of the request that took it."""

    job_id: UUID
    request: str


async def claim(conn: Connection, client: str, key: str, *, job_id: UUID, request: str) -> bool:
    """Take ``key`` for the new ``job_id``; ``False`` when a job took it within 24 hours.

    Two racing requests serialize on the key: the second waits for the first's
    transaction, then finds the key taken.
    """
    taken = await conn.fetchval(QUERIES["claim_idempotency_key"], client, key, job_id, request)
    return taken is not None


async def holder(conn: Connection, client: str, key: str) -> KeyHolder | None:
    """Which job ``key`` names now, and for which request."""
    row = await conn.fetchrow(QUERIES["idempotency_key_job"], client, key)
    return None if row is None else KeyHolder(job_id=UUID(str(row["job_id"])), request=row["request"])


async def prune(conn: Connection, *, limit: int = _PRUNE_BATCH) -> bool:
    """Forget up to ``limit`` keys older than 24 hours: they no longer name a job.

    Returns whether a whole batch went: then more may be due.
    """
    status = await conn.execute(QUERIES["prune_idempotency_keys"], limit)
    return int(status.rpartition(" ")[2]) >= limit
