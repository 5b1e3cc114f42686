"""The unit of work of a job: fold the events, derive every row they change, write all in one statement.

``commit`` is the only way a job changes. It folds the events onto the state
they were decided on, derives the ``jobs`` row, the step, the task rows and what
the change owes others (``core.effects``), and hands that to the one statement
of ``adapters/postgres/commit.py``. A change that spans several jobs (a child
started, a child abandoned) is one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from chronik.adapters.postgres import event_store, idempotency, jobs, limits, steps
from chronik.adapters.postgres.commit import StepHold, commit
from chronik.adapters.postgres.database import (
    BUSY_ERRORS,
    UNAVAILABLE_ERRORS,
    Connection,
    Database,
    in_transaction,
)
from chronik.adapters.postgres.database import savepoint as in_savepoint
from chronik.core.blueprint import Blueprint
from chronik.core.deadlines import stamp_state_deadlines
from chronik.core.effects import JobChange, abandoned_child, change_of
from chronik.core.errors import IdempotencyKeyReused, QuotaExceeded
from chronik.core.events import AnyEvent, JobCancelled, JobCreated
from chronik.core.evolve import fold
from chronik.core.forks import Fork
from chronik.core.records import JobFilter, RecordedEvent
from chronik.core.state import JobState

__all__ = ["HeldSteps", "JobStore", "Quota"]


class HeldSteps(Protocol):
    """Who runs the handler of a step a commit takes for this instance (the executor)."""

    @property
    def instance(self) -> str:
        """The name the step is leased to."""
        ...

    @property
    def lease_seconds(self) -> float:
        """How long the lease lasts."""
        ...

    def reserve(self) -> bool:
        """Take a free slot for a step about to be committed; ``False`` when none is free."""
        ...

    def release(self) -> None:
        """Give back a reserved slot whose step was not taken (the commit failed)."""
        ...

    def run_held(self, step: steps.ClaimedStep) -> None:
        """Run a reserved step's handler now."""
        ...


class Quota(msgspec.Struct, frozen=True, kw_only=True):
    """A client's monthly job quota, charged in the transaction that creates the job."""

    client: str
    monthly: int


