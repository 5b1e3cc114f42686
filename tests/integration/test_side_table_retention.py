"""Every side table has a rule: the watcher's housekeeping deletes exactly the rows past it.

Rows are written with old timestamps directly, then the adapters' prunes (and the watcher's
sweep, which calls them) run against the real schema. What must stay stays: a pending webhook
notification however old, a recent or the newest fire of each schedule, a worker seen today.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import asyncpg

from chronik._runtime.store import JobStore
from chronik._runtime.watcher import Watcher
from chronik.adapters.config import ScheduleEntry
from chronik.adapters.postgres import idempotency, limits, outbox, schedules, workers
from chronik.adapters.postgres.database import Database
from chronik.adapters.scheduling import FireClock
from chronik.core.retry import RetryPolicy


async def add_delivery(
    conn: asyncpg.Connection, event_id: str, status: str, *, created: str, due: str, delivered: str | None
) -> None:
    """A notification created ``created`` ago, last due ``due`` ago, delivered ``delivered`` ago."""
    await conn.execute(
        "INSERT INTO webhook_deliveries (event_id, job_id, event, url, payload, status, created_at, "
        "next_attempt_at, delivered_at) VALUES ($1, gen_random_uuid(), 'job_finished', 'https://r.example', "
        "'{}', $2, now() - $3::text::interval, now() - $4::text::interval, now() - $5::text::interval)",
        event_id, status, created, due, delivered,
    )  # fmt: skip


async def add_fire(conn: asyncpg.Connection, name: str, ago: str) -> None:
    """A fire of schedule ``name`` that was due ``ago``."""
    await conn.execute(
        "INSERT INTO schedule_runs (name, fire_time, job_id, instance, created_at) "
        "VALUES ($1, now() - $2::text::interval, gen_random_uuid(), 'one', now() - $2::text::interval)",
        name, ago,
    )  # fmt: skip


async def add_worker(conn: asyncpg.Connection, worker_id: str, silent: str) -> None:
    """A worker whose last heartbeat was ``silent`` ago."""
    await conn.execute(
        "INSERT INTO workers (worker_id, registered_at, last_heartbeat_at) "
        "VALUES ($1, now() - $2::text::interval, now() - $2::text::interval)",
        worker_id, silent,
    )  # fmt: skip


async def column(conn: asyncpg.Connection, query: str) -> list[str]:
    return [row[0] for row in await conn.fetch(query)]


async def test_ended_notifications_leave_after_7_days_and_pending_ones_stay(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await add_delivery(
            conn, "delivered-8d", "delivered", created="9 days", due="9 days", delivered="8 days"
        )
        await add_delivery(
            conn, "delivered-6d", "delivered", created="9 days", due="9 days", delivered="6 days"
        )
        await add_delivery(conn, "failed-8d", "failed", created="9 days", due="8 days", delivered=None)
        # Created long ago, but its last attempt failed only yesterday: kept 7 days from its end.
        await add_delivery(conn, "failed-1d", "failed", created="10 days", due="1 day", delivered=None)
        # Pending ones stay however old they are: their attempts are not over.
        await add_delivery(conn, "pending-30d", "pending", created="30 days", due="30 days", delivered=None)
        await add_delivery(
            conn, "pending-now", "pending", created="1 minute", due="0 seconds", delivered=None
        )

        assert await outbox.prune_ended(conn) is False  # two rows: not a whole batch
        left = await column(conn, "SELECT event_id FROM webhook_deliveries ORDER BY event_id")
        assert left == ["delivered-6d", "failed-1d", "pending-30d", "pending-now"]


async def test_schedule_runs_older_than_30_days_leave_but_never_a_schedules_newest(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        for ago in ("40 days", "35 days", "29 days", "1 day"):
            await add_fire(conn, "hourly", ago)
        for ago in ("100 days", "60 days"):
            await add_fire(conn, "monthly", ago)  # the newest is 60 days old: the console's "last fire"
        await add_fire(conn, "yearly", "400 days")  # its only fire

        assert await schedules.prune_fired(conn) is False
        left = await conn.fetch(
            "SELECT name, round(extract(epoch FROM now() - fire_time) / 86400)::int AS days "
            "FROM schedule_runs ORDER BY name, fire_time"
        )
        assert [(row["name"], row["days"]) for row in left] == [
            ("hourly", 29), ("hourly", 1), ("monthly", 60), ("yearly", 400),
        ]  # fmt: skip


async def test_a_kept_fire_still_refuses_a_second_job_after_a_prune(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await add_fire(conn, "nightly", "31 days")
        await add_fire(conn, "nightly", "1 day")
        kept = await conn.fetchval(
            "SELECT fire_time FROM schedule_runs WHERE fire_time > now() - interval '2 days'"
        )
        await schedules.prune_fired(conn)
        assert not await schedules.claim_run(conn, "nightly", kept, job_id=uuid4(), instance="two")
        assert await conn.fetchval("SELECT count(*) FROM schedule_runs") == 1


async def test_the_clock_never_tries_a_fire_as_old_as_a_pruned_one() -> None:
    # prune_schedule_runs counts on this: a fire is tried only within misfire_grace_time of its
    # time, and a clock that starts makes up no earlier fire; both far inside the 30 days kept.
    async def on_fire(entry: ScheduleEntry, fire_time: datetime) -> None: ...

    entry = ScheduleEntry(name="hourly", blueprint="b", input_data={}, interval_seconds=3600)
    clock = FireClock([entry], tz=ZoneInfo("UTC"), on_fire=on_fire)
    clock.start()
    try:
        assert clock._scheduler is not None
        (job,) = clock._scheduler.get_jobs()
        assert job.misfire_grace_time is not None and job.misfire_grace_time <= 3600
        assert job.coalesce
        assert job.next_run_time > datetime.now(UTC)  # from now on, not from the anchor in 2000
    finally:
        await clock.stop()


async def test_workers_silent_for_a_day_leave(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await add_worker(conn, "gone", "25 hours")
        await add_worker(conn, "quiet", "23 hours")
        await add_worker(conn, "live", "5 seconds")

        assert await workers.prune_gone(conn) is False
        assert await column(conn, "SELECT worker_id FROM workers ORDER BY worker_id") == ["live", "quiet"]
        # One that comes back is told to register again, and can.
        assert not await workers.heartbeat(conn, "gone")
        await workers.register(conn, "gone", task_types=["t"], capacity=1, info={})
        assert await workers.heartbeat(conn, "gone")


async def test_each_prune_deletes_one_limited_batch_and_says_when_more_is_due(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for n in range(5):
            await add_delivery(
                conn, f"old-{n}", "delivered", created="9 days", due="9 days", delivered="9 days"
            )
            await add_fire(conn, "tick", f"{40 + n} days")
            await add_worker(conn, f"gone-{n}", "2 days")
        await conn.execute(
            "INSERT INTO idempotency_keys (client, key, job_id, request, created_at) "
            "SELECT 'c', 'k' || n, gen_random_uuid(), 'x', now() - interval '25 hours' "
            "FROM generate_series(1, 5) n"
        )
        await conn.execute(
            "INSERT INTO rate_limit_counters (key, window_start, hits) "
            "SELECT 'worker:w' || n || ':polls', now() - interval '2 days', 1 FROM generate_series(1, 5) n"
        )
        # Five rows past each rule; batches of two: two whole ones, then the rest.
        drained = [(True, 3), (True, 1), (False, 0)]
        cases = {
            "webhook_deliveries": (outbox.prune_ended, drained),
            "workers": (workers.prune_gone, drained),
            "idempotency_keys": (idempotency.prune, drained),
            "rate_limit_counters": (limits.prune, drained),
            # The newest of the five old fires is the schedule's newest: it stays.
            "schedule_runs": (schedules.prune_fired, [(True, 3), (True, 1), (False, 1)]),
        }
        for table, (prune, expected) in cases.items():
            seen = []
            for _ in range(3):
                full = await prune(conn, limit=2)
                seen.append((full, await conn.fetchval(f"SELECT count(*) FROM {table}")))
            assert seen == expected, table


async def test_the_watchers_sweep_applies_every_rule_and_comes_back_for_a_backlog(
    pool: asyncpg.Pool, database_url: str
) -> None:
    watcher = Watcher(
        JobStore(Database(pool, database_url)), interval=1.0, policy=RetryPolicy(), instance="test"
    )
    async with pool.acquire() as conn:
        await add_delivery(conn, "old", "delivered", created="9 days", due="9 days", delivered="9 days")
        await add_delivery(conn, "pending", "pending", created="9 days", due="9 days", delivered=None)
        for ago in ("45 days", "40 days", "2 days"):
            await add_fire(conn, "report", ago)
        # More gone workers than one batch holds: the first sweep cannot take them all.
        await conn.execute(
            "INSERT INTO workers (worker_id, last_heartbeat_at) "
            "SELECT 'gone-' || n, now() - interval '3 days' FROM generate_series(1, 5001) n"
        )
        await add_worker(conn, "live", "1 second")

        await watcher.sweep()
        assert await column(conn, "SELECT event_id FROM webhook_deliveries") == ["pending"]
        assert await conn.fetchval("SELECT count(*) FROM schedule_runs") == 1
        assert await conn.fetchval("SELECT count(*) FROM workers") == 2  # one gone worker, and "live"
        assert watcher._next_prune <= time.monotonic()  # a whole batch went: the next sweep prunes again

        await watcher.sweep()
        assert await column(conn, "SELECT worker_id FROM workers") == ["live"]
        assert watcher._next_prune > time.monotonic() + 60  # nothing left over: back to the usual pace
