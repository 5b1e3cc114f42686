"""The tables of the asynchronous projections and the ``chronik_analytics`` views over them.

Their DDL lives in ``sql/projections/``: ``<name>.sql`` per projection (with
``{table}`` for the live table or its shadow) and ``analytics.sql`` for the views.
Table names are identifiers chronik chooses (a projector's name and ``__rebuild``/
``__old`` suffixes), never user input; they are quoted all the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from .database import Connection
from .queries import QUERIES

__all__ = [
    "analytics_grants",
    "analytics_installed",
    "copy_rows",
    "create_table",
    "differences",
    "drop_table",
    "ensure_setup_lock",
    "install_analytics",
    "swap_in",
    "table_exists",
]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _projection_sql(name: str) -> str:
    return (resources.files("chronik.sql") / "projections" / f"{name}.sql").read_text("utf-8")


async def ensure_setup_lock(conn: Connection) -> None:
    """Serialize the set-up of projection tables between instances starting at once (transaction lock)."""
    await conn.execute(QUERIES["lock_projection_setup"])


async def table_exists(conn: Connection, table: str) -> bool:
    """Whether ``table`` exists in the search path."""
    return bool(await conn.fetchval(QUERIES["table_exists"], table))


async def create_table(conn: Connection, projection: str, table: str) -> None:
    """Create ``table`` (and its indexes) from ``projection``'s DDL, replacing any table of that name."""
    await drop_table(conn, table)
    # Unquoted: the DDL also builds index names from it ({table}_at_idx).
    await conn.execute(_projection_sql(projection).replace("{table}", table))


async def drop_table(conn: Connection, table: str) -> None:
    """Drop ``table`` and the views on it, if it exists."""
    await conn.execute(f"DROP TABLE IF EXISTS {_quoted(table)} CASCADE")


async def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append ``rows`` (values in ``columns`` order) to ``table`` with COPY."""
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=list(columns))


async def swap_in(conn: Connection, shadow: str, live: str) -> None:
    """Replace ``live`` by ``shadow`` (in the caller's transaction): readers see one or the other.

    The shadow's indexes are renamed after the live table's, so a second rebuild finds
    the names free. The views on the old table go with it; install them again after.
    """
    old = f"{live}__old"
    await conn.execute(f"ALTER TABLE {_quoted(live)} RENAME TO {_quoted(old)}")
    await drop_table(conn, old)
    await conn.execute(f"ALTER TABLE {_quoted(shadow)} RENAME TO {_quoted(live)}")
    for index in await conn.fetch(QUERIES["table_indexes"], live):
        name = index["indexname"]
        if name.startswith(shadow):
            renamed = live + name[len(shadow) :]
            await conn.execute(f"ALTER INDEX {_quoted(name)} RENAME TO {_quoted(renamed)}")


async def differences(conn: Connection, live: str, shadow: str) -> tuple[int, int]:
    """Rows only in ``live`` and rows only in ``shadow``: (0, 0) when the two are identical."""
    a, b = _quoted(live), _quoted(shadow)
    only_live = await conn.fetchval(f"SELECT count(*) FROM (TABLE {a} EXCEPT ALL TABLE {b}) AS d")
    only_shadow = await conn.fetchval(f"SELECT count(*) FROM (TABLE {b} EXCEPT ALL TABLE {a}) AS d")
    return int(only_live), int(only_shadow)


async def analytics_grants(conn: Connection) -> list[tuple[str, str, str]]:
    """The grants on the analytics schema and views: (``schema`` or ``view``, role, view name)."""
    exists = await conn.fetchval("SELECT to_regnamespace('chronik_analytics') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch(QUERIES["analytics_grants"])
    return [(row["kind"], row["grantee"], row["view"] or "") for row in rows]


async def analytics_installed(conn: Connection) -> bool:
    """Whether the analytics views installed are those this version ships (by checksum)."""
    installed = await conn.fetchval(QUERIES["analytics_checksum"])
    return bool(installed == _analytics_checksum())


async def install_analytics(conn: Connection, grants: list[tuple[str, str, str]] | None = None) -> None:
    """(Re)create the ``chronik_analytics`` views over the live tables, keeping who may read them.

    ``grants`` are those read before the old views went (a rebuild drops them with
    their tables); by default the ones on the views about to be replaced.
    """
    kept = await analytics_grants(conn) if grants is None else grants
    await conn.execute(_projection_sql("analytics"))
    await conn.execute(f"COMMENT ON SCHEMA chronik_analytics IS '{_analytics_checksum()}'")
    views = {row[0] for row in await conn.fetch(QUERIES["analytics_views"])}
    for kind, grantee, view in kept:
        if kind == "schema":
            await conn.execute(f"GRANT USAGE ON SCHEMA chronik_analytics TO {_quoted(grantee)}")
        elif view in views:  # a view that no longer exists takes its grant with it
            await conn.execute(f"GRANT SELECT ON chronik_analytics.{_quoted(view)} TO {_quoted(grantee)}")


def _analytics_checksum() -> str:
    return hashlib.sha256(_projection_sql("analytics").encode()).hexdigest()
