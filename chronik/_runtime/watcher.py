"""The watcher: one per cluster, it ends attempts whose lease ran out or that ran too long.

Each instance runs a watcher loop, but only the one holding the session-level
advisory lock works; the others keep trying, on one long-lived connection each. If the holder dies, its
connection closes, PostgreSQL releases the lock, and another instance takes
over on its next try. Leases live on the task rows, so nothing here depends on
a worker row that may be gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from chronik.adapters.postgres import tasks
from chronik.adapters.postgres.queries import QUERIES
from chronik.core.errors import VersionConflict
from chronik.core.events import AnyEvent
from chronik.core.retry import RetryPolicy
from chronik.core.tasks import decide_task_lost

from .store import JobStore

__all__ = ["Watcher"]

log = structlog.get_logger("chronik.watcher")

_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('chronik.watcher'))"
_BATCH = 100
_PRUNE_SECONDS = 300.0
_MAX_BATCHES = 10  # per sweep: rows it cannot end now (a conflict) must not keep it busy


class Watcher:
    """Re-queues or ends task attempts that lost their worker or ran past their timeout."""

    def __init__(
        self,
        store: JobStore,
        *,
        dsn: str,
        interval: float,
        policy: RetryPolicy,
        instance: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._dsn = dsn
        self._interval = interval
        self._policy = policy
        self._instance = instance
        self._clock = clock
        self._lock_conn: asyncpg.Connection | None = None
        self._next_prune = 0.0
        self._holding = False

    @property
    def active(self) -> bool:
        """Whether this instance holds the watcher lock."""
        return self._holding and self._lock_conn is not None and not self._lock_conn.is_closed()

    async def run(self, stop: asyncio.Event) -> None:
        """Try for the lock and sweep while holding it, until ``stop``."""
        try:
            while not stop.is_set():
                try:
                    if await self._hold_lock():
                        await self.sweep()
                except Exception as exc:
                    # Never let the loop die: the next round takes the lock again or leaves it to another.
                    log.warning("watcher_error", error=repr(exc))
                    await self._release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval * random.uniform(0.8, 1.2))
        finally:
            await self._release()

    async def sweep(self) -> int:
        """End every expired attempt; return how many were handled.

        No rows are locked: each change appends at the version it read, so a result
        settled meanwhile wins, and this attempt is simply no longer current.
        """
        handled = 0
        async with self._store.pool.acquire() as conn:
            for _ in range(_MAX_BATCHES):
                expired = await tasks.expired(conn, limit=_BATCH)
                for task in expired:
                    await self._end(conn, task)
                handled += len(expired)
                if len(expired) < _BATCH:
                    break
            if time.monotonic() >= self._next_prune:
                # Old rate-limit windows and idempotency keys: housekeeping for one instance.
                await conn.execute(QUERIES["prune_rate_limits"])
                await conn.execute(QUERIES["prune_idempotency_keys"])
                self._next_prune = time.monotonic() + _PRUNE_SECONDS
        return handled

    async def _end(self, conn: asyncpg.Connection, task: tasks.ExpiredTask) -> None:
        if task.status == "cancelled":
            # Its job was cancelled; the worker did not answer within its lease (or never had it).
            await tasks.delete(conn, task.task_id, attempt=task.attempt, status=task.status)
            return
        state = await self._store.load(task.job_id, conn=conn)
        events: tuple[AnyEvent, ...] = ()
        if state is not None:
            events = decide_task_lost(
                state,
                task_id=task.task_id,
                attempt=task.attempt,
                worker_id=task.worker_id or "",
                reason=task.reason,
                claimed_at=task.claimed_at,
                at=self._clock(),
                policy=self._policy,
                rand=random.random(),
            )
        if state is None or not events:
            # The job no longer waits on this attempt; remove the row if nobody changed it since.
            await tasks.delete(conn, task.task_id, attempt=task.attempt, status=task.status)
            return
        try:
            await self._store.commit(
                state, events, meta={"instance": self._instance}, conn=conn, savepoint=False
            )
        except VersionConflict:
            log.info("watcher_conflict", job_id=str(task.job_id))  # next sweep sees the new state
            return
        log.info("task_lost", job_id=str(task.job_id), task_id=str(task.task_id), reason=task.reason)

    async def _hold_lock(self) -> bool:
        """Whether this instance holds the lock, after trying for it on one long-lived connection.

        The check also proves the connection alive: if it is gone, PostgreSQL has
        released the lock for another instance, so this one must stop sweeping.
        """
        if self._lock_conn is None or self._lock_conn.is_closed():
            self._holding = False
            self._lock_conn = await asyncpg.connect(self._dsn)
        if self._holding:
            await self._lock_conn.fetchval("SELECT 1")
            return True
        self._holding = bool(await self._lock_conn.fetchval(_LOCK_SQL))
        if self._holding:
            log.info("watcher_active", instance=self._instance)
        return self._holding

    async def _release(self) -> None:
        self._holding = False
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close(timeout=2)
            self._lock_conn = None
