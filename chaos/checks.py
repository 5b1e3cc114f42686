"""The invariants, checked on the database after a run.

Why SQL lives here and not in adapters/postgres: this is a checker, not a part of
chronik. It reads the log and the queues as they are stored, independently of the
code under test (which could be wrong in the same way twice), and chronik has no
business exposing "find duplicated results" as an operation. It only reads. The one
comparison that must be chronik's own, a job's row against the fold of its log,
reuses ``refold_differences``, as the test suite does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from chronik.adapters.postgres.jobs import refold_differences

__all__ = ["Findings", "check", "tasks_held", "unfinished"]

TERMINAL = ("finished", "failed", "cancelled")


@dataclass
class Findings:
    """What the checks found; every list is empty on a run that kept every promise."""

    jobs: int = 0
    """Jobs the load created: answered 202, or found by the key of a create whose answer was lost."""
    answers_lost: int = 0
    """Creates whose answer never came but whose job exists (found by idempotency key)."""
    lost: list[str] = field(default_factory=list)
    """Jobs answered 202 whose log or row is missing."""
    duplicated: list[str] = field(default_factory=list)
    """Two jobs for one key, gaps or repeats in a job's versions, a task attempt's result applied twice."""
    stuck: list[str] = field(default_factory=list)
    """Jobs that have not ended (and do not legitimately wait)."""
    failed: list[str] = field(default_factory=list)
    """Jobs that ended failed: none of the harness's jobs should."""
    row_differs: list[str] = field(default_factory=list)
    """Jobs whose ``jobs`` row is not the fold of their events."""
    unexpected: list[str] = field(default_factory=list)
    """Jobs in the database that no create of the load made."""

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.duplicated or self.stuck or self.failed or self.row_differs or self.unexpected
        )


async def check(dsn: str, accepted: dict[str, str], unanswered: set[str]) -> Findings:
    """Check every invariant of docs/reliability.md on the database behind ``dsn``."""
    conn = await asyncpg.connect(dsn)
    try:
        return await _check(conn, accepted, unanswered)
    finally:
        await conn.close()


async def _check(conn: asyncpg.Connection, accepted: dict[str, str], unanswered: set[str]) -> Findings:
    found = Findings()
    expected = {key: UUID(job_id) for key, job_id in accepted.items()}
    for row in await conn.fetch(
        "SELECT key, job_id FROM idempotency_keys WHERE key = ANY($1::text[])", sorted(unanswered)
    ):
        expected[row["key"]] = row["job_id"]
        found.answers_lost += 1
    found.jobs = len(expected)

    created = await conn.fetch(
        "SELECT job_id, data->'initial_data'->>'key' AS key FROM events WHERE type = 'JobCreated'"
    )
    by_key: dict[str, list[UUID]] = {}
    for row in created:
        by_key.setdefault(row["key"], []).append(row["job_id"])
    for key, job_ids in by_key.items():
        if len(job_ids) > 1:
            found.duplicated.append(f"key {key}: {len(job_ids)} jobs {[str(j) for j in job_ids]}")
        if key not in expected:
            found.unexpected.append(f"key {key}: job {job_ids[0]}")

    rows = {r["job_id"]: r for r in await conn.fetch("SELECT job_id, status, current_state FROM jobs")}
    logged = {r["job_id"] for r in created}
    for key, job_id in expected.items():
        if job_id not in logged or job_id not in rows:
            found.lost.append(f"key {key}: job {job_id} (log: {job_id in logged}, row: {job_id in rows})")

    # Versions 1..n, each once: the unique (job_id, version) forbids repeats, a gap would mean a lost event.
    for row in await conn.fetch(
        "SELECT job_id, count(*) AS n, min(version) AS lo, max(version) AS hi,"
        " count(DISTINCT version) AS distinct_versions FROM events GROUP BY job_id"
        " HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)"
    ):
        found.duplicated.append(f"job {row['job_id']}: {row['n']} events, versions {row['lo']}..{row['hi']}")

    # One outcome per task attempt: completed, failed or lost, never two of them.
    for row in await conn.fetch(
        "SELECT job_id, data->>'task_id' AS task_id, data->>'attempt' AS attempt,"
        " array_agg(type ORDER BY version) AS types FROM events"
        " WHERE type IN ('TaskCompleted', 'TaskFailed', 'TaskLost')"
        " GROUP BY job_id, data->>'task_id', data->>'attempt' HAVING count(*) > 1"
    ):
        found.duplicated.append(
            f"job {row['job_id']} task {row['task_id']} attempt {row['attempt']}: {list(row['types'])}"
        )

    for job_id, row in rows.items():
        if row["status"] == "failed":
            found.failed.append(f"job {job_id} failed in {row['current_state']}")
        elif row["status"] not in TERMINAL:
            found.stuck.append(f"job {job_id}: {row['status']} in {row['current_state']}")
        differences = await refold_differences(conn, job_id)
        if differences:
            found.row_differs.append(f"job {job_id}: {sorted(differences)}")
    return found


async def unfinished(dsn: str) -> int:
    """Jobs that have not ended yet."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status <> ALL($1::text[])", TERMINAL))
    finally:
        await conn.close()


async def tasks_held(dsn: str, worker_id: str) -> int:
    """Tasks ``worker_id`` holds a lease on right now: killing it now kills it mid-task."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE status = 'leased' AND worker_id = $1", worker_id
            )
        )
    finally:
        await conn.close()
