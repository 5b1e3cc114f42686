"""What the console's overview, schedules and analytics pages read, one client's or everyone's.

Every read is an index range or a probe per row of a small table (see each query's comment in
``sql/queries/console.sql``), except the analytics views, which run under a statement timeout.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = [
    "Analytics",
    "CodeCount",
    "EndedCount",
    "LastRun",
    "QueueDepth",
    "StateTime",
    "TaskErrorRate",
    "analytics",
    "failure_codes",
    "jobs_per_minute",
    "last_schedule_runs",
    "queue_depth",
]


async def jobs_per_minute(
    conn: Connection, since: datetime, client: str | None
) -> tuple[dict[datetime, int], dict[datetime, int]]:
    """Jobs created, and jobs ended, per minute since ``since`` (minutes without any are absent)."""
    if client is None:
        rows = await conn.fetch(QUERIES["console_jobs_per_minute"], since)
    else:
        rows = await conn.fetch(QUERIES["console_client_jobs_per_minute"], since, client)
    created = {row["minute"]: row["jobs"] for row in rows if row["kind"] == "created"}
    ended = {row["minute"]: row["jobs"] for row in rows if row["kind"] == "ended"}
    return created, ended


class CodeCount(msgspec.Struct, frozen=True, kw_only=True):
    """How many jobs failed with one error code (``""``: a failed job without a code)."""

    code: str
    jobs: int


async def failure_codes(
    conn: Connection, since: datetime, client: str | None, *, limit: int
) -> list[CodeCount]:
    """The ``limit`` most frequent error codes of the jobs that failed since ``since``."""
    if client is None:
        rows = await conn.fetch(QUERIES["console_failure_codes"], since, limit)
    else:
        rows = await conn.fetch(QUERIES["console_client_failure_codes"], since, limit, client)
    return [CodeCount(code=row["code"], jobs=row["jobs"]) for row in rows]


class QueueDepth(msgspec.Struct, frozen=True, kw_only=True):
    """Task attempts in the queue, and how long the oldest available one has waited (None: none)."""

    queued: int
    oldest_seconds: float | None


async def queue_depth(conn: Connection, client: str | None) -> QueueDepth:
    """The queue of every client's tasks, or of ``client``'s jobs' tasks."""
    if client is None:
        row = await conn.fetchrow(QUERIES["console_queue"])
    else:
        row = await conn.fetchrow(QUERIES["console_client_queue"], client)
    assert row is not None
    return QueueDepth(queued=row["queued"], oldest_seconds=row["oldest_seconds"])


class LastRun(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule's last fire: when, the job it started, that job's status and owner (None: not kept)."""

    name: str
    fire_time: datetime | None
    job_id: UUID | None
    status: str | None
    client: str | None


async def last_schedule_runs(conn: Connection, names: list[str]) -> dict[str, LastRun]:
    """The last fire of each schedule in ``names``, by name (fire_time None: it never fired)."""
    rows = await conn.fetch(QUERIES["console_last_schedule_runs"], names)
    return {
        row["name"]: LastRun(
            name=row["name"],
            fire_time=row["fire_time"],
            job_id=None if row["job_id"] is None else UUID(str(row["job_id"])),
            status=row["status"],
            client=row["client"],
        )
        for row in rows
    }


class StateTime(msgspec.Struct, frozen=True, kw_only=True):
    """How long a blueprint's jobs stayed in one state: visits that ended, median, 95th percentile."""

    blueprint: str
    state: str
    visits: int
    p50: float
    p95: float


class TaskErrorRate(msgspec.Struct, frozen=True, kw_only=True):
    """A task type's attempts that ended, how many failed or were lost, and their share."""

    task_type: str
    attempts: int
    failed: int
    lost: int
    error_rate: float


class EndedCount(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs that ended in one bucket of time, by how they ended."""

    bucket: datetime
    finished: int
    failed: int
    cancelled: int


class Analytics(msgspec.Struct, frozen=True, kw_only=True):
    """The analytics page's three reads of the ``chronik_analytics`` views."""

    state_times: list[StateTime]
    task_error_rates: list[TaskErrorRate]
    throughput: list[EndedCount]


async def analytics(
    conn: Connection, since: datetime, *, bucket_seconds: float, limit: int, statement_timeout: str
) -> Analytics | None:
    """The analytics of everything since ``since``; None when a read took longer than ``statement_timeout``.

    ``conn`` must be in a transaction: the timeout is set for it only (``SET LOCAL``).
    """
    await conn.fetchval(QUERIES["console_statement_timeout"], statement_timeout)
    try:
        # A savepoint: a cancelled read rolls back to it, and the caller's transaction ends cleanly.
        async with conn.transaction():
            states = await conn.fetch(QUERIES["console_state_times"], since, limit)
            tasks = await conn.fetch(QUERIES["console_task_error_rates"], since, limit)
            ended = await conn.fetch(QUERIES["console_throughput"], since, float(bucket_seconds))
    except asyncpg.QueryCanceledError:
        return None
    return Analytics(
        state_times=[
            StateTime(
                blueprint=row["blueprint"],
                state=row["state"],
                visits=row["visits"],
                p50=row["p50"],
                p95=row["p95"],
            )
            for row in states
        ],
        task_error_rates=[
            TaskErrorRate(
                task_type=row["task_type"],
                attempts=row["attempts"],
                failed=row["failed"],
                lost=row["lost"],
                error_rate=row["error_rate"],
            )
            for row in tasks
        ],
        throughput=[
            EndedCount(
                bucket=row["bucket"],
                finished=row["finished"],
                failed=row["failed"],
                cancelled=row["cancelled"],
            )
            for row in ended
        ],
    )
