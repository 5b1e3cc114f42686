"""A slow or locked database: a statement stuck behind someone else's lock, or running too long, is cut
by ``DB_LOCK_TIMEOUT_SECONDS`` or ``DB_STATEMENT_TIMEOUT_SECONDS`` and answers 503, not a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from chronik._runtime.setup import prepare_database
from chronik.adapters.postgres.database import lift_timeouts
from chronik.api.app import create_app
from chronik.core.errors import DatabaseBusy
from chronik.demo import review
from chronik.engine import Engine

TOKEN = {"X-Client-Token": "test-token"}


@asynccontextmanager
async def api(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, client_token="test-token", manage_engine=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chronik") as client:
        yield client


@asynccontextmanager
async def held(database_url: str, statement: str, *args: object) -> AsyncIterator[None]:
    """Another session (an operator's psql, a migration) runs ``statement`` in a transaction left open."""
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute(statement, *args)
            yield
            # Leaving the block commits (nothing was changed): the lock goes.
    finally:
        await other.close()


async def written_besides(database_url: str, job_id: str) -> tuple[int, int, int]:
    """Jobs, events and idempotency keys besides ``job_id``'s."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM jobs WHERE job_id <> $1) AS jobs,"
            " (SELECT count(*) FROM events WHERE job_id <> $1) AS events,"
            " (SELECT count(*) FROM idempotency_keys) AS keys",
            UUID(job_id),
        )
        assert row is not None
        return row["jobs"], row["events"], row["keys"]
    finally:
        await conn.close()


def assert_busy(answer: httpx.Response, setting: str) -> None:
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "DATABASE_BUSY"
    assert setting in error["message"] and "send the request again" in error["message"].lower()
    assert answer.headers["retry-after"] == "2"


async def test_a_locked_jobs_table_answers_503_database_busy_at_once_and_recovers(
    make_engine: Callable[..., Any], database_url: str
) -> None:
    # The pool timeout stays at 30 s: the lock timeout alone must end the wait.
    engine: Engine = await make_engine(review, lock_timeout=0.5, pool_timeout=30.0)
    async with api(engine) as client:
        created = await client.post(
            "/api/v1/jobs/review", json={"initial_data": {"amount": 3}}, headers=TOKEN
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        before = await written_besides(database_url, job_id)
        second = {"initial_data": {"amount": 4}}
        keyed = {**TOKEN, "Idempotency-Key": "slow-database-1"}
        with capture_logs() as logs:
            async with held(database_url, "LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"):
                clock = asyncio.get_running_loop().time
                started = clock()
                read = await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)
                assert_busy(read, "DB_LOCK_TIMEOUT_SECONDS")
                refused = await client.post("/api/v1/jobs/review", json=second, headers=keyed)
                assert_busy(refused, "DB_LOCK_TIMEOUT_SECONDS")
                assert clock() - started < 5.0  # well under DB_POOL_TIMEOUT_SECONDS
                # Let the background loops meet the lock too.
                await asyncio.sleep(0.8)
        # Nothing half-written: the refused create left no job, no event, no idempotency key.
        assert await written_besides(database_url, job_id) == before
        # Busy is an operator's event: warnings, never an error with a traceback.
        assert not [entry for entry in logs if entry["log_level"] in ("error", "critical")], logs
        # The lock is gone: the same requests succeed, nothing restarted.
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).status_code == 200
        again = await client.post("/api/v1/jobs/review", json=second, headers=keyed)
        assert again.status_code == 202, again.text
        repeat = await client.post("/api/v1/jobs/review", json=second, headers=keyed)
        assert repeat.json()["job_id"] == again.json()["job_id"]
        listed = (await client.get("/api/v1/jobs?blueprint=review", headers=TOKEN)).json()["jobs"]
        assert sorted(job["job_id"] for job in listed) == sorted([job_id, again.json()["job_id"]])


async def test_a_statement_over_the_statement_timeout_answers_503_database_busy(
    make_engine: Callable[..., Any], database_url: str
) -> None:
    # No lock timeout: the row lock is waited for until the statement timeout cuts the wait. No
    # executor: the job waits for its first step, so that it can be cancelled.
    engine: Engine = await make_engine(review, start=False, lock_timeout=0, statement_timeout=0.5)
    await engine.start(run_executor=False)
    async with api(engine) as client:
        created = await client.post(
            "/api/v1/jobs/review", json={"initial_data": {"amount": 3}}, headers=TOKEN
        )
        job_id = created.json()["job_id"]
        version = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()["version"]
        async with held(database_url, "SELECT 1 FROM jobs WHERE job_id = $1 FOR UPDATE", UUID(job_id)):
            started = asyncio.get_running_loop().time()
            refused = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=TOKEN)
            assert_busy(refused, "DB_STATEMENT_TIMEOUT_SECONDS")
            assert asyncio.get_running_loop().time() - started < 5.0
            # A read takes no row lock: it is served meanwhile.
            read = await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)
            assert read.status_code == 200 and read.json()["version"] == version
        after = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
        assert after["version"] == version and after["status"] != "cancelled"
        cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=TOKEN)
        assert cancelled.status_code == 200, cancelled.text
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        ({}, ("10s", "30s")),  # the defaults
        ({"lock_timeout": 0.5, "statement_timeout": 2.0}, ("500ms", "2s")),
        ({"lock_timeout": 0, "statement_timeout": 0}, ("0", "0")),  # 0: no limit
    ],
)
async def test_the_timeouts_reach_every_pooled_session(
    make_engine: Callable[..., Any], settings: dict[str, float], shown: tuple[str, str]
) -> None:
    engine: Engine = await make_engine(review, start=False, **settings)
    await engine.start(run_executor=False)
    pool = engine.database.pool
    conns = [await pool.acquire() for _ in range(3)]
    try:
        for conn in conns:
            assert (
                await conn.fetchval("SHOW lock_timeout"),
                await conn.fetchval("SHOW statement_timeout"),
            ) == shown
    finally:
        for conn in conns:
            await pool.release(conn)


async def test_lifted_timeouts_let_long_work_run_and_stay_in_its_transaction(
    make_engine: Callable[..., Any],
) -> None:
    engine: Engine = await make_engine(review, start=False, lock_timeout=0.3, statement_timeout=0.3)
    await engine.start(run_executor=False)
    database = engine.database
    async with database.transaction() as conn:
        await lift_timeouts(conn, lock=True)
        await conn.execute("SELECT pg_sleep(0.6)")
        assert await conn.fetchval("SHOW lock_timeout") == "0"
    # SET LOCAL: the session that did the long work is back to the limits, and so is every other.
    with pytest.raises(DatabaseBusy, match=r"DB_STATEMENT_TIMEOUT_SECONDS \(0.3 s\)"):
        async with database.connection() as conn:
            await conn.execute("SELECT pg_sleep(0.6)")
    conns = [await database.pool.acquire() for _ in range(database.pool.get_size() or 1)]
    try:
        for conn in conns:
            assert await conn.fetchval("SHOW statement_timeout") == "300ms"
    finally:
        for conn in conns:
            await database.pool.release(conn)
    with pytest.raises(RuntimeError, match="needs a transaction"):
        async with database.connection() as conn:
            await lift_timeouts(conn)


async def test_migrations_wait_for_another_instance_migrating_beyond_the_timeouts(
    make_engine: Callable[..., Any], database_url: str
) -> None:
    # Two instances deploying at once: the second waits for the first's migrations, however long
    # they take, instead of failing its start after DB_LOCK_TIMEOUT_SECONDS.
    engine: Engine = await make_engine(review, start=False, lock_timeout=0.2, statement_timeout=0.2)
    await engine.start(run_executor=False, run_migrations=False)
    async with held(database_url, "SELECT pg_advisory_xact_lock(hashtext('chronik.migrate'))"):

        async def migrate() -> list[str]:
            async with engine.database.connection() as conn:
                return await prepare_database(conn)

        waiting = asyncio.create_task(migrate())
        await asyncio.sleep(0.8)  # four times either timeout
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, timeout=10) == []
