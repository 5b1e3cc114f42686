"""The watcher: one per cluster, it ends attempts whose lease ran out or that ran too long.

Each instance runs a watcher loop, but only the one holding the session-level
advisory lock works; the others keep trying. If the holder dies, its
connection closes, PostgreSQL releases the lock, and another instance takes
over on its next try. Leases live on the task rows, so nothing here depends on
a worker row that may be gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from chronik.adapters.postgres import tasks
from chronik.core.errors import VersionConflict
from chronik.core.events import AnyEvent
from chronik.core.retry import RetryPolicy
from chronik.core.tasks import decide_task_lost

from ._store import JobStore

__all__ = ["Watcher"]

log = structlog.get_logger("chronik.watcher")

_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('chronik.watcher'))"
_BATCH = 100


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

    @property
    def active(self) -> bool:
        """Whether this instance holds the watcher lock."""
        return self._lock_conn is not None and not self._lock_conn.is_closed()

    async def run(self, stop: asyncio.Event) -> None:
        """Try for the lock and sweep while holding it, until ``stop``."""
        try:
            while not stop.is_set():
                try:
                    if not self.active:
                        await self._try_lock()
                    if self.active:
                        await self.sweep()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("watcher_error", error=str(exc))
                    await self._release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval * random.uniform(0.8, 1.2))
        finally:
            await self._release()

    async def sweep(self) -> int:
        """End every expired attempt; return how many were handled."""
        handled = 0
        while True:
            async with self._store.pool.acquire() as conn, conn.transaction():
                # SKIP LOCKED: a result being settled holds its row; that attempt is not expired.
                expired = await tasks.expired(conn, limit=_BATCH)
                for task in expired:
                    await self._end(conn, task)
            handled += len(expired)
            if len(expired) < _BATCH:
                return handled

    async def _end(self, conn: asyncpg.Connection, task: tasks.ExpiredTask) -> None:
        if task.status == "cancelled":
            await tasks.delete(conn, task.task_id)  # its job was cancelled; the worker never answered
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
        if not events:
            await tasks.delete(conn, task.task_id)  # a row its job no longer waits on
            return
        assert state is not None
        try:
            await self._store.commit(state, events, meta={"instance": self._instance}, conn=conn)
        except VersionConflict:
            log.info("watcher_conflict", job_id=str(task.job_id))  # next sweep sees the new state
            return
        log.info("task_lost", job_id=str(task.job_id), task_id=str(task.task_id), reason=task.reason)

    async def _try_lock(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        if await conn.fetchval(_LOCK_SQL):
            self._lock_conn = conn
            log.info("watcher_active", instance=self._instance)
        else:
            await conn.close()

    async def _release(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close(timeout=2)
            self._lock_conn = None
