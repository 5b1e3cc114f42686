"""Whole-table upkeep and the server's own measures, for the benchmarks and for operators.

Sizes, VACUUM ANALYZE and CHECKPOINT, dropping a table's secondary indexes and making them
again from their definitions (the fast way to bulk-load), and EXPLAIN ANALYZE's timing of
a statement. None of it runs on chronik's request or job path.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Literal
from uuid import UUID

import asyncpg

from chronik.core.records import LogPosition

from .database import Connection
from .queries import QUERIES

__all__ = [
    "Table",
    "checkpoint",
    "database_size",
    "drop_indexes",
    "explain",
    "job_id_at",
    "last_log_position",
    "make_indexes",
    "relation_size",
    "secondary_indexes",
    "setting",
    "vacuum_analyze",
]

Table = Literal["jobs", "events"]
"""The tables upkeep acts on by name (a fixed set: their names go into the statement's text)."""


async def database_size(conn: Connection) -> int:
    """The database's size on disk, bytes."""
    return int(await conn.fetchval(QUERIES["database_size"]))


async def relation_size(conn: Connection, table: str) -> int:
    """``table`` with its indexes and TOAST (all its partitions, if it has any), bytes."""
    return int(await conn.fetchval(QUERIES["relation_size"], table))


async def vacuum_analyze(conn: Connection, *tables: Table) -> None:
    """VACUUM ANALYZE each table: hint bits, the visibility map and fresh statistics after a bulk load."""
    for table in tables:
        await conn.execute(f"VACUUM ANALYZE {table}")


async def checkpoint(conn: Connection) -> bool:
    """Flush dirty pages now (CHECKPOINT); False when the role may not (it needs pg_checkpoint)."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")
        return True
    return False


async def secondary_indexes(conn: Connection, table: Table) -> dict[str, str]:
    """``table``'s indexes but its primary key: name -> the statement that makes it."""
    return {row["name"]: row["definition"] for row in await conn.fetch(QUERIES["secondary_indexes"], table)}


async def drop_indexes(conn: Connection, indexes: dict[str, str]) -> None:
    """Drop the indexes ``secondary_indexes`` named (before a COPY that would update them row by row)."""
    for name in indexes:
        await conn.execute(f"DROP INDEX {name}")  # as regclass::text gives it: quoted where needed


async def make_indexes(conn: Connection, indexes: dict[str, str], *, memory: str = "512MB") -> None:
    """Make the indexes again from their definitions, each sort given ``memory``."""
    await conn.execute("SELECT set_config('maintenance_work_mem', $1, false)", memory)
    for definition in indexes.values():
        await conn.execute(definition)


async def last_log_position(conn: Connection) -> LogPosition | None:
    """The log's last event in the projections' reading order; None when the log is empty."""
    row = await conn.fetchrow(QUERIES["last_log_position"])
    return None if row is None else LogPosition(int(row["tx"]), row["position"])


async def job_id_at(conn: Connection, offset: int) -> UUID | None:
    """The job id at ``offset`` in id order."""
    found = await conn.fetchval(QUERIES["job_id_at"], offset)
    return None if found is None else UUID(str(found))


async def setting(conn: Connection, name: str) -> str:
    """A server setting's value, as SHOW gives it."""
    return str(await conn.fetchval(QUERIES["server_setting"], name))


async def explain(conn: Connection, query: str, *args: Any) -> dict[str, Any]:
    """One run of ``query`` under EXPLAIN (ANALYZE, TIMING OFF): the plan, with the server's
    ``Planning Time`` and ``Execution Time`` in ms. The query runs: use it on reads."""
    raw = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + query, *args)
    found: dict[str, Any] = json.loads(raw)[0]
    return found
