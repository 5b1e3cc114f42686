"""Rate limits: per-client request windows and Avtomatika's per-worker budgets, counted in PostgreSQL.

Counting in the database (an UNLOGGED table, one statement a check) makes a
limit hold across every instance that serves the client or the worker.
"""

from __future__ import annotations

import math

from chronik.adapters.postgres import limits
from chronik.adapters.postgres.database import Database
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.errors import RateLimited

__all__ = ["RateLimiter", "WorkerBudgets"]


class WorkerBudgets:
    """A worker's requests per minute by kind (0: no limit)."""

    def __init__(self, *, heartbeats: int, polls: int, other: int) -> None:
        self.heartbeats = heartbeats
        self.polls = polls
        self.other = other

    def of(self, kind: str) -> int:
        """The budget of ``kind``: ``heartbeats``, ``polls``, or anything else (``other``)."""
        return {"heartbeats": self.heartbeats, "polls": self.polls}.get(kind, self.other)


class RateLimiter:
    """Counts requests against windows; ``RateLimited`` (429, with Retry-After) past a limit."""

    def __init__(self, database: Database, metrics: Metrics, workers: WorkerBudgets) -> None:
        self._database = database
        self._metrics = metrics
        self._workers = workers

    async def check(self, key: str, limit: int, per_seconds: float, *, kind: str = "client") -> None:
        """Count a request against ``key``; ``RateLimited`` past ``limit`` in ``per_seconds``."""
        async with self._database.connection() as conn:
            hits, retry = await limits.hit_rate(conn, key, per_seconds)
        if hits > limit:
            self._metrics.rate_limited.labels(kind).inc()
            raise RateLimited(
                f"more than {limit} requests in {per_seconds:g} s for {key}; "
                f"try again in {math.ceil(retry)} s",
                retry_after=retry,
            )

    async def check_worker(self, worker_id: str, kind: str) -> None:
        """A worker's budget per minute for ``kind``: ``heartbeats``, ``polls`` or ``other`` (0: none)."""
        limit = self._workers.of(kind)
        if limit:
            await self.check(f"worker:{worker_id}:{kind}", limit, 60.0, kind=f"worker_{kind}")
