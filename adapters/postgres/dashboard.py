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


async def count_jobs_by_status(
    conn: Connection, client: str | None, *, live: list[str], ended_within_hours: int
) -> list[StatusCount]:
    """Jobs per status (only the statuses that have jobs): every job of a ``live`` status, and those
    of the others that ended within the last ``ended_within_hours``; ``client`` None: everyone's."""
    if client is None:
        rows = await conn.fetch(QUERIES["count_jobs_by_status"], ended_within_hours, live)
    else:
        rows = await conn.fetch(QUERIES["count_client_jobs_by_status"], ended_within_hours, live, client)
    return [StatusCount(status=row["status"], jobs=row["jobs"], queued=row["queued"]) for row in rows]
