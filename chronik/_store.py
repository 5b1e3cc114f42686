"""The unit of work: append events, project, and move the step queue in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from chronik.adapters.postgres import event_store, steps, tasks
from chronik.adapters.postgres.event_store import RecordedEvent
from chronik.core.decide import needs_step
from chronik.core.events import AnyEvent
from chronik.core.evolve import fold
from chronik.core.state import JobState
from chronik.projections import jobs as jobs_projection

__all__ = ["JobStore"]


class JobStore:
    """Reads and writes jobs through the event log, keeping projections and queues in step."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def commit(
        self,
        before: JobState | None,
        events: Sequence[AnyEvent],
        *,
        meta: dict[str, Any] | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> JobState:
        """Append ``events`` to the stream that ``before`` was read from and return the new state.

        In the same transaction the ``jobs`` row is rewritten, the job's step is
        enqueued or removed (a step exists exactly when the state needs one), and
        its task rows follow its task. With ``conn``, all of it joins the caller's
        transaction. Raises ``VersionConflict`` when the stream moved since ``before`` was read.
        """
        after = fold(events, before)
        if after is None:
            raise ValueError("commit needs at least one event or a prior state")
        if conn is not None:
            async with conn.transaction():
                await self._write(conn, before, after, events, meta)
            return after
        async with self.pool.acquire() as own, own.transaction():
            await self._write(own, before, after, events, meta)
        return after

    async def _write(
        self,
        conn: asyncpg.Connection,
        before: JobState | None,
        after: JobState,
        events: Sequence[AnyEvent],
        meta: dict[str, Any] | None,
    ) -> None:
        await event_store.append(conn, after.job_id, before.version if before else 0, events, meta=meta)
        await jobs_projection.project(conn, after)
        if needs_step(after):
            await steps.enqueue(conn, after.job_id)
        elif before is not None and needs_step(before):
            await steps.delete(conn, after.job_id)
        if after.task is not None or (before is not None and before.task is not None):
            await tasks.sync(conn, after)

    async def load(self, job_id: UUID, *, conn: asyncpg.Connection | None = None) -> JobState | None:
        """The job's current state, or ``None`` for an unknown job."""
        if conn is not None:
            return await jobs_projection.load_state(conn, job_id)
        async with self.pool.acquire() as own:
            return await jobs_projection.load_state(own, job_id)

    async def history(self, job_id: UUID) -> list[RecordedEvent]:
        """Every event of the job, in order."""
        async with self.pool.acquire() as conn:
            return await event_store.read_stream(conn, job_id)

    async def claim_steps(
        self, *, limit: int, lease_seconds: float, instance: str
    ) -> list[steps.ClaimedStep]:
        """Lease due steps to this instance."""
        async with self.pool.acquire() as conn:
            return await steps.claim(conn, limit=limit, lease_seconds=lease_seconds, instance=instance)

    async def retry_step(self, job_id: UUID, *, delay_seconds: float, instance: str) -> None:
        """Hand a step back to run again later."""
        async with self.pool.acquire() as conn:
            await steps.retry(conn, job_id, delay_seconds=delay_seconds, instance=instance)

    async def drop_claimed_step(self, step: steps.ClaimedStep, *, instance: str) -> None:
        """Remove a stale step this instance holds."""
        async with self.pool.acquire() as conn:
            await steps.drop_claimed(conn, step, instance=instance)
