"""What the dashboard reads: jobs per status, one client's or everyone's, in one query."""

from __future__ import annotations

import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = ["StatusCount", "count_jobs_by_status"]


class StatusCount(msgspec.Struct, frozen=True, kw_only=True):
    """The jobs of one status, and their task attempts waiting in the queue for a worker."""

    status: str
    jobs: int
    queued: int


async def count_jobs_by_status(conn: Connection, client: str | None) -> list[StatusCount]:
    """Jobs per status (only the statuses that have jobs); ``client`` None: every client's."""
    if client is None:
        rows = await conn.fetch(QUERIES["count_jobs_by_status"])
    else:
        rows = await conn.fetch(QUERIES["count_client_jobs_by_status"], client)
    return [StatusCount(status=row["status"], jobs=row["jobs"], queued=row["queued"]) for row in rows]
