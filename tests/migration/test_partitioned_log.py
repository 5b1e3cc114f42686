"""0020 partitions the log and chains it: a database with jobs made before keeps every one of them.

Readable, replayable and equal to its fold: the legacy jobs (uuid4 ids) land in
``events_legacy`` with their positions, data and instants as they were, chained as the
append would have chained them; new jobs go to dated partitions, after the old positions.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import psycopg
import pytest

from chronik._runtime.setup import prepare_database
from chronik._runtime.verify import verify_chains
from chronik.adapters.postgres import migrate as migrate_module
from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.jobs import refold_differences
from chronik.adapters.postgres.migrate import available_migrations, migrate
from chronik.core import ids
from chronik.core.state import JobState
from chronik.demo import blueprints
from chronik.engine import Engine
from tests.conftest import dsn, fast_settings, wait_for

LOG = (
    "SELECT position, job_id, version, type, data::text AS data, meta::text AS meta, tx, recorded_at "
    "FROM events ORDER BY position"
)
HASHES = "SELECT position, hash FROM events ORDER BY position"
ROWS = (
    "SELECT job_id, blueprint, status, current_state, version, created_at, updated_at, finished_at, "
    "state::text AS state, chain_head FROM jobs ORDER BY job_id"
)


async def _terminal(engine: Engine, job_id: UUID) -> bool:
    return (await engine.get_job(job_id)).is_terminal


async def _has_task(conn: asyncpg.Connection, job_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM tasks WHERE job_id = $1", job_id))


async def _copy_tables(source: asyncpg.Connection, target: asyncpg.Connection) -> dict[str, int]:
    """Every row of the target's tables (schema 0019) from the source, in the target's columns.

    The source is migrated to the end: its ``events`` and ``jobs`` have columns 0020 added
    (``job_time``, ``hash``, ``chain_head``), which the old schema does not have and so does not get.
    """
    tables = await target.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name"
    )
    copied: dict[str, int] = {}
    for (table,) in tables:
        columns = [
            row["column_name"]
            for row in await target.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position",
                table,
            )
        ]
        listed = ", ".join(f'"{column}"' for column in columns)
        rows = io.BytesIO()
        await source.copy_from_query(f'SELECT {listed} FROM "{table}"', output=rows)
        rows.seek(0)
        if table != "events":  # the projections' set-up wrote its checkpoints: the source's win
            await target.execute(f'DELETE FROM "{table}"')
        await target.copy_to_table(table, source=rows, columns=columns)
        copied[table] = await target.fetchval(f'SELECT count(*) FROM "{table}"')
    return copied


async def _answers(engine: Engine, job_id: UUID) -> dict[str, Any]:
    """What an engine says of a job: its state, history, and state as of a version and a time."""
    history = await engine.job_history(job_id)
    return {
        "state": await engine.get_job(job_id),
        "history": history,
        "page": await engine.job_history(job_id, after_version=1, limit=1),
        "as_of_version": await engine.job_as_of(job_id, version=2),
        "as_of": await engine.job_as_of(job_id, at=history[1].event.at),
    }


async def test_jobs_made_before_the_log_was_partitioned_stay_whole(
    make_engine: Callable[..., Any],
    database_url: str,
    postgresql: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Real jobs, with ids as chronik made them before UUIDv7: uuid4.
    source: Engine = await make_engine(*blueprints)
    with monkeypatch.context() as patched:
        patched.setattr(ids, "new_job_id", lambda *args, **kwargs: uuid4())
        made: list[JobState] = [
            await source.create_job("review", {"amount": 12, "name": "Zoë ✓", "ratio": 0.1}),
            await source.create_job("review", {"amount": 5000}),
            await source.create_job("demo", {"name": "ada"}),  # no worker: it stays running
        ]
    approved, rejected, running = (job.job_id for job in made)
    assert all(ids.job_time(job_id) is None for job_id in (approved, rejected, running))
    for job_id in (approved, rejected):
        await wait_for(partial(_terminal, source, job_id))
    async with source.database.connection() as conn:
        await wait_for(lambda: _has_task(conn, running))
    before = {job_id: await _answers(source, job_id) for job_id in (approved, rejected, running)}
    replays = {job_id: await source.replay_job(job_id) for job_id in (approved, rejected)}
    await source.stop()

    info = postgresql.info
    name = f"chronik_legacy_{uuid4().hex[:12]}"
    legacy_url = dsn(host=info.host, port=info.port, user=info.user, dbname=name, password=info.password)
    async with AsyncExitStack() as cleanup:
        admin = await asyncpg.connect(database_url)
        cleanup.push_async_callback(admin.close)
        await admin.execute(f'CREATE DATABASE "{name}"')
        cleanup.push_async_callback(admin.execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        old = await asyncpg.connect(database_url)
        cleanup.push_async_callback(old.close)
        new = await asyncpg.connect(legacy_url)
        cleanup.push_async_callback(new.close)

        # The database as chronik left it before 0020, with the same rows.
        first = [m for m in available_migrations() if m.name < "0020"]
        assert [m.name for m in first][-1] == "0019_job_filters"
        with monkeypatch.context() as patched:
            patched.setattr(migrate_module, "available_migrations", lambda: first)
            assert await prepare_database(new) == [m.name for m in first]
        assert not await new.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'events' AND column_name = 'hash'"
        )
        copied = await _copy_tables(old, new)
        assert copied["events"] == await old.fetchval("SELECT count(*) FROM events") >= 8
        assert copied["jobs"] == 3 and copied["tasks"] == 1

        assert (await migrate(new))[0] == "0020_partitioned_events"

        # Every event is there as it was, in the legacy partition, chained as the append chains.
        assert await new.fetch(LOG) == await old.fetch(LOG)
        assert await new.fetch(HASHES) == await old.fetch(HASHES)
        assert await new.fetch(ROWS) == await old.fetch(ROWS), "chain_head too, as the live append sets it"
        assert await new.fetchval("SELECT count(*) FROM jobs WHERE chain_head IS NULL") == 0
        partitions = await new.fetch("SELECT DISTINCT tableoid::regclass::text AS name FROM events")
        assert [row["name"] for row in partitions] == ["events_legacy"]
        for job_id in (approved, rejected, running):
            assert await refold_differences(new, job_id) == {}
        database = await Database.open(legacy_url, max_size=2)
        try:
            report = await verify_chains(database)
        finally:
            await database.close()
        assert (report.jobs, report.events, report.first_break) == (3, copied["events"], None)
        last_old = await old.fetchval("SELECT max(position) FROM events")

        # An engine on the migrated database answers as before, and the log goes on.
        engine = Engine(legacy_url, blueprints=blueprints, settings=fast_settings())
        cleanup.push_async_callback(engine.stop)
        await engine.start()
        for job_id, answers in before.items():
            assert await _answers(engine, job_id) == answers, job_id
        for job_id, replayed in replays.items():
            assert await engine.replay_job(job_id) == replayed

        fresh = await engine.create_job("review", {"amount": 7})
        assert fresh.job_id.version == 7
        await wait_for(lambda: _terminal(engine, fresh.job_id))
        await engine.cancel_job(running, reason="migrated", actor="ops")  # a legacy job moves on
        rows = await new.fetch(
            "SELECT job_id, position, tableoid::regclass::text AS partition FROM events WHERE position > $1",
            last_old,
        )
        assert {row["job_id"] for row in rows} == {fresh.job_id, running}
        assert all(row["position"] > last_old for row in rows)
        for row in rows:
            if row["job_id"] == running:
                assert row["partition"] == "events_legacy"
            else:
                assert row["partition"].startswith("events_p") and row["partition"] != "events_legacy"
        legacy = await new.fetch(
            "SELECT DISTINCT tableoid::regclass::text AS name FROM events WHERE job_id = ANY($1::uuid[])",
            [approved, rejected, running],
        )
        assert [row["name"] for row in legacy] == ["events_legacy"]
        report = await verify_chains(engine.database)
        assert (report.jobs, report.first_break) == (4, None)
        for job_id in (approved, rejected, running, fresh.job_id):
            assert await refold_differences(new, job_id) == {}
        # The projections carried on from where the old log left them, the legacy job's cancel too
        # (the last event: waiting for the fresh job's rows alone raced it, seen in CI).
        await wait_for(lambda: new.fetchval("SELECT count(*) = $1 FROM job_history", report.events))
        assert await new.fetchval("SELECT count(*) FROM job_history WHERE job_id = $1", fresh.job_id) == 3
