"""Long transactions that cannot write the log do not hold the projections back; chronik's own do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from chronik.demo import review
from chronik.engine import Engine
from tests.conftest import wait_for


@contextlib.asynccontextmanager
async def _open_transaction(dsn: str, database: str | None = None, **settings: str) -> AsyncIterator[int]:
    """A session holding a transaction id open (what a pg_dump, a report or a psql session does)."""
    conn = await asyncpg.connect(dsn, database=database, server_settings=settings)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.fetchval("SELECT pg_current_xact_id()")  # takes a transaction id
        yield conn.get_server_pid()
        await transaction.rollback()
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _other_database(database_url: str) -> AsyncIterator[str]:
    name = f"other_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _finished_jobs(engine: Engine, count: int) -> list[UUID]:
    jobs = [(await engine.create_job("review", {"amount": 5})).job_id for _ in range(count)]
    for job_id in jobs:
        await wait_for(lambda job_id=job_id: _ended(engine, job_id))
    return jobs


async def _ended(engine: Engine, job_id: UUID) -> bool:
    return (await engine.get_job(job_id)).is_terminal


async def _audited(engine: Engine, jobs: list[UUID]) -> int:
    async with engine.database.connection() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM job_history WHERE job_id = ANY($1)", jobs)
    return count


async def test_other_programs_transactions_do_not_stop_the_audit_trail(
    make_engine: Callable[..., Any], database_url: str
) -> None:
    engine: Engine = await make_engine(review, projection_interval=0.05)
    async with (
        _other_database(database_url) as elsewhere,
        _open_transaction(database_url, elsewhere, application_name="pg_dump"),
        _open_transaction(database_url, elsewhere, application_name="chronik"),  # another chronik's
        _open_transaction(database_url, application_name="psql"),  # a person, in chronik's database
    ):
        jobs = await _finished_jobs(engine, 5)
        # Each review job has three events; all of them reach job_history while those stay open.
        await wait_for(lambda: _audited_all(engine, jobs), within=10)
        assert all(status.held_by is None for status in await engine.projection_status())


async def _audited_all(engine: Engine, jobs: list[UUID]) -> bool:
    return await _audited(engine, jobs) == 3 * len(jobs)


async def test_an_open_transaction_of_chronik_holds_the_projections_and_is_named(
    make_engine: Callable[..., Any], database_url: str
) -> None:
    engine: Engine = await make_engine(review, projection_interval=0.05)
    async with _open_transaction(database_url, application_name="chronik") as pid:
        # A chronik session's open transaction may still append events below the ones that follow:
        # the projections must wait for it, however long, and say who they wait for.
        jobs = await _finished_jobs(engine, 2)
        await asyncio.sleep(1.0)
        assert await _audited(engine, jobs) == 0
        lagging = [status for status in await engine.projection_status() if status.lag_events]
        assert lagging and all(f"pid {pid} " in (status.held_by or "") for status in lagging)
    await wait_for(lambda: _audited_all(engine, jobs), within=10)
