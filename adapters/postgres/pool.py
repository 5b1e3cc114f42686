"""The connection pool of one instance."""

from __future__ import annotations

import asyncpg

__all__ = ["create_pool"]


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    asyncpg resets every released connection with an extra round trip (UNLISTEN,
    RESET ALL, advisory unlock). Pooled connections here never hold session
    state: LISTEN and the watcher's advisory lock live on dedicated connections,
    and transactions are rolled back by asyncpg itself. So the reset is skipped.
    """


async def create_pool(dsn: str, *, max_size: int) -> asyncpg.Pool:
    """A pool of up to ``max_size`` connections to ``dsn``."""
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, reset=_keep_session)
    return pool
