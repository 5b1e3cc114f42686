"""The benchmark's one PostgreSQL server: embedded, fresh each run, a database per side.

chronik and Procrastinate run on the same server (same build, same settings), each
on a database of its own made just before its run. The server preloads
pg_stat_statements when the build ships it: start_embedded takes no server
settings, so the server is started once, given ``shared_preload_libraries`` with
ALTER SYSTEM, and started again.

Counting transactions: pg_stat_database's xact_commit + xact_rollback of one
database. A backend reports its counters when it finishes a client command (at
most once a second), 10 s after it went idle (PGSTAT_MIN_INTERVAL,
PGSTAT_IDLE_INTERVAL), and when it exits. So ``settle()`` waits out that delay
before the first reading, and the second is taken once every backend of the
database has gone (``wait_until_idle``), after the side's processes stopped.

One kind of transaction escapes the settling: a LISTEN connection reads each
batch of notifications in a transaction of its own while it waits for no
command, and reports those only when it exits (measured here: chronik's listener
had ~4 per job pending after 24 s idle; pg_stat_statements sees none of them).
The second reading has them all; the first misses those of the warm-up and the
settling, which the run is then charged with: about 50 jobs' worth (0.1 per job
at N=2000, 0.7 at N=300), on each side that listens (chronik, Procrastinate).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from chronik.adapters.postgres.embedded import EmbeddedPostgres, start_embedded

__all__ = ["Server", "Statement", "start_server"]

_COMMENT = re.compile(r"--[^\n]*")
_CONSTANT = re.compile(r"\$\d+|'(?:[^']|'')*'|\b\d+\b|\b(?:true|false)\b|(?<!IS )(?<!NOT )\bNULL\b")
"""A placeholder, a string, a number, a boolean or NULL in a statement's text (without its comments)."""

# PGSTAT_IDLE_INTERVAL (10 s) plus a margin: by then every idle backend has reported.
SETTLE_SECONDS = 11.0


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of pg_stat_statements (without comments) and how often it ran."""

    query: str
    calls: int
    shape: str = ""
    """``query`` with its constants and placeholders as ``?``: the same in every run."""


@dataclass(slots=True)
class Server:
    """The running server; every helper connects to its ``postgres`` database."""

    embedded: EmbeddedPostgres
    has_statements: bool
    why_no_statements: str = ""

    def dsn(self, database: str) -> str:
        """A libpq URL for ``database`` on this server."""
        return self.embedded.dsn_for(database)

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn("postgres"), autocommit=True)

    def fresh_database(self, name: str) -> str:
        """Drop ``name`` if it exists, create it empty, and return its URL."""
        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def transactions(self, database: str) -> tuple[int, int]:
        """Transactions committed and rolled back in ``database`` so far, as reported."""
        with self._connect() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
            ).fetchone()
        return (int(str(row[0])), int(str(row[1]))) if row else (0, 0)

    def settle(self) -> None:
        """Wait until every backend has reported what it did so far."""
        time.sleep(SETTLE_SECONDS)

    def wait_until_idle(self, database: str, *, within: float = 60) -> None:
        """Wait until no backend is connected to ``database`` (each reports its counters as it exits)."""
        deadline = time.monotonic() + within
        with self._connect() as conn:
            while time.monotonic() < deadline:
                conn.execute("SELECT pg_stat_clear_snapshot()")
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
                if row is not None and row[0] == 0:
                    return
                time.sleep(0.2)
        raise RuntimeError(f"backends still connected to {database} after {within} s")

    def reset_statements(self) -> None:
        """Forget every statement's counters (no-op without pg_stat_statements)."""
        if self.has_statements:
            with self._connect() as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def statements(self, database: str) -> list[Statement]:
        """Every statement run in ``database`` since the last reset, most called first."""
        if not self.has_statements:
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = %s ORDER BY s.calls DESC",
                (database,),
            ).fetchall()
        # A statement prepared before the reset is stored with its constants as written, one
        # parsed after it with them as $n, sometimes under another query id: one shape, one row.
        merged: dict[str, Statement] = {}
        for query, calls in rows:
            text = " ".join(_COMMENT.sub("", str(query)).split())
            shape = _CONSTANT.sub("?", text)
            seen = merged.get(shape)
            merged[shape] = Statement(
                seen.query if seen else text, int(str(calls)) + (seen.calls if seen else 0), shape
            )
        return sorted(merged.values(), key=lambda statement: -statement.calls)

    def stop(self) -> None:
        """Stop the server."""
        self.embedded.stop()


def start_server(data_dir: Path) -> Server:
    """Start an embedded server on an empty ``data_dir``, with pg_stat_statements when it ships."""
    shutil.rmtree(data_dir, ignore_errors=True)
    embedded = start_embedded(data_dir, database="postgres")
    with psycopg.connect(embedded.dsn_for("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'").fetchone()
        library = Path(str(row[0]) if row else "") / "pg_stat_statements.so"
        if not library.exists():
            return Server(embedded, False, f"this PostgreSQL build ships no {library.name}")
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    embedded.stop()
    embedded = start_embedded(data_dir, database="postgres")
    with psycopg.connect(embedded.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return Server(embedded, True)
