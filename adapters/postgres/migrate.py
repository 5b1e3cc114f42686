"""Forward-only migrations from ``chronik.sql/migrations``, applied once each.

Each file runs in its own transaction under a transaction-scoped advisory lock,
so two instances starting at once apply every file exactly once; the loser of
the race waits, then sees the file recorded and skips it. A file whose content
changed after it was applied is refused: history is fixed, schema included.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from chronik.core.errors import MigrationError

from .database import lift_timeouts
from .queries import QUERIES

__all__ = ["Migration", "applied_migrations", "available_migrations", "migrate", "pending_migrations"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """The SHA-256 of the file, to notice edits after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migration files shipped with chronik, in order."""
    folder = resources.files("chronik.sql") / "migrations"
    files = sorted((e for e in folder.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return [Migration(e.name.removesuffix(".sql"), e.read_text(encoding="utf-8")) for e in files]


async def applied_migrations(conn: asyncpg.Connection) -> dict[str, str]:
    """Applied migration names with their checksums; empty on a new database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    return {row["name"]: row["checksum"] for row in await conn.fetch(QUERIES["applied_migrations"])}


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Names of the migrations not yet applied."""
    applied = await applied_migrations(conn)
    return [m.name for m in available_migrations() if m.name not in applied]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every pending migration; return the names applied (none when up to date)."""
    done: list[str] = []
    for migration in available_migrations():
        async with conn.transaction():
            # No DB_LOCK_TIMEOUT_SECONDS nor DB_STATEMENT_TIMEOUT_SECONDS here: a migration may copy
            # the whole log (0020), and an instance starting beside one that migrates waits for the
            # lock below for as long as that takes; cut, either would fail the start half-way
            # through a deploy. A migration runs once per version, before the instance serves.
            await lift_timeouts(conn, lock=True)
            await conn.execute(QUERIES["lock_migrations"])
            await conn.execute(QUERIES["create_migrations_table"])
            applied = await applied_migrations(conn)
            if migration.name in applied:
                if applied[migration.name] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} was changed after it was applied to this database; "
                        "migrations are forward-only: restore the file and add a new one"
                    )
                continue
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
            await conn.execute(QUERIES["record_migration"], migration.name, migration.checksum)
            done.append(migration.name)
    return done
