"""Session-level advisory locks on a dedicated connection: one holder of a singleton loop per cluster."""

from __future__ import annotations

import contextlib

import asyncpg

from .queries import QUERIES

__all__ = ["SingletonLock"]


class SingletonLock:
    """A cluster-wide lock named ``name``, held by one instance's connection at a time.

    If the holder dies, its connection closes, PostgreSQL releases the lock, and
    another instance takes it on its next try. The lock lives on a connection of
    its own, never on a pooled one (a pooled connection's session is shared).
    """

    def __init__(self, dsn: str, name: str) -> None:
        self._dsn = dsn
        self._name = name
        self._conn: asyncpg.Connection | None = None
        self._holding = False

    @property
    def held(self) -> bool:
        """Whether this instance holds the lock, as of the last ``try_hold``."""
        return self._holding and self._conn is not None and not self._conn.is_closed()

    async def try_hold(self) -> bool:
        """Whether this instance holds the lock, after trying for it if it did not.

        The check also proves the connection alive: if it is gone, PostgreSQL has
        released the lock for another instance, so this one must stop acting on it.
        """
        if self._conn is None or self._conn.is_closed():
            self._holding = False
            # No lock_timeout or statement_timeout (the pool's DB_LOCK_TIMEOUT_SECONDS and
            # DB_STATEMENT_TIMEOUT_SECONDS), on purpose: this session only tries for the lock
            # (pg_try_advisory_lock never waits) and pings, so neither could cut anything, while
            # the lock it holds is session-level and lives exactly as long as the connection.
            self._conn = await asyncpg.connect(self._dsn)
        if self._holding:
            await self._conn.fetchval(QUERIES["ping"])
            return True
        self._holding = bool(await self._conn.fetchval(QUERIES["try_singleton_lock"], self._name))
        return self._holding

    async def release(self) -> None:
        """Let go of the lock (and the connection that holds it)."""
        self._holding = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
