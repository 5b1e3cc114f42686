"""The database of one instance: its connection pool, and the only way to a connection.

Code outside ``adapters/postgres`` holds a ``Connection`` only to hand it to the
functions of this package (a statement runs here, never there): it opens one with
``Database.connection()`` or ``Database.transaction()`` and passes it on, so that
several of those functions can share one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from chronik.core.errors import DatabaseBusy

__all__ = [
    "APPLICATION_NAME",
    "DATABASE_ERRORS",
    "UNAVAILABLE_ERRORS",
    "Connection",
    "Database",
    "in_transaction",
    "savepoint",
]

Connection: TypeAlias = asyncpg.Connection

APPLICATION_NAME = "chronik"
"""The ``application_name`` of chronik's sessions, which may append to the log."""
"""An open connection, to pass to this package's functions."""

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
"""What a failure to reach or use the database raises: for callers that report it, not handle it."""

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset: the server is down or restarting
    TimeoutError,  # no connection from the pool in time, or no answer
    asyncpg.PostgresConnectionError,  # class 08: the connection broke (or was never made)
    asyncpg.exceptions.OperatorInterventionError,  # 57P01-03: shutting down, starting up; 57014 cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.InterfaceError,  # a pooled connection found closed under the request
    # asyncpg's protocol loses track when the server ends the session mid-statement (a restart,
    # pg_terminate_backend): "cannot switch to state 12; another operation (2) is in progress"
    # (MagicStack/asyncpg#1069). Seen by the fault harness during a fast restart.
    asyncpg.InternalClientError,
)
"""Failures that say the database cannot serve now, not that the request or chronik is wrong: a
request meeting one is answered 503 with Retry-After. (A connection that broke while a commit's
answer was on its way may have committed: creates carry an Idempotency-Key for that.)"""


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    asyncpg resets every released connection with an extra round trip (UNLISTEN,
    RESET ALL, advisory unlock). Pooled connections here never hold session
    state: LISTEN and the watcher's advisory lock live on dedicated connections,
    and transactions are rolled back by asyncpg itself. So the reset is skipped.
    """


class Database:
    """A pool of connections to one PostgreSQL database."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, acquire_timeout: float = 30.0) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        """How long to wait for a free connection before ``DatabaseBusy`` (the pool exhausted)."""
        """The asyncpg pool; for this package and for tests that look at rows directly."""
        self.dsn = dsn
        """The URL it connects to, for the dedicated connections (LISTEN, the watcher's lock)."""

    @classmethod
    async def open(cls, dsn: str, *, max_size: int, acquire_timeout: float = 30.0) -> Database:
        """A pool of up to ``max_size`` connections to ``dsn``; waits for one end with
        ``DatabaseBusy`` after ``acquire_timeout`` seconds."""
        # The name tells the projections' horizon (chronik_log_horizon_v1) which open transactions
        # can append to the log: other programs' transactions never hold the projections back.
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            reset=_keep_session,
            server_settings={"application_name": APPLICATION_NAME},
        )
        return cls(pool, dsn, acquire_timeout=acquire_timeout)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    @asynccontextmanager
    async def connection(self, *, wait_seconds: float | None = None) -> AsyncIterator[Connection]:
        """A connection of the pool; each statement on it commits by itself."""
        async with self._acquired(wait_seconds) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[Connection]:
        """A connection inside a transaction that commits when the block ends (rolls back on an error)."""
        async with self._acquired(None) as conn, conn.transaction(readonly=readonly):
            yield conn

    @asynccontextmanager
    async def _acquired(self, wait_seconds: float | None) -> AsyncIterator[Connection]:
        # A request must not wait forever for a connection that a stuck statement holds: past the
        # timeout it ends with a clear 503 (DATABASE_BUSY) and nothing written.
        timeout = self.acquire_timeout if wait_seconds is None else wait_seconds
        try:
            conn: Connection = await self.pool.acquire(timeout=timeout)
        except TimeoutError:
            raise DatabaseBusy(
                f"all {self.pool.get_max_size()} database connections of this instance stayed busy for "
                f"{timeout:g} s (a slow or locked database, or DB_POOL_MAX_SIZE too small); "
                "send the request again shortly"
            ) from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)


@asynccontextmanager
async def savepoint(conn: Connection) -> AsyncIterator[Connection]:
    """A transaction on ``conn``: a savepoint inside the caller's one, or a transaction of its own."""
    async with conn.transaction():
        yield conn


def in_transaction(conn: Connection) -> bool:
    """Whether ``conn`` is inside a transaction (a statement on it may still roll back)."""
    return bool(conn.is_in_transaction())
