"""Set up a database: migrations, the projections' tables, and the analytics views."""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg

from chronik.adapters.postgres.migrate import migrate
from chronik.adapters.postgres.queries import QUERIES

from .attempts import TaskAttempts
from .framework import Projector, table_ddl
from .history import JobHistory

__all__ = [
    "PROJECTORS",
    "analytics_grants",
    "ensure_projections",
    "install_analytics",
    "prepare_database",
    "projector_named",
]

PROJECTORS: tuple[Projector, ...] = (JobHistory(), TaskAttempts())
"""The projections that follow the log asynchronously (``jobs`` is written inline)."""


def projector_named(name: str) -> Projector:
    """The projector called ``name``; ``KeyError`` naming the known ones otherwise."""
    for projector in PROJECTORS:
        if projector.name == name:
            return projector
    raise KeyError(f"no projection is named {name!r}; known: {', '.join(p.name for p in PROJECTORS)}")


async def prepare_database(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations, then set up the projections; the migrations applied."""
    applied = await migrate(conn)
    await ensure_projections(conn)
    return applied


async def ensure_projections(conn: asyncpg.Connection) -> list[str]:
    """Create each projection's table when it is missing or of another version; the ones (re)created.

    A (re)created table starts empty at the beginning of the log: the runner refills
    it, and ``chronik projections status`` shows it catching up.
    """
    created: list[str] = []
    async with conn.transaction():
        await conn.execute(QUERIES["lock_projection_setup"])
        grants = await analytics_grants(conn)
        for projector in PROJECTORS:
            row = await conn.fetchrow(QUERIES["get_checkpoint"], projector.name)
            exists = await conn.fetchval(QUERIES["table_exists"], projector.name)
            if row is not None and exists and row["version"] == projector.version:
                continue
            await conn.execute(f"DROP TABLE IF EXISTS {projector.name} CASCADE")
            await conn.execute(table_ddl(projector, projector.name))
            await conn.execute(QUERIES["reset_checkpoint"], projector.name, projector.version)
            created.append(projector.name)
        installed = await conn.fetchval(QUERIES["analytics_checksum"])
        if created or installed != _analytics_checksum():
            await install_analytics(conn, grants)
    return created


async def analytics_grants(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """The grants on the analytics schema and views: (``schema`` or ``view``, role, view name)."""
    exists = await conn.fetchval("SELECT to_regnamespace('chronik_analytics') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch(QUERIES["analytics_grants"])
    return [(row["kind"], row["grantee"], row["view"] or "") for row in rows]


async def install_analytics(
    conn: asyncpg.Connection, grants: list[tuple[str, str, str]] | None = None
) -> None:
    """(Re)create the ``chronik_analytics`` views over the live tables, keeping who may read them.

    ``grants`` are those read before the old views went (a rebuild drops them with
    their tables); by default the ones on the views about to be replaced.
    """
    kept = await analytics_grants(conn) if grants is None else grants
    await conn.execute(_analytics_sql())
    await conn.execute(f"COMMENT ON SCHEMA chronik_analytics IS '{_analytics_checksum()}'")
    views = {row[0] for row in await conn.fetch(QUERIES["analytics_views"])}
    for kind, grantee, view in kept:
        if kind == "schema":
            await conn.execute(f"GRANT USAGE ON SCHEMA chronik_analytics TO {_quoted(grantee)}")
        elif view in views:  # a view that no longer exists takes its grant with it
            await conn.execute(f"GRANT SELECT ON chronik_analytics.{_quoted(view)} TO {_quoted(grantee)}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _analytics_sql() -> str:
    return (resources.files("chronik.sql") / "projections" / "analytics.sql").read_text("utf-8")


def _analytics_checksum() -> str:
    return hashlib.sha256(_analytics_sql().encode()).hexdigest()
