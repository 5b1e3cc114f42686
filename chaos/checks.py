"""The invariants, checked on the database after a run.

Why SQL lives here and not in adapters/postgres: this is a checker, not a part of
chronik. It reads the log and the queues as they are stored, independently of the
code under test (which could be wrong in the same way twice), and chronik has no
business exposing "find duplicated results" as an operation. It only reads. The one
comparison that must be chronik's own, a job's row against the fold of its log,
reuses ``refold_differences``, as the test suite does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from chaos.receiver import Receiver
from chronik.adapters.postgres.jobs import refold_differences
from chronik.adapters.postgres.listener import LISTENER_APPLICATION_NAME

__all__ = [
    "Findings",
    "check",
    "legitimately_waiting",
    "listeners",
    "notifications_pending",
    "tasks_held",
    "unfinished",
]

TERMINAL = ("finished", "failed", "cancelled")
NOTICE_OF = {"finished": "job_finished", "failed": "job_failed", "cancelled": "job_cancelled"}


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
    waiting: int = 0
    """Jobs that legitimately wait: left waiting for a decision on purpose, its deadline ahead."""
    notifications: int = 0
    """Webhook notifications the ended jobs owed (one each)."""
    redelivered: int = 0
    """Notifications the receiver accepted more than once (at least once at work; no defect)."""
    webhooks: list[str] = field(default_factory=list)
    """A notification owed and not delivered, under an id that is not the job's end event, with
    two bodies under one id, badly signed, or arrived without an outbox row."""

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.stuck
            or self.failed
            or self.row_differs
            or self.unexpected
            or self.webhooks
        )


async def check(
    dsn: str,
    accepted: dict[str, str],
    unanswered: set[str],
    *,
    parked: dict[str, str] | None = None,
    receiver: Receiver | None = None,
) -> Findings:
    """Check every invariant of docs/reliability.md on the database behind ``dsn``: ``parked`` jobs
    may still wait for their decision; with a ``receiver``, every ended job's webhook must be in it."""
    conn = await asyncpg.connect(dsn)
    try:
        found = await _check(conn, accepted, unanswered, set((parked or {}).values()))
        if receiver is not None:
            await _check_webhooks(conn, receiver, found)
        return found
    finally:
        await conn.close()


async def _check(
    conn: asyncpg.Connection, accepted: dict[str, str], unanswered: set[str], parked: set[str]
) -> Findings:
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

    rows = {
        r["job_id"]: r
        for r in await conn.fetch(
            "SELECT job_id, status, current_state, now() AS now,"
            " (state->'approval'->>'timeout_at')::timestamptz AS decide_by FROM jobs"
        )
    }
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
        elif legitimately_waiting(row, str(job_id) in parked):
            found.waiting += 1
        elif row["status"] not in TERMINAL:
            found.stuck.append(f"job {job_id}: {row['status']} in {row['current_state']}")
        differences = await refold_differences(conn, job_id)
        if differences:
            found.row_differs.append(f"job {job_id}: {sorted(differences)}")
    return found


def legitimately_waiting(row: Mapping[str, Any], parked: bool) -> bool:
    """A job left waiting for its decision on purpose, whose decision is not overdue."""
    decide_by: datetime | None = row["decide_by"]
    waits = row["status"] == "waiting_for_human"
    return parked and waits and decide_by is not None and decide_by > row["now"]


async def _check_webhooks(conn: asyncpg.Connection, receiver: Receiver, found: Findings) -> None:
    """Every ended job owes one notification, under the id ``<job_id>:<version of its end event>``;
    the receiver must have it (at least once) and only ever one body under that id."""
    outbox = {
        r["event_id"]: r
        for r in await conn.fetch(
            "SELECT d.event_id, d.job_id, d.event, d.status, d.attempts, e.type AS logged"
            " FROM webhook_deliveries d LEFT JOIN events e"
            " ON e.job_id = d.job_id AND e.version = split_part(d.event_id, ':', 2)::int"
            " AND e.job_time = chronik_job_time_v1(d.job_id)"
        )
    }
    ended = await conn.fetch("SELECT job_id, status FROM jobs WHERE status = ANY($1::text[])", TERMINAL)
    owed = {(r["job_id"], NOTICE_OF[r["status"]]) for r in ended}
    found.notifications = len(owed)
    noted = {(r["job_id"], r["event"]) for r in outbox.values()}
    for job_id, event in sorted(owed - noted):
        found.webhooks.append(f"job {job_id}: no {event} notification in the outbox")
    for event_id, row in outbox.items():
        if row["logged"] not in ("JobFinished", "JobFailed", "JobCancelled", "JobQuarantined"):
            found.webhooks.append(f"{event_id}: the id names event {row['logged']!r}, not the job's end")
        if row["status"] != "delivered":
            found.webhooks.append(f"{event_id}: {row['status']} after {row['attempts']} attempts")
        elif event_id not in receiver.receipts:
            found.webhooks.append(f"{event_id}: marked delivered, never received")
    for event_id, bodies in receiver.bodies.items():
        if event_id not in outbox:
            found.webhooks.append(f"{event_id}: received, no such notification in the outbox")
        if len(bodies) > 1:
            found.webhooks.append(f"{event_id}: {len(bodies)} different bodies under one id")
    found.webhooks.extend(f"{event_id}: bad signature" for event_id in receiver.bad_signatures)
    found.redelivered = receiver.redelivered


async def unfinished(dsn: str, parked: dict[str, str] | None = None) -> int:
    """Jobs that have not ended yet, leaving out those ``parked`` on purpose."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE status <> ALL($1::text[]) AND NOT job_id = ANY($2::uuid[])",
                TERMINAL,
                [UUID(job_id) for job_id in (parked or {}).values()],
            )
        )
    finally:
        await conn.close()


async def notifications_pending(dsn: str) -> int:
    """Webhook notifications not yet delivered (or given up)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))
    finally:
        await conn.close()


async def listeners(dsn: str) -> list[tuple[int, datetime]]:
    """(pid, session start) of every instance's LISTEN session on the database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = $1 ORDER BY pid",
            LISTENER_APPLICATION_NAME,
        )
        return [(r["pid"], r["backend_start"]) for r in rows]
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
