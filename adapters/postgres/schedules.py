"""``schedule_runs``: one row per fire of a schedule, so that one fire starts one job."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from .database import Connection
from .queries import QUERIES

__all__ = ["claim_run"]


async def claim_run(conn: Connection, name: str, fire_time: datetime, *, job_id: UUID, instance: str) -> bool:
    """Take one fire for this instance's ``job_id``; ``False`` when another instance took it first."""
    taken = await conn.fetchval(QUERIES["claim_schedule_run"], name, fire_time, job_id, instance)
    return taken is not None
