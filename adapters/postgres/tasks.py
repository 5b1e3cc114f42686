"""The ``tasks`` queue: task attempts waiting for, or held by, workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik.core.state import JobState, JobStatus

from .queries import QUERIES

__all__ = [
    "ClaimedTask",
    "ExpiredTask",
    "HeldTask",
    "cancelled_of_worker",
    "claim",
    "delete",
    "expired",
    "extend_leases",
    "find_dispatching_job",
    "job_progress",
    "lock",
    "record_progress",
    "sync",
]


class ClaimedTask(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt just leased to a worker."""

    task_id: UUID
    job_id: UUID
    task_type: str
    params: dict[str, Any]
    priority: int
    attempt: int
    timeout_seconds: float | None
    claimed_at: datetime
    deadline_at: datetime | None


class HeldTask(msgspec.Struct, frozen=True, kw_only=True):
    """The queue row of a task, read under a row lock."""

    task_id: UUID
    job_id: UUID
    task_type: str
    attempt: int
    status: str
    worker_id: str | None
    claimed_at: datetime | None


class ExpiredTask(msgspec.Struct, frozen=True, kw_only=True):
    """A held attempt whose lease ran out or that ran past its deadline."""

    task_id: UUID
    job_id: UUID
    attempt: int
    status: str
    worker_id: str | None
    claimed_at: datetime | None
    reason: str


_params = msgspec.json.Decoder(dict[str, Any])


async def sync(conn: asyncpg.Connection, state: JobState) -> None:
    """Make the job's queue rows match its state; call in the transaction that appended.

    A job waiting for a worker has its current attempt queued (a row already holding
    that attempt is left alone); a cancelled job's held attempt is marked so its
    worker is told; any other job has no rows.
    """
    task = state.task
    if state.status == JobStatus.WAITING_FOR_WORKER and task is not None:
        await conn.execute(
            QUERIES["queue_task"],
            task.task_id,
            state.job_id,
            task.task_type,
            msgspec.json.encode(task.params).decode(),
            task.priority,
            task.attempt,
            task.available_at,
            task.timeout_seconds,
            task.dispatched_at,
        )
    elif state.status == JobStatus.CANCELLED:
        await conn.execute(QUERIES["cancel_job_tasks"], state.job_id)
    else:
        await conn.execute(QUERIES["drop_job_tasks"], state.job_id)


async def claim(
    conn: asyncpg.Connection, *, worker_id: str, task_types: list[str], limit: int, lease_seconds: float
) -> list[ClaimedTask]:
    """Lease up to ``limit`` queued attempts of ``task_types`` to ``worker_id``."""
    rows = await conn.fetch(QUERIES["claim_tasks"], worker_id, task_types, limit, lease_seconds)
    return [
        ClaimedTask(
            task_id=UUID(str(row["task_id"])),
            job_id=UUID(str(row["job_id"])),
            task_type=row["task_type"],
            params=_params.decode(row["params"]),
            priority=row["priority"],
            attempt=row["attempt"],
            timeout_seconds=row["timeout_seconds"],
            claimed_at=row["claimed_at"],
            deadline_at=row["deadline_at"],
        )
        for row in rows
    ]


async def lock(conn: asyncpg.Connection, task_id: UUID) -> HeldTask | None:
    """The task's queue row under a row lock; ``None`` when it has none."""
    row = await conn.fetchrow(QUERIES["lock_task"], task_id)
    if row is None:
        return None
    return HeldTask(
        task_id=UUID(str(row["task_id"])),
        job_id=UUID(str(row["job_id"])),
        task_type=row["task_type"],
        attempt=row["attempt"],
        status=row["status"],
        worker_id=row["worker_id"],
        claimed_at=row["claimed_at"],
    )


async def find_dispatching_job(conn: asyncpg.Connection, task_id: UUID) -> UUID | None:
    """The job that dispatched ``task_id``, from the log (also after its queue row is gone)."""
    job_id = await conn.fetchval(QUERIES["find_dispatched_task"], str(task_id))
    return None if job_id is None else UUID(str(job_id))


async def delete(conn: asyncpg.Connection, task_id: UUID) -> None:
    """Remove a task's queue row."""
    await conn.execute(QUERIES["delete_task"], task_id)


async def extend_leases(conn: asyncpg.Connection, worker_id: str, lease_seconds: float) -> None:
    """Extend every lease ``worker_id`` holds."""
    await conn.execute(QUERIES["extend_worker_leases"], worker_id, lease_seconds)


async def cancelled_of_worker(conn: asyncpg.Connection, worker_id: str) -> list[tuple[UUID, int]]:
    """Attempts ``worker_id`` holds whose jobs were cancelled, as (task_id, attempt)."""
    rows = await conn.fetch(QUERIES["cancelled_tasks_of_worker"], worker_id)
    return [(UUID(str(row["task_id"])), row["attempt"]) for row in rows]


async def record_progress(
    conn: asyncpg.Connection,
    task_id: UUID,
    worker_id: str,
    *,
    progress: float | None,
    message: str,
    lease_seconds: float,
) -> str | None:
    """Store progress of an attempt ``worker_id`` holds; its status, or ``None`` if it holds none."""
    status: str | None = await conn.fetchval(
        QUERIES["record_progress"], task_id, worker_id, progress, message, lease_seconds
    )
    return status


async def job_progress(conn: asyncpg.Connection, job_id: UUID) -> dict[str, Any] | None:
    """The last progress a worker reported for the job's current attempt."""
    row = await conn.fetchrow(QUERIES["job_progress"], job_id)
    if row is None:
        return None
    return {
        "progress": row["progress"],
        "message": row["progress_message"],
        "at": row["progress_at"],
        "worker_id": row["worker_id"],
    }


async def expired(conn: asyncpg.Connection, *, limit: int) -> list[ExpiredTask]:
    """Held attempts past their lease or deadline, locked (call inside a transaction)."""
    rows = await conn.fetch(QUERIES["expired_tasks"], limit)
    return [
        ExpiredTask(
            task_id=UUID(str(row["task_id"])),
            job_id=UUID(str(row["job_id"])),
            attempt=row["attempt"],
            status=row["status"],
            worker_id=row["worker_id"],
            claimed_at=row["claimed_at"],
            reason=row["reason"],
        )
        for row in rows
    ]
