"""The watcher: one per cluster, it ends attempts whose lease ran out or that ran too long.

Each instance runs a watcher loop, but only the one holding the cluster's
``chronik.watcher`` lock works; the others keep trying. If the holder dies, its
lock's connection closes, PostgreSQL releases the lock, and another instance
takes over on its next try. Leases live on the task rows, so nothing here
depends on a worker row that may be gone.

It sweeps every ``interval`` while the queues are busy. When sweeps find nothing
and no task or step is queued meanwhile, it backs off to ``idle_interval``; a
queued task (each dispatch, retry and re-queue sends a notification) or a step
brings it back. So an idle cluster costs a sweep per ``idle_interval``, and an
attempt is ended within ``interval`` of its lease or deadline while work flows;
in a cluster that has been quiet for a while (one long task running alone, say)
it may take up to ``idle_interval``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from chronik.adapters.postgres import (
    console_sessions,
    idempotency,
    limits,
    outbox,
    schedules,
    tasks,
    worker_tokens,
    workers,
)
from chronik.adapters.postgres.database import Connection
from chronik.adapters.postgres.listener import Signal
from chronik.adapters.postgres.locks import SingletonLock
from chronik.core.errors import VersionConflict
from chronik.core.events import AnyEvent
from chronik.core.retry import RetryPolicy
from chronik.core.tasks import decide_task_lost

from .loops import run_loop
from .store import JobStore

__all__ = ["Watcher"]

log = structlog.get_logger("chronik.watcher")

_BATCH = 100
_PRUNE_SECONDS = 300.0
_MAX_BATCHES = 10  # per sweep: rows it cannot end now (a conflict) must not keep it busy


class Watcher:
    """Re-queues or ends task attempts that lost their worker or ran past their timeout."""

    def __init__(
        self,
        store: JobStore,
        *,
        interval: float,
        policy: RetryPolicy,
        instance: str,
        idle_interval: float | None = None,
        wake: Sequence[Signal] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._interval = interval
        self._idle_interval = idle_interval
        self._wake = wake
        self._policy = policy
        self._instance = instance
        self._clock = clock
        self._lock = SingletonLock(store.database.dsn, "chronik.watcher")
        self._next_prune = 0.0

    @property
    def active(self) -> bool:
        """Whether this instance holds the watcher lock."""
        return self._lock.held

    async def run(self, stop: asyncio.Event) -> None:
        """Try for the lock and sweep while holding it, until ``stop``."""
        try:
            await run_loop(
                "watcher",
                self._tick,
                stop,
                interval=self._interval,
                idle_interval=self._idle_interval,
                wake=self._wake,
            )
        finally:
            await self._lock.release()

    async def _tick(self) -> float | None:
        """Sweep if this instance holds the lock; the usual pace again when the sweep ended something."""
        was_active = self.active
        try:
            if await self._lock.try_hold():
                if not was_active:
                    log.info("watcher_active", instance=self._instance)
                if await self.sweep():
                    return self._interval
        except Exception:
            # The next round takes the lock again, or leaves it to another instance.
            await self._lock.release()
            raise
        return None

    async def sweep(self) -> int:
        """End every expired attempt; return how many were handled.

        No rows are locked: each change appends at the version it read, so a result
        settled meanwhile wins, and this attempt is simply no longer current.
        """
        handled = 0
        async with self._store.database.connection() as conn:
            for _ in range(_MAX_BATCHES):
                expired = await tasks.expired(conn, limit=_BATCH)
                for task in expired:
                    await self._end(conn, task)
                handled += len(expired)
                if len(expired) < _BATCH:
                    break
            if time.monotonic() >= self._next_prune:
                # Old rate-limit windows, idempotency keys and expired worker tokens: housekeeping
                # for one instance.
                backlog = await limits.prune(conn)
                backlog |= await idempotency.prune(conn)
                await worker_tokens.prune(conn)
                await console_sessions.prune(conn)
                # Every side table's rule (docs/operations.md, "What each table keeps"). Each prune
                # deletes one LIMITed batch, a short transaction of its own, and says whether a whole
                # batch went: then more is due, and the next sweep prunes again instead of waiting
                # _PRUNE_SECONDS, so a backlog never holds up one sweep's lease work for long.
                backlog |= await outbox.prune_ended(conn)
                backlog |= await schedules.prune_fired(conn)
                backlog |= await workers.prune_gone(conn)
                self._next_prune = time.monotonic() + (0.0 if backlog else _PRUNE_SECONDS)
        return handled

    async def _end(self, conn: Connection, task: tasks.ExpiredTask) -> None:
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
