"""The ``tasks`` queue: task attempts waiting for, or held by, workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik.core.errors import VersionConflict
from chronik.core.state import JobState

from .errors import refusing_bad_values
from .queries import QUERIES

__all__ = [
    "ClaimedTask",
    "ExpiredTask",
    "HeldTask",
    "attempt_history",
    "cancelled_of_worker",
    "claim",
    "delete",
    "expired",
    "extend_leases",
    "find",
    "find_dispatching_job",
    "find_many",
    "lock_job",
    "record_progress",
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
    traceparent: str | None = None


class HeldTask(msgspec.Struct, frozen=True, kw_only=True):
    """The queue row of a task, read with its job's state."""

    task_id: UUID
    job_id: UUID
    task_type: str
    attempt: int
    status: str
    worker_id: str | None
    claimed_at: datetime | None
    job: JobState | None
    """The state of the task's job, read with the row (not for a fan-out's branch read unlocked)."""
    fan_out: bool = False
    """The task is a branch of a fan-out: settle it under the job's row lock."""


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
_state = msgspec.json.Decoder(JobState)


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
            traceparent=row["traceparent"],
        )
        for row in rows
    ]


async def find(conn: asyncpg.Connection, task_id: UUID, *, lock: bool = False) -> HeldTask | None:
    """The task's queue row with its job's state; ``None`` when it has no row.

    With ``lock`` (inside a transaction) the job's row stays locked until the transaction
    ends, so that writers of one job queue up; ``VersionConflict`` when PostgreSQL breaks
    a deadlock with a writer that did not queue.
    """
    try:
        query = QUERIES["find_task_locked"] if lock else QUERIES["find_task"]
        row = await conn.fetchrow(query, task_id)
    except asyncpg.DeadlockDetectedError as exc:
        raise VersionConflict(f"the job of task {task_id} is being changed by another writer") from exc
    return None if row is None else _held(row)


async def find_many(conn: asyncpg.Connection, task_ids: list[UUID]) -> list[HeldTask]:
    """The queue rows of ``task_ids`` that have one, without their jobs' states (``job`` is None)."""
    rows = await conn.fetch(QUERIES["find_tasks"], task_ids)
    return [_held(row) for row in rows]


async def lock_job(conn: asyncpg.Connection, job_id: UUID) -> JobState | None:
    """The job's state, its row locked until the transaction ends; ``None`` when it has no row.

    ``VersionConflict`` when PostgreSQL breaks a deadlock with a writer that did not queue.
    """
    try:
        raw = await conn.fetchval(QUERIES["lock_job_state"], job_id)
    except asyncpg.DeadlockDetectedError as exc:
        raise VersionConflict(f"job {job_id} is being changed by another writer") from exc
    return None if raw is None else _state.decode(raw)


async def find_dispatching_job(conn: asyncpg.Connection, task_id: UUID) -> UUID | None:
    """The job that dispatched ``task_id``, from the log (also after its queue row is gone)."""
    job_id = await conn.fetchval(QUERIES["find_dispatched_task"], str(task_id))
    return None if job_id is None else UUID(str(job_id))


async def delete(conn: asyncpg.Connection, task_id: UUID, *, attempt: int, status: str) -> None:
    """Remove a task's queue row if it still holds ``attempt`` with ``status``."""
    await conn.execute(QUERIES["delete_task"], task_id, attempt, status)


async def extend_leases(
    conn: asyncpg.Connection, worker_id: str, lease_seconds: float, running: list[tuple[UUID, int]] | None
) -> None:
    """Extend the leases of the attempts ``worker_id`` runs (all it holds when ``running`` is None)."""
    task_ids = None if running is None else [task_id for task_id, _ in running]
    attempts = None if running is None else [attempt for _, attempt in running]
    await conn.execute(QUERIES["extend_worker_leases"], worker_id, lease_seconds, task_ids, attempts)


async def cancelled_of_worker(conn: asyncpg.Connection, worker_id: str) -> list[tuple[UUID, int]]:
    """Attempts ``worker_id`` holds whose jobs were cancelled, as (task_id, attempt)."""
    rows = await conn.fetch(QUERIES["cancelled_tasks_of_worker"], worker_id)
    return [(UUID(str(row["task_id"])), row["attempt"]) for row in rows]


async def record_progress(
    conn: asyncpg.Connection,
    task_id: UUID,
    attempt: int,
    worker_id: str,
    *,
    progress: float | None,
    message: str,
    lease_seconds: float,
) -> str | None:
    """Store progress of an attempt ``worker_id`` holds; its status, or ``None`` if it holds none."""
    async with refusing_bad_values():
        status: str | None = await conn.fetchval(
            QUERIES["record_progress"], task_id, worker_id, progress, message, lease_seconds, attempt
        )
    return status


async def attempt_history(
    conn: asyncpg.Connection, job_id: UUID, task_id: UUID, attempt: int, worker_id: str
) -> tuple[bool, bool]:
    """Whether the log already took in a result of this worker's attempt, and whether it lost it."""
    row = await conn.fetchrow(QUERIES["attempt_history"], job_id, str(task_id), attempt, worker_id)
    return bool(row and row["answered"]), bool(row and row["lost"])


async def expired(conn: asyncpg.Connection, *, limit: int) -> list[ExpiredTask]:
    """Held attempts past their lease or deadline (not locked: see ``expired_tasks``)."""
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


def _held(row: asyncpg.Record) -> HeldTask:
    """A task's queue row, with its job's state and fan-out flag when the query read them."""
    state = row.get("job_state")
    return HeldTask(
        task_id=UUID(str(row["task_id"])),
        job_id=UUID(str(row["job_id"])),
        task_type=row["task_type"],
        attempt=row["attempt"],
        status=row["status"],
        worker_id=row["worker_id"],
        claimed_at=row["claimed_at"],
        job=None if state is None else _state.decode(state),
        fan_out=bool(row.get("fan_out")),
    )
