"""The unit of work: append events, project, and move the step and task queues in one statement."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik.adapters.postgres import event_store, steps
from chronik.adapters.postgres.commit import StepChange, TaskChange, commit
from chronik.adapters.postgres.event_store import RecordedEvent
from chronik.adapters.postgres.queries import QUERIES
from chronik.core.decide import needs_step, wakes_at
from chronik.core.errors import IdempotencyKeyReused
from chronik.core.events import AnyEvent, TaskCompleted
from chronik.core.evolve import fold
from chronik.core.state import JobState, JobStatus
from chronik.projections import jobs as jobs_projection

__all__ = ["JobStore", "step_change", "task_change"]


def step_change(before: JobState | None, after: JobState) -> tuple[StepChange, datetime | None]:
    """A step exists exactly while the job has a handler to run (due now) or a timer (due at its time).

    A timer is a sleep's end or an approval's deadline (``wakes_at``).
    """
    if needs_step(after):
        return "enqueue", None
    if (due := wakes_at(after)) is not None:
        return "enqueue", due
    had_step = before is not None and (needs_step(before) or wakes_at(before) is not None)
    return ("delete" if had_step else "keep"), None


def task_change(before: JobState | None, after: JobState, events: Sequence[AnyEvent] = ()) -> TaskChange:
    """The job's task rows follow its task: queued while it waits, marked when cancelled, else gone.

    A job cancelled by its worker's own answer (status ``cancelled``) has nobody left to tell:
    its rows go at once.
    """
    if after.task is None and (before is None or before.task is None):
        return "keep"
    if after.status == JobStatus.WAITING_FOR_WORKER and after.task is not None:
        return "queue"
    answered = any(isinstance(event, TaskCompleted) for event in events)
    return "cancel" if after.status == JobStatus.CANCELLED and not answered else "drop"


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
        savepoint: bool = True,
    ) -> JobState:
        """Append ``events`` to the stream that ``before`` was read from and return the new state.

        The ``jobs`` row, the job's step and its task rows change in the same
        statement. With ``conn`` it joins the caller's transaction, inside a
        savepoint unless ``savepoint=False`` (the caller then retries the whole
        transaction on a conflict). Raises ``VersionConflict`` when the stream
        moved since ``before`` was read.
        """
        after = fold(events, before)
        if after is None:
            raise ValueError("commit needs at least one event or a prior state")
        if conn is None:
            async with self.pool.acquire() as own:
                await self._write(own, before, after, events, meta)
        elif savepoint:
            async with conn.transaction():
                await self._write(conn, before, after, events, meta)
        else:
            await self._write(conn, before, after, events, meta)
        return after

    async def _write(
        self,
        conn: asyncpg.Connection,
        before: JobState | None,
        after: JobState,
        events: Sequence[AnyEvent],
        meta: dict[str, Any] | None,
    ) -> None:
        await commit(
            conn,
            job_id=after.job_id,
            expected_version=before.version if before else 0,
            events=events,
            meta=meta,
            job_row=jobs_projection.job_row(after),
            step=step_change(before, after),
            task_change=task_change(before, after, events),
            task=after.task,
        )

    async def create(
        self, events: Sequence[AnyEvent], *, meta: dict[str, Any], client: str, idempotency_key: str | None
    ) -> tuple[JobState, bool]:
        """Commit a new job's events; with a key, the job a fresh use of the key created instead.

        Returns the job and whether it was created now. Taking the key and creating the
        job are one transaction, so a key never names a job that does not exist.
        """
        if idempotency_key is None:
            return await self.commit(None, events, meta=meta), True
        created = fold(events)
        assert created is not None
        fingerprint = hashlib.sha256(
            msgspec.json.encode([created.blueprint, created.initial_data], order="sorted")
        ).hexdigest()
        async with self.pool.acquire() as conn, conn.transaction():
            taken = await conn.fetchval(
                QUERIES["claim_idempotency_key"], client, idempotency_key, created.job_id, fingerprint
            )
            if taken is None:
                existing = await conn.fetchrow(QUERIES["idempotency_key_job"], client, idempotency_key)
                if existing["request"] != fingerprint:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {idempotency_key!r} was used within 24 hours for another request "
                        "(another blueprint or initial_data); use a new key"
                    )
                state = await jobs_projection.load_state(conn, existing["job_id"])
                assert state is not None
                return state, False
            return await self.commit(None, events, meta=meta, conn=conn, savepoint=False), True

    async def load(self, job_id: UUID, *, conn: asyncpg.Connection | None = None) -> JobState | None:
        """The job's current state, or ``None`` for an unknown job."""
        if conn is not None:
            return await jobs_projection.load_state(conn, job_id)
        async with self.pool.acquire() as own:
            return await jobs_projection.load_state(own, job_id)

    async def load_with_progress(self, job_id: UUID) -> tuple[JobState, dict[str, Any] | None] | None:
        """The job's current state and its worker's last progress report, in one query."""
        async with self.pool.acquire() as conn:
            return await jobs_projection.load_with_progress(conn, job_id)

    async def list_jobs(
        self, where: jobs_projection.JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
        """A page of jobs, newest first, and the cursor of the next page."""
        async with self.pool.acquire() as conn:
            return await jobs_projection.list_states(conn, where, limit=limit, after=after)

    async def history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The job's events in order, all or a page after ``after_version``."""
        async with self.pool.acquire() as conn:
            return await event_store.read_stream(conn, job_id, after_version=after_version, limit=limit)

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

    async def renew_step_leases(self, job_ids: list[UUID], *, lease_seconds: float, instance: str) -> None:
        """Extend the leases of steps this instance is still running."""
        async with self.pool.acquire() as conn:
            await steps.renew_leases(conn, job_ids, lease_seconds=lease_seconds, instance=instance)

    async def seconds_to_next_step(self) -> float | None:
        """Seconds until the next timer's step is due; ``None`` when no timer waits."""
        async with self.pool.acquire() as conn:
            return await steps.seconds_to_next(conn)
