"""The migrations: idempotent, serialized across migrators, forward-only; the log is append-only."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chronik.adapters.postgres import migrate as migrate_module
from chronik.adapters.postgres.migrate import Migration, available_migrations, migrate, pending_migrations
from chronik.core.errors import MigrationError

# These tests write synthetic events and rows straight into the tables.
pytestmark = pytest.mark.projection_damaged


async def test_template_is_fully_migrated(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await pending_migrations(conn) == []
        assert await migrate(conn) == []


async def test_fresh_database_migrates_once_even_with_two_migrators(database_url: str) -> None:
    first = await asyncpg.connect(database_url)
    try:
        await first.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await first.close()

    async def run() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    a, b = await asyncio.gather(run(), run())
    names = [m.name for m in available_migrations()]
    # Each file was applied by exactly one of the two.
    assert sorted(a + b) == sorted(names)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert [r["name"] for r in rows] == names
    finally:
        await conn.close()


async def test_edited_migration_is_refused(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    originals = available_migrations()
    edited = [Migration(originals[0].name, originals[0].sql + "\n-- edited"), *originals[1:]]
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: edited)
    async with pool.acquire() as conn:
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)


async def _one_event(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO events (job_id, job_time, version, type, data, hash) "
        "VALUES (gen_random_uuid(), '-infinity', 1, 'JobCreated', '{}', '\\x00')"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'Edited'",
        "DELETE FROM events",
        "TRUNCATE events",
        # A partition is guarded on its own: TRUNCATE of it does not pass through the parent.
        "TRUNCATE events_legacy",
        "DELETE FROM events_legacy",
    ],
)
async def test_events_are_append_only(pool: asyncpg.Pool, statement: str) -> None:
    async with pool.acquire() as conn:
        await _one_event(conn)
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
        assert await conn.fetchval("SELECT type FROM events") == "JobCreated"


async def test_duplicate_version_is_rejected(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job_id = await conn.fetchval("SELECT gen_random_uuid()")
        insert = (
            "INSERT INTO events (job_id, job_time, version, type, data, hash) "
            "VALUES ($1, '-infinity', 1, 'JobCreated', '{}', '\\x00')"
        )
        await conn.execute(insert, job_id)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, job_id)
