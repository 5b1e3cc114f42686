"""``file_cleanups``: ended jobs whose S3 folder is still to be emptied."""

from __future__ import annotations

from uuid import UUID

from .database import Connection
from .queries import QUERIES

__all__ = ["claim_due", "finish"]


async def claim_due(conn: Connection, *, limit: int, lease_seconds: float) -> list[UUID]:
    """Lease up to ``limit`` jobs whose folders are to be emptied, for ``lease_seconds``."""
    rows = await conn.fetch(QUERIES["claim_file_cleanups"], limit, lease_seconds)
    return [UUID(str(row["job_id"])) for row in rows]


async def finish(conn: Connection, job_id: UUID) -> None:
    """The job's folder is empty: forget it."""
    await conn.execute(QUERIES["finish_file_cleanup"], job_id)
