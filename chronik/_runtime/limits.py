"""Rate limits: per-client request windows and the per-worker budgets, counted in PostgreSQL.

Counting in the database (an UNLOGGED table, one statement a count) makes a
limit hold across every instance that serves the client or the worker.

A client's every request counts. A worker's budgets count only what it wastes, after
the outcome is known (Avtomatika's setting names, with this meaning):

- ``polls``: empty polls (a 204); a poll that takes a task costs nothing.
- ``other``: refused requests (4xx answers: an unknown or not-held task, an invalid
  message, a bad signature, an unknown worker), one per refused entry of a batch.
- ``heartbeats``: heartbeats that come sooner than ``60 / budget`` seconds after the
  worker's previous one at this instance; a worker beating at a sane pace costs nothing.
- ``auth`` and ``auth_address``: failed authentications, per worker id and per client
  address, against the ``other`` budget.

So a worker that receives tasks, and says so at a sane pace, costs no statement here
and is never slowed; one that spins on empty polls, floods bad results or guesses
tokens gets ``RateLimited`` (429, with Retry-After) for the rest of the minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from itertools import islice

from chronik.adapters.postgres import limits
from chronik.adapters.postgres.database import Database
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.errors import RateLimited

__all__ = ["RateLimiter", "WorkerBudgets"]

_WHAT = {
    "polls": "empty polls",
    "other": "refused requests",
    "auth": "failed authentications",
    "auth_address": "failed authentications",
}

_REMEMBERED = frozenset({"auth", "auth_address"})
"""Kinds whose spent budget this instance remembers until the window ends. Nothing else of a
failed authentication touches the database, so a flood of bad tokens must not start to; an
authenticated worker's waste is counted in the database every time (its request cost a
statement anyway), which keeps the count exact across instances."""

_MEMORY = 10_000
"""Entries kept in memory (heartbeat times, spent budgets) before old ones are dropped."""


class WorkerBudgets:
    """A worker's wasted requests per minute by kind (0: no limit); see the module's docstring."""

    def __init__(self, *, heartbeats: int, polls: int, other: int) -> None:
        self.heartbeats = heartbeats
        self.polls = polls
        self.other = other

    def of(self, kind: str) -> int:
        """The budget of ``kind``: ``heartbeats``, ``polls``, or anything else (``other``)."""
        return {"heartbeats": self.heartbeats, "polls": self.polls}.get(kind, self.other)


class RateLimiter:
    """Counts requests against windows; ``RateLimited`` (429, with Retry-After) past a limit."""

    def __init__(
        self,
        database: Database,
        metrics: Metrics,
        workers: WorkerBudgets,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._metrics = metrics
        self._workers = workers
        self._clock = clock
        self._beats: dict[str, float] = {}
        """When each worker's last heartbeat came (this instance's clock)."""
        self._spent: dict[str, float] = {}
        """Keys of remembered kinds whose budget is spent, and until when."""

    async def check(
        self, key: str, limit: int, per_seconds: float, *, kind: str = "client", what: str = "requests"
    ) -> None:
        """Count a request against ``key``; ``RateLimited`` past ``limit`` in ``per_seconds``."""
        async with self._database.connection() as conn:
            hits, retry = await limits.hit_rate(conn, key, per_seconds)
        if hits > limit:
            self._metrics.rate_limited.labels(kind).inc()
            raise RateLimited(
                f"more than {limit} {what} in {per_seconds:g} s for {key}; try again in {math.ceil(retry)} s",
                retry_after=retry,
            )

    async def check_worker(self, subject: str, kind: str) -> None:
        """Count one wasted request of ``kind`` (see the module's docstring); ``RateLimited`` past its budget.

        ``subject`` is the worker's id, or for ``auth_address`` the client's address. A
        ``heartbeats`` call counts only when the worker's previous heartbeat came less than
        ``60 / budget`` seconds before. A budget of 0 counts nothing.
        """
        limit = self._workers.of(kind)
        if not limit:
            return
        if kind == "heartbeats":
            if not self._too_soon(subject, 60.0 / limit):
                return
            what = f"heartbeats sooner than {60.0 / limit:g} s after the previous one"
        else:
            what = _WHAT.get(kind, "refused requests")
        key = f"worker:{subject}:{kind}"
        now = self._clock()
        until = self._spent.get(key)
        if until is not None and until > now:
            self._metrics.rate_limited.labels(f"worker_{kind}").inc()
            raise RateLimited(
                f"more than {limit} {what} in 60 s for {key}; try again in {math.ceil(until - now)} s",
                retry_after=until - now,
            )
        try:
            await self.check(key, limit, 60.0, kind=f"worker_{kind}", what=what)
        except RateLimited as exc:
            if kind in _REMEMBERED:
                _remember(self._spent, key, now + exc.retry_after)
            raise

    def _too_soon(self, worker_id: str, interval: float) -> bool:
        """Whether this heartbeat of ``worker_id`` came within ``interval`` s of its previous one."""
        now = self._clock()
        last = self._beats.get(worker_id)
        _remember(self._beats, worker_id, now)
        return last is not None and now - last < interval


def _remember(memory: dict[str, float], key: str, value: float) -> None:
    """Keep ``memory[key] = value``; past ``_MEMORY`` entries, forget the older half.

    Forgetting is safe: a forgotten heartbeat time only means the next one is not counted,
    and a forgotten spent budget is looked up in the database again.
    """
    memory.pop(key, None)  # to the end: the dict's order is then the order of last use
    memory[key] = value
    if len(memory) > _MEMORY:
        for old in list(islice(memory, _MEMORY // 2)):
            del memory[old]
