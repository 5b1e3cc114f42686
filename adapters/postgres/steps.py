"""The ``job_steps`` queue: jobs whose current state's handler must run."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from chronik.core.state import JobState

from .queries import QUERIES

__all__ = [
    "ClaimedStep",
    "claim",
    "give_back_held",
    "renew_leases",
    "reschedule_claimed",
    "retry",
    "seconds_to_next",
]

_state = msgspec.json.Decoder(JobState)


class ClaimedStep(msgspec.Struct, frozen=True):
    """A step leased to this instance, with its job's state when claimed."""

    job_id: UUID
    attempts: int
    claimed_at: datetime
    """The database's clock at the claim: what decides which deadline or timer has come."""
    job: JobState | None = None


async def claim(
    conn: asyncpg.Connection, *, limit: int, lease_seconds: float, instance: str
) -> list[ClaimedStep]:
    """Lease up to ``limit`` due steps to ``instance``."""
    rows = await conn.fetch(QUERIES["claim_steps"], limit, lease_seconds, instance)
    return [
        ClaimedStep(
            UUID(str(row["job_id"])),
            row["attempts"],
            row["claimed_at"],
            None if row["job_state"] is None else _state.decode(row["job_state"]),
        )
        for row in rows
    ]


async def retry(conn: asyncpg.Connection, step: ClaimedStep, *, delay_seconds: float, instance: str) -> None:
    """Give back a step this instance claimed and could not finish, to run again later."""
    await conn.execute(QUERIES["retry_step"], step.job_id, delay_seconds, instance, step.attempts)


async def reschedule_claimed(
    conn: asyncpg.Connection, step: ClaimedStep, *, instance: str, due: datetime | None
) -> None:
    """Hand back a step this instance holds whose job has nothing to do now: due at ``due``, or gone."""
    await conn.execute(QUERIES["reschedule_claimed_step"], step.job_id, instance, step.attempts, due)


async def give_back_held(conn: asyncpg.Connection, job_id: UUID, *, instance: str, version: int) -> None:
    """Free the step a commit whose answer was lost took for ``instance``, if it committed (``version``)."""
    await conn.execute(QUERIES["give_back_held_step"], job_id, instance, version)


async def renew_leases(
    conn: asyncpg.Connection, job_ids: list[UUID], *, lease_seconds: float, instance: str
) -> None:
    """Extend the leases of steps ``instance`` is still running."""
    await conn.execute(QUERIES["renew_step_leases"], job_ids, lease_seconds, instance)


async def seconds_to_next(conn: asyncpg.Connection) -> float | None:
    """Seconds until the next future step is due; ``None`` when there is none."""
    seconds: float | None = await conn.fetchval(QUERIES["seconds_to_next_step"])
    return seconds
