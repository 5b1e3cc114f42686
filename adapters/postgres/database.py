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

from .queries import QUERIES

__all__ = [
    "APPLICATION_NAME",
    "BUSY_ERRORS",
    "DATABASE_ERRORS",
    "UNAVAILABLE_ERRORS",
    "Connection",
    "Database",
    "as_busy",
    "in_transaction",
    "lift_timeouts",
    "savepoint",
]

Connection: TypeAlias = asyncpg.Connection
"""An open connection, to pass to this package's functions."""

APPLICATION_NAME = "chronik"
"""The ``application_name`` of chronik's sessions, which may append to the log."""

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
    # 57P01-03: shutting down, starting up. Its subclass 57014 (a cancelled statement) is in
    # BUSY_ERRORS, which every caller checks first.
    asyncpg.exceptions.OperatorInterventionError,
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

BUSY_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseBusy,  # what this module makes of the two below, and of a pool that stayed busy
    asyncpg.exceptions.LockNotAvailableError,  # 55P03: waited longer than lock_timeout
    asyncpg.exceptions.QueryCanceledError,  # 57014: ran longer than statement_timeout (or was cancelled)
)
"""Failures that say the database is too slow or too locked to serve now: a request meeting one is
answered 503 ``DATABASE_BUSY`` with Retry-After, a background loop logs one line and tries again.
The statement's transaction was rolled back: nothing of it was written."""


def as_busy(exc: BaseException, *, lock_timeout: float = 0.0, statement_timeout: float = 0.0) -> DatabaseBusy:
    """``DatabaseBusy`` saying what a statement cut by ``lock_timeout`` or ``statement_timeout`` met,
    and what to do; ``exc`` itself when it is one already. ``*_timeout``: the settings, for the message."""
    if isinstance(exc, DatabaseBusy):
        return exc
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
        return DatabaseBusy(
            f"a statement waited longer than DB_LOCK_TIMEOUT_SECONDS{_seconds(lock_timeout)} for a lock "
            "that another database session holds (a long transaction, a LOCK TABLE, a migration) and was "
            "cancelled, its transaction rolled back (nothing of it was written). Send the request again "
            "shortly; if such waits are expected, raise DB_LOCK_TIMEOUT_SECONDS"
        )
    return DatabaseBusy(
        f"a statement ran longer than DB_STATEMENT_TIMEOUT_SECONDS{_seconds(statement_timeout)} (a slow "
        "or overloaded database, or a lock held for long), or another session cancelled it; its "
        "transaction was rolled back (nothing of it was written). Send the request again shortly; if "
        "the work is legitimately this slow, raise DB_STATEMENT_TIMEOUT_SECONDS"
    )


def _seconds(limit: float) -> str:
    return f" ({limit:g} s)" if limit > 0 else ""


def _milliseconds(seconds: float) -> str:
    """A timeout setting's value: whole milliseconds, at least 1 unless it is 0 (no limit)."""
    return "0" if seconds <= 0 else str(max(1, round(seconds * 1000)))


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    asyncpg resets every released connection with an extra round trip (UNLISTEN,
    RESET ALL, advisory unlock). Pooled connections here never hold session
    state: LISTEN and the watcher's advisory lock live on dedicated connections,
    and transactions are rolled back by asyncpg itself. So the reset is skipped.
    """


class Database:
    """A pool of connections to one PostgreSQL database."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        acquire_timeout: float = 30.0,
        lock_timeout: float = 0.0,
        statement_timeout: float = 0.0,
    ) -> None:
        self.pool = pool
        """The asyncpg pool; for this package and for tests that look at rows directly."""
        self.acquire_timeout = acquire_timeout
        """How long to wait for a free connection before ``DatabaseBusy`` (the pool exhausted)."""
        self.lock_timeout = lock_timeout
        """The ``lock_timeout`` of the pool's sessions, in seconds (0: none)."""
        self.statement_timeout = statement_timeout
        """The ``statement_timeout`` of the pool's sessions, in seconds (0: none)."""
        self.dsn = dsn
        """The URL it connects to, for the dedicated connections (LISTEN, the watcher's lock)."""

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        max_size: int,
        acquire_timeout: float = 30.0,
        lock_timeout: float = 0.0,
        statement_timeout: float = 0.0,
    ) -> Database:
        """A pool of up to ``max_size`` connections to ``dsn``; waits for one end with
        ``DatabaseBusy`` after ``acquire_timeout`` seconds. Each session waits at most
        ``lock_timeout`` seconds for a lock and runs a statement at most ``statement_timeout``
        seconds (0: no limit); a statement cut by either ends in ``DatabaseBusy``."""
        # The name tells the projections' horizon (chronik_log_horizon_v1) which open transactions
        # can append to the log: other programs' transactions never hold the projections back.
        # The timeouts keep a statement stuck behind someone else's lock (a LOCK TABLE, a long row
        # lock, a migration) from holding its pooled connection for ever: without them, a few such
        # statements take the whole pool, and every request waits for DB_POOL_TIMEOUT_SECONDS.
        # They are session settings, sent with each connection (no extra round trip), and they
        # override the role's and the database's own. Work that legitimately runs long lifts them
        # for its transaction only (``lift_timeouts``). The dedicated connections are not from this
        # pool and carry none, on purpose: the LISTEN session runs LISTEN and a ping (bounded on the
        # client side) and otherwise waits for notifications, which is no statement; the singleton
        # locks' sessions never wait for a lock (see ``locks.SingletonLock``).
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            reset=_keep_session,
            server_settings={
                "application_name": APPLICATION_NAME,
                "lock_timeout": _milliseconds(lock_timeout),
                "statement_timeout": _milliseconds(statement_timeout),
            },
        )
        return cls(
            pool,
            dsn,
            acquire_timeout=acquire_timeout,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
        )

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
        except (asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.QueryCanceledError) as exc:
            # Cut by lock_timeout or statement_timeout: the transaction has rolled back already
            # (``transaction`` ends it before this), so nothing was written; say so, and what to do.
            raise as_busy(
                exc, lock_timeout=self.lock_timeout, statement_timeout=self.statement_timeout
            ) from exc
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


async def lift_timeouts(conn: Connection, *, lock: bool = False) -> None:
    """Lift ``statement_timeout`` (and with ``lock``, ``lock_timeout``) for the rest of ``conn``'s
    transaction: for work that legitimately runs long (see docs/operations.md).

    ``SET LOCAL`` only, never ``SET``: pooled sessions are not reset when they go back to the pool
    (``_keep_session``), so a session-wide change would outlive the work and lift the timeouts of
    every later request on that connection. Outside a transaction it would do nothing: an error.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("lift_timeouts needs a transaction: SET LOCAL ends with it")
    await conn.execute(QUERIES["lift_statement_timeout"])
    if lock:
        await conn.execute(QUERIES["lift_lock_timeout"])