class JobStore:
    """Reads and writes jobs through the event log, keeping projections and queues in step."""

    def __init__(
        self,
        database: Database,
        blueprints: Mapping[str, Blueprint] | None = None,
        *,
        on_commit: Callable[[JobState | None, JobState, Sequence[AnyEvent]], None] | None = None,
        files: bool = False,
    ) -> None:
        self.database = database
        self._on_commit = on_commit
        self._files = files
        """S3 ``task_files`` are on: every job's folder is emptied when it ends, whatever the
        log recorded of it (an outcome dropped on a conflict may have stored files too)."""
        self.blueprints: Mapping[str, Blueprint] = blueprints if blueprints is not None else {}
        """The engine's blueprints: to stamp state deadlines into events (see ``stamp_state_deadlines``)."""
        self._held: HeldSteps | None = None

    def run_steps_here(self, held: HeldSteps) -> None:
        """Let commits that make a handler due take its step for this instance and run it at once.

        The step row is still written (leased, in the same statement), so a crash before the
        handler's outcome is committed leaves a lease that runs out: another instance runs it.
        What it saves is the queue's round trip: a NOTIFY, a wake-up and a claim per handler.
        """
        self._held = held

    async def commit(
        self,
        before: JobState | None,
        events: Sequence[AnyEvent],
        *,
        meta: dict[str, Any] | None = None,
        conn: Connection | None = None,
        savepoint: bool = True,
        linked: Sequence[Sequence[AnyEvent]] = (),
        blueprint: Blueprint | None = None,
    ) -> JobState:
        """Append ``events`` to the stream that ``before`` was read from and return the new state.

        The ``jobs`` row, the job's step and its task rows change in the same
        statement. With ``conn`` it joins the caller's transaction, inside a
        savepoint unless ``savepoint=False`` (the caller then retries the whole
        transaction on a conflict). Raises ``VersionConflict`` when the stream
        moved since ``before`` was read.

        ``linked`` are the creating events of new jobs that commit with this change
        (a child job). A change that abandons a running child cancels it, and its
        children, in the same transaction. ``blueprint`` is the job's, when the
        caller has it at hand (else it is looked up by name).

        When the change makes a handler due now, this instance takes its step and runs it at
        once if it has a free slot, provided the change is committed for good when this returns:
        not when it joins a transaction of the caller's, which could still roll back.
        """
        if blueprint is None:
            blueprint = self.blueprints.get(before.blueprint if before else _blueprint_of(events))
        events = stamp_state_deadlines(blueprint, events)
        after = fold(events, before)
        if after is None:
            raise ValueError("commit needs at least one event or a prior state")
        change = change_of(before, after, events, meta=meta or {}, files=self._files)
        child = abandoned_child(before, after, events)
        # A blueprint this instance does not have (a rolling deploy) is left to an instance that has it.
        final = conn is None or not in_transaction(conn)
        hold = self._hold(change, final=final) if blueprint is not None else None
        try:
            if not linked and child is None:
                async with self._writing(conn, savepoint=savepoint) as tx:
                    done = await commit(tx, change, hold=hold)
            else:
                # Several streams change together: one transaction (a savepoint inside the caller's).
                async with self._writing(conn, savepoint=True, together=True) as tx:
                    done = await commit(tx, change, hold=hold)
                    for created in linked:
                        await self.commit(None, created, meta=meta, conn=tx, savepoint=False)
                    if child is not None:
                        await self._cancel_child(tx, child, parent=after, meta=meta)
        except BaseException as exc:
            if hold is not None and self._held is not None:
                self._held.release()
                if isinstance(exc, UNAVAILABLE_ERRORS):
                    await self._give_back_held(after, hold)
            raise
        try:
            self._committed(before, after, events)
        finally:
            # The step is taken: whatever happens now, it runs here, or its slot is given back.
            if hold is not None and self._held is not None:
                if done.step_attempts is None:
                    self._held.release()
                else:
                    self._held.run_held(steps.ClaimedStep(after.job_id, done.step_attempts, done.at, after))
        return after

    async def _give_back_held(self, after: JobState, hold: StepHold) -> None:
        """After a commit that took its step broke unanswered: free that step, in case it committed.

        The connection broke after the statement was sent (the ambiguous commit): it may have
        committed, leasing the step to this instance, which will not run it (it never got the
        answer). Left alone, the job would wait out the whole step lease (minutes by default).
        """
        try:
            async with self.database.connection(wait_seconds=5.0) as conn:
                await steps.give_back_held(conn, after.job_id, instance=hold.instance, version=after.version)
        except (*UNAVAILABLE_ERRORS, *BUSY_ERRORS):
            pass  # the database is still away (or busy): the lease runs out, and the step runs then

    def _hold(self, change: JobChange, *, final: bool) -> StepHold | None:
        """Whether this instance takes the step ``change`` makes due now (a slot is reserved)."""
        held = self._held
        if not final or held is None or change.step != "enqueue" or change.step_due is not None:
            return None
        if not held.reserve():
            return None
        return StepHold(instance=held.instance, lease_seconds=held.lease_seconds)

    @asynccontextmanager
    async def _writing(
        self, conn: Connection | None, *, savepoint: bool, together: bool = False
    ) -> AsyncIterator[Connection]:
        """Where a commit writes: its own connection (a transaction when several statements go
        together), or the caller's, inside a savepoint unless the caller retries the whole."""
        if conn is None:
            if together:
                async with self.database.transaction() as own:
                    yield own
            else:
                async with self.database.connection() as own:
                    yield own
        elif savepoint:
            async with in_savepoint(conn):
                yield conn
        else:
            yield conn

    def _committed(self, before: JobState | None, after: JobState, events: Sequence[AnyEvent]) -> None:
        # Counted when written, which may still roll back with a caller's transaction: metrics, not history.
        if self._on_commit is not None and events:
            self._on_commit(before, after, events)

    async def project(self, conn: Connection, state: JobState) -> None:
        """Write the rows a job's state implies (``jobs``, its step and task rows), appending nothing.

        For a log loaded by ``chronik events import``: the queues and timers come back
        as the live engine would have left them.
        """
        await commit(conn, change_of(None, state, (), meta={}, files=self._files, derive_only=True))

    async def _cancel_child(
        self, conn: Connection, child_id: UUID, *, parent: JobState, meta: dict[str, Any] | None
    ) -> None:
        child = await jobs.load_state(conn, child_id)
        if child is None or child.is_terminal:
            return
        reason = f"its parent job {parent.job_id} stopped waiting for it ({parent.status})"
        cancelled = JobCancelled(at=parent.updated_at, reason=reason, actor=f"job:{parent.job_id}")
        await self.commit(child, (cancelled,), meta=meta, conn=conn, savepoint=False)

    async def create(
        self,
        blueprint: Blueprint,
        events: Sequence[AnyEvent],
        *,
        meta: dict[str, Any],
        client: str,
        idempotency_key: str | None,
        quota: Quota | None = None,
    ) -> tuple[JobState, bool]:
        """Commit a new job's events; with a key, the job a fresh use of the key created instead.

        Returns the job and whether it was created now. Taking the key, charging the
        client's ``quota`` and creating the job are one transaction, so a key never
        names a job that does not exist, and only a job really created is counted
        (``QuotaExceeded`` past it, with nothing written).
        """
        if idempotency_key is None and quota is None:
            return await self.commit(None, events, meta=meta, blueprint=blueprint), True
        created = events[0]
        assert isinstance(created, JobCreated)
        async with self.database.transaction() as conn:
            if idempotency_key is not None:
                fingerprint = hashlib.sha256(
                    msgspec.json.encode([created.blueprint, created.initial_data], order="sorted")
                ).hexdigest()
                taken = await idempotency.claim(
                    conn, client, idempotency_key, job_id=created.job_id, request=fingerprint
                )
                if not taken:
                    return await self._key_holder(conn, client, idempotency_key, fingerprint), False
            if quota is not None:
                await _charge(conn, quota)
            job = await self.commit(None, events, meta=meta, conn=conn, savepoint=False, blueprint=blueprint)
            return job, True

    async def fork(
        self,
        source: JobState,
        fork: Fork,
        *,
        meta: dict[str, Any],
        quota: Quota | None = None,
    ) -> JobState:
        """Record ``fork`` in the source's stream and create the new job, in one transaction.

        Charges ``quota`` in it too (``QuotaExceeded``, with nothing written). Raises
        ``VersionConflict`` when the source moved since ``source`` was read; returns the new job.
        """
        async with self.database.transaction() as conn:
            if quota is not None:
                await _charge(conn, quota)
            await self.commit(
                source, fork.recorded, meta=meta, conn=conn, savepoint=False, linked=[fork.created]
            )
        created = fold(fork.created)
        assert created is not None
        return created

    async def _key_holder(self, conn: Connection, client: str, key: str, fingerprint: str) -> JobState:
        existing = await idempotency.holder(conn, client, key)
        assert existing is not None
        if existing.request != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was used within 24 hours for another request "
                "(another blueprint or initial_data); use a new key"
            )
        state = await jobs.load_state(conn, existing.job_id)
        assert state is not None
        return state

    async def load(self, job_id: UUID, *, conn: Connection | None = None) -> JobState | None:
        """The job's current state, or ``None`` for an unknown job."""
        if conn is not None:
            return await jobs.load_state(conn, job_id)
        async with self.database.connection() as own:
            return await jobs.load_state(own, job_id)

    async def load_with_progress(self, job_id: UUID) -> tuple[JobState, dict[str, Any] | None] | None:
        """The job's current state and its worker's last progress report, in one query."""
        async with self.database.connection() as conn:
            return await jobs.load_with_progress(conn, job_id)

    async def list_jobs(
        self, where: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
        """A page of jobs, newest first, and the cursor of the next page."""
        async with self.database.connection() as conn:
            return await jobs.list_states(conn, where, limit=limit, after=after)

    async def list_keys(
        self, where: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[tuple[datetime, UUID]]:
        """The keys (``created_at``, ``job_id``) of the next ``limit`` jobs ``where`` finds, newest first."""
        async with self.database.connection() as conn:
            return await jobs.list_keys(conn, where, limit=limit, after=after)

    async def count_jobs(self, where: JobFilter) -> int:
        """How many jobs ``where`` finds."""
        async with self.database.connection() as conn:
            return await jobs.count_jobs(conn, where)

    async def history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The job's events in order, all or a page after ``after_version``."""
        async with self.database.connection() as conn:
            return await event_store.read_stream(conn, job_id, after_version=after_version, limit=limit)

    async def claim_steps(
        self, *, limit: int, lease_seconds: float, instance: str
    ) -> list[steps.ClaimedStep]:
        """Lease due steps to this instance."""
        async with self.database.connection() as conn:
            return await steps.claim(conn, limit=limit, lease_seconds=lease_seconds, instance=instance)

    async def retry_step(self, step: steps.ClaimedStep, *, delay_seconds: float, instance: str) -> None:
        """Hand a claimed step back to run again later."""
        async with self.database.connection() as conn:
            await steps.retry(conn, step, delay_seconds=delay_seconds, instance=instance)

    async def reschedule_claimed_step(
        self, step: steps.ClaimedStep, *, instance: str, due: datetime | None
    ) -> None:
        """Hand back a step this instance holds with nothing to do now: due at ``due``, or removed."""
        async with self.database.connection() as conn:
            await steps.reschedule_claimed(conn, step, instance=instance, due=due)

    async def renew_step_leases(self, job_ids: list[UUID], *, lease_seconds: float, instance: str) -> None:
        """Extend the leases of steps this instance is still running."""
        async with self.database.connection() as conn:
            await steps.renew_leases(conn, job_ids, lease_seconds=lease_seconds, instance=instance)

    async def seconds_to_next_step(self) -> float | None:
        """Seconds until the next timer's step is due; ``None`` when no timer waits."""
        async with self.database.connection() as conn:
            return await steps.seconds_to_next(conn)


async def _charge(conn: Connection, quota: Quota) -> None:
    """Count one new job against the client's month; ``QuotaExceeded`` past it."""
    used = await limits.hit_monthly_quota(conn, f"quota:{quota.client}")
    if used > quota.monthly:
        raise QuotaExceeded(
            f"client {quota.client!r} has created its {quota.monthly} jobs for this month "
            "(monthly_attempts); the quota renews on the 1st (UTC)"
        )


def _blueprint_of(events: Sequence[AnyEvent]) -> str:
    first = events[0] if events else None
    return first.blueprint if isinstance(first, JobCreated) else ""
