"""The unit of work: append events, project, and move the step and task queues in one statement."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik.adapters.postgres import event_store, steps
from chronik.adapters.postgres.commit import StepChange, TaskChanges, WebhookNotice, commit
from chronik.adapters.postgres.queries import QUERIES
from chronik.core.blueprint import Blueprint
from chronik.core.decide import needs_step, stamp_state_deadlines, wakes_at
from chronik.core.errors import IdempotencyKeyReused
from chronik.core.events import (
    AnyEvent,
    ChildEnded,
    JobCancelled,
    JobCreated,
    TaskCompleted,
    TaskFailed,
    TaskLost,
)
from chronik.core.evolve import fold
from chronik.core.records import RecordedEvent
from chronik.core.state import JobState, pending_attempts, pending_task, result_of
from chronik.projections import jobs as jobs_projection

__all__ = ["JobStore", "abandoned_child", "step_change", "task_changes", "webhook_notice"]

_ANNOUNCED = {"finished": "job_finished", "failed": "job_failed", "quarantined": "job_quarantined",
              "cancelled": "job_cancelled"}  # fmt: skip


def webhook_notice(before: JobState | None, after: JobState) -> WebhookNotice | None:
    """The notification a change owes the job's webhook: it ended, or it was quarantined.

    The payload is Avtomatika's (``event``, ``job_id``, ``status``, ``result``, ``error``)
    plus ``event_id``, the same on every attempt, for receivers to de-duplicate by.
    """
    event = _ANNOUNCED.get(after.status)
    if after.webhook_url is None or event is None or (before is not None and before.status == after.status):
        return None
    event_id = f"{after.job_id}:{after.version}"
    payload = {
        "event": event,
        "event_id": event_id,
        "job_id": str(after.job_id),
        "status": after.status,
        "result": result_of(after),
        "error": None if after.error is None else msgspec.to_builtins(after.error),
    }
    return WebhookNotice(url=after.webhook_url, event=event, event_id=event_id, payload=payload)


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


def task_changes(before: JobState | None, after: JobState, events: Sequence[AnyEvent] = ()) -> TaskChanges:
    """The job's task rows follow the attempts it waits on (``pending_attempts``).

    New or retried attempts are queued. An attempt the job stops waiting on goes at
    once when these events answer it (its worker is done with it); otherwise it was
    abandoned (a cancel, a timeout) and its row is marked so that its worker is told.
    """
    was = pending_attempts(before) if before is not None else {}
    now = pending_attempts(after)
    if not was and not now:
        return TaskChanges()
    queued = [pending_task(after, key) for key, attempt in now.items() if was.get(key) != attempt]
    gone = [UUID(key) for key in was if key not in now]
    answered = {event.task_id for event in events if isinstance(event, TaskCompleted | TaskFailed | TaskLost)}
    return TaskChanges(
        queued=queued,
        dropped=[task_id for task_id in gone if task_id in answered],
        cancelled=[task_id for task_id in gone if task_id not in answered],
    )


def _blueprint_of(events: Sequence[AnyEvent]) -> str:
    first = events[0] if events else None
    return first.blueprint if isinstance(first, JobCreated) else ""


def abandoned_child(before: JobState | None, after: JobState, events: Sequence[AnyEvent]) -> UUID | None:
    """The child job a change stopped waiting on before it ended (a cancel, a timeout): to cancel."""
    if before is None or before.child is None:
        return None
    child_id = before.child.job_id
    if after.child is not None and after.child.job_id == child_id:
        return None
    if any(isinstance(event, ChildEnded) and event.child_job_id == child_id for event in events):
        return None
    return child_id


class JobStore:
    """Reads and writes jobs through the event log, keeping projections and queues in step."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        blueprints: Mapping[str, Blueprint] | None = None,
        *,
        on_commit: Callable[[JobState | None, JobState, Sequence[AnyEvent]], None] | None = None,
        files: bool = False,
    ) -> None:
        self.pool = pool
        self._on_commit = on_commit
        self._files = files
        """S3 ``task_files`` are on: every job's folder is emptied when it ends, whatever the
        log recorded of it (an outcome dropped on a conflict may have stored files too)."""
        self.blueprints: Mapping[str, Blueprint] = blueprints if blueprints is not None else {}
        """The engine's blueprints: to stamp state deadlines into events (see ``stamp_state_deadlines``)."""

    async def commit(
        self,
        before: JobState | None,
        events: Sequence[AnyEvent],
        *,
        meta: dict[str, Any] | None = None,
        conn: asyncpg.Connection | None = None,
        savepoint: bool = True,
        linked: Sequence[Sequence[AnyEvent]] = (),
    ) -> JobState:
        """Append ``events`` to the stream that ``before`` was read from and return the new state.

        The ``jobs`` row, the job's step and its task rows change in the same
        statement. With ``conn`` it joins the caller's transaction, inside a
        savepoint unless ``savepoint=False`` (the caller then retries the whole
        transaction on a conflict). Raises ``VersionConflict`` when the stream
        moved since ``before`` was read.

        ``linked`` are the creating events of new jobs that commit with this change
        (a child job). A change that abandons a running child cancels it, and its
        children, in the same transaction.
        """
        blueprint = self.blueprints.get(before.blueprint if before else _blueprint_of(events))
        events = stamp_state_deadlines(blueprint, events)
        after = fold(events, before)
        if after is None:
            raise ValueError("commit needs at least one event or a prior state")
        child = abandoned_child(before, after, events)
        if not linked and child is None:
            if conn is None:
                async with self.pool.acquire() as own:
                    await self._write(own, before, after, events, meta)
            elif savepoint:
                async with conn.transaction():
                    await self._write(conn, before, after, events, meta)
            else:
                await self._write(conn, before, after, events, meta)
            self._committed(before, after, events)
            return after
        # Several streams change together: one transaction (a savepoint inside the caller's).
        async with contextlib.AsyncExitStack() as stack:
            tx: asyncpg.Connection = conn or await stack.enter_async_context(self.pool.acquire())
            await stack.enter_async_context(tx.transaction())
            await self._write(tx, before, after, events, meta)
            for created in linked:
                await self.commit(None, created, meta=meta, conn=tx, savepoint=False)
            if child is not None:
                await self._cancel_child(tx, child, parent=after, meta=meta)
        self._committed(before, after, events)
        return after

    def _committed(self, before: JobState | None, after: JobState, events: Sequence[AnyEvent]) -> None:
        # Counted when written, which may still roll back with a caller's transaction: metrics, not history.
        if self._on_commit is not None and events:
            self._on_commit(before, after, events)

    async def project(self, conn: asyncpg.Connection, state: JobState) -> None:
        """Write the rows a job's state implies (``jobs``, its step and task rows), appending nothing.

        For a log loaded by ``chronik events import``: the queues and timers come back
        as the live engine would have left them.
        """
        await self._write(conn, None, state, (), None, derive_only=True)

    async def _cancel_child(
        self, conn: asyncpg.Connection, child_id: UUID, *, parent: JobState, meta: dict[str, Any] | None
    ) -> None:
        child = await jobs_projection.load_state(conn, child_id)
        if child is None or child.is_terminal:
            return
        reason = f"its parent job {parent.job_id} stopped waiting for it ({parent.status})"
        cancelled = JobCancelled(at=parent.updated_at, reason=reason, actor=f"job:{parent.job_id}")
        await self.commit(child, (cancelled,), meta=meta, conn=conn, savepoint=False)

    async def _write(
        self,
        conn: asyncpg.Connection,
        before: JobState | None,
        after: JobState,
        events: Sequence[AnyEvent],
        meta: dict[str, Any] | None,
        *,
        derive_only: bool = False,
    ) -> None:
        # Deriving rows from a loaded log (an import) announces nothing: no webhook, no wake-up,
        # no clean-up; those happened, or were owed, when the log was first written.
        ended_now = not derive_only and after.is_terminal and not (before is not None and before.is_terminal)
        await commit(
            conn,
            job_id=after.job_id,
            expected_version=before.version if before else 0,
            events=events,
            meta=meta,
            job_row=jobs_projection.job_row(after),
            step=step_change(before, after),
            tasks=task_changes(before, after, events),
            # A parent waits for this job: its step becomes due now, in this same statement.
            wake=after.parent_job_id if ended_now else None,
            webhook=None if derive_only else webhook_notice(before, after),
            traceparent=after.traceparent,
            remove_files=ended_now and self._files,
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

    async def reschedule_claimed_step(
        self, step: steps.ClaimedStep, *, instance: str, due: datetime | None
    ) -> None:
        """Hand back a step this instance holds with nothing to do now: due at ``due``, or removed."""
        async with self.pool.acquire() as conn:
            await steps.reschedule_claimed(conn, step, instance=instance, due=due)

    async def renew_step_leases(self, job_ids: list[UUID], *, lease_seconds: float, instance: str) -> None:
        """Extend the leases of steps this instance is still running."""
        async with self.pool.acquire() as conn:
            await steps.renew_leases(conn, job_ids, lease_seconds=lease_seconds, instance=instance)

    async def seconds_to_next_step(self) -> float | None:
        """Seconds until the next timer's step is due; ``None`` when no timer waits."""
        async with self.pool.acquire() as conn:
            return await steps.seconds_to_next(conn)
