"""The job commands and queries an instance serves: create, read, list, time travel, act.

Every command takes the one path: load the job, decide (pure, in ``core``),
commit at the version it read, and on a conflict decide again
(``retry_on_conflict``). Queries read the projections through the store.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from chronik.adapters.postgres import outbox
from chronik.adapters.telemetry.tracing import new_traceparent
from chronik.core import ids
from chronik.core.actions import check_timeout
from chronik.core.approvals import decide_approval
from chronik.core.blueprint import Blueprint
from chronik.core.decide import decide_cancel, decide_create
from chronik.core.errors import ActionError, BlueprintNotFound, InvalidInput, JobNotFound
from chronik.core.events import AnyEvent
from chronik.core.evolve import fold
from chronik.core.forks import decide_fork
from chronik.core.records import JobFilter, RecordedEvent
from chronik.core.state import JobState
from chronik.core.tasks import decide_retry

from .archived import ArchivedHistory
from .commands import retry_on_conflict
from .input_check import check_initial_data
from .store import JobStore, Quota
from .webhooks import check_webhook_url

__all__ = ["JobService"]


class JobService:
    """Create jobs, read them, and act on them, for the API, the CLI and embedding programs."""

    def __init__(
        self,
        store: JobStore,
        blueprints: Mapping[str, Blueprint],
        *,
        instance: str,
        webhook_secret: str | None,
        max_transitions: int = 100,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        archive: ArchivedHistory | None = None,
    ) -> None:
        self._store = store
        self._archive = archive
        self._blueprints = blueprints
        self._instance = instance
        self._webhook_secret = webhook_secret
        self._max_transitions = max_transitions
        self._clock = clock

    async def create(
        self,
        blueprint: str | Blueprint,
        initial_data: dict[str, Any] | None = None,
        *,
        actor: str = "",
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        webhook_url: str | None = None,
        monthly_quota: int | None = None,
        metadata: dict[str, Any] | None = None,
        max_transitions: int | None = None,
        security: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        dispatch_timeout: float | None = None,
    ) -> JobState:
        """Create a job of ``blueprint`` and queue its first step (see ``Engine.create_job``).

        The job belongs to ``actor``, the client creating it.
        """
        found = self._registered(blueprint)
        check_initial_data(found, initial_data)
        try:
            check_timeout("timeout_seconds", timeout_seconds)
            check_timeout("dispatch_timeout", dispatch_timeout)
        except ActionError as exc:
            raise InvalidInput(exc.message) from None
        if max_transitions is not None and not 1 <= max_transitions <= 1_000_000:
            raise InvalidInput(f"max_transitions must be from 1 to 1000000, got {max_transitions}")
        if webhook_url is not None:
            check_webhook_url(webhook_url, secret=self._webhook_secret)
        job_id = ids.new_job_id()
        traceparent = new_traceparent(
            "chronik.job.create", {"chronik.job_id": str(job_id), "chronik.blueprint": found.name}
        )
        events = decide_create(
            job_id,
            found,
            dict(initial_data or {}),
            self._clock(),
            timeout_seconds=timeout_seconds,
            webhook_url=webhook_url,
            traceparent=traceparent,
            client=actor,
            metadata=metadata,
            max_transitions=self._max_transitions if max_transitions is None else max_transitions,
            security=security,
            policy=policy,
            # A float, as the event decodes it (the row must equal a refold of the log byte for byte).
            dispatch_timeout=None if dispatch_timeout is None else float(dispatch_timeout),
        )
        job, _created = await self._store.create(
            found,
            events,
            meta=self._meta(actor),
            client=actor,
            idempotency_key=idempotency_key,
            quota=None if monthly_quota is None else Quota(client=actor, monthly=monthly_quota),
        )
        return job

    def _registered(self, blueprint: str | Blueprint) -> Blueprint:
        name = blueprint.name if isinstance(blueprint, Blueprint) else blueprint
        found = self._blueprints.get(name)
        if found is None:
            raise BlueprintNotFound(f"no blueprint named {name!r} is registered")
        return found

    # Ownership: every read and command takes ``owner``, the client asking (None: anyone, as an
    # admin or the embedding program). Another client's job is answered exactly as an unknown one,
    # so that a client cannot even learn that a job id exists.

    async def get(self, job_id: UUID, *, owner: str | None = None) -> JobState:
        """The job's current state; ``JobNotFound`` for an unknown id (or one ``owner`` does not own).

        An archived job answers from its archive: the fold of its archived events.
        """
        state = await self._store.load(job_id)
        if state is None:
            state = fold(recorded.event for recorded in await self._archived(job_id))
        return _owned(job_id, state, owner)

    async def get_with_progress(
        self, job_id: UUID, *, owner: str | None = None
    ) -> tuple[JobState, dict[str, Any] | None]:
        """The job's state and its worker's last progress report; ``JobNotFound`` for an unknown id."""
        found = await self._store.load_with_progress(job_id)
        if found is None:
            return await self.get(job_id, owner=owner), None
        _owned(job_id, found[0], owner)
        return found

    async def history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None, owner: str | None = None
    ) -> list[RecordedEvent]:
        """The job's events in order (a page after ``after_version``); ``JobNotFound`` for an unknown id."""
        events, _ = await self.history_page(job_id, after_version=after_version, limit=limit, owner=owner)
        return events

    async def history_page(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None, owner: str | None = None
    ) -> tuple[list[RecordedEvent], bool]:
        """The job's events (a page after ``after_version``), and whether they came from its archive."""
        if owner is not None:
            await self.get(job_id, owner=owner)
        events = await self._store.history(job_id, after_version=after_version, limit=limit)
        if events or (after_version > 0 and await self._store.load(job_id) is not None):
            return events, False
        archived = [recorded for recorded in await self._archived(job_id) if recorded.version > after_version]
        if not archived and after_version == 0:
            raise JobNotFound(f"no job has the id {job_id}")
        return archived[:limit] if limit is not None else archived, True

    async def _archived(self, job_id: UUID) -> list[RecordedEvent]:
        # A job not in the hot tables may have left with its partition; [] when it never existed.
        if self._archive is None:
            return []
        return await self._archive.events(job_id) or []

    async def list_jobs(
        self,
        where: JobFilter,
        *,
        limit: int = 50,
        after: tuple[datetime, UUID] | None = None,
        owner: str | None = None,
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
        """Jobs matching ``where``, newest first, ``limit`` a page; pass the returned cursor for the next."""
        if owner is not None:
            where = msgspec.structs.replace(where, client=owner)
        return await self._store.list_jobs(where, limit=limit, after=after)

    async def count(self, where: JobFilter, *, owner: str | None = None) -> int:
        """How many jobs match ``where`` (of ``owner``'s, when given)."""
        if owner is not None:
            where = msgspec.structs.replace(where, client=owner)
        return await self._store.count_jobs(where)

    async def as_of(
        self,
        job_id: UUID,
        *,
        version: int | None = None,
        at: datetime | None = None,
        owner: str | None = None,
    ) -> JobState:
        """The job as the fold of its first ``version`` events, or of those that happened by ``at``.

        The same fold as the live state, over a prefix of the log: time travel for audits.
        """
        # A version needs only the log up to it (a deep job's early version reads a few events).
        events = await self.history(job_id, limit=version if version and version > 0 else None, owner=owner)
        if version is not None:
            if version < 1 or version > len(events):
                raise InvalidInput(
                    f"as_of_version must be from 1 to {len(events)} for job {job_id}, got {version}"
                )
            events = events[:version]
        if at is not None:
            if at.tzinfo is None:
                raise InvalidInput("as_of needs a time zone, e.g. 2026-11-23T10:00:00Z")
            # The event's own time, the clock of created_at/updated_at; a prefix, as the log is ordered.
            events = list(itertools.takewhile(lambda recorded: recorded.event.at <= at, events))
            if not events:
                raise JobNotFound(f"job {job_id} did not exist yet at {at.isoformat()}")
        state = fold(recorded.event for recorded in events)
        assert state is not None
        return state

    async def fork(
        self,
        job_id: UUID,
        from_version: int,
        *,
        actor: str = "",
        owner: str | None = None,
        webhook_url: str | None = None,
        monthly_quota: int | None = None,
    ) -> JobState:
        """Start a new job from the job's state as of ``from_version``; the new job's state.

        The new job belongs to the source's client and is recorded in the source's history
        (``JobForked``), in the same transaction. ``monthly_quota`` counts it against ``actor``'s
        month, as a create does. What it takes from the source: see ``core.forks.decide_fork``.
        """
        source = await self.get(job_id, owner=owner)
        if not 1 <= from_version <= source.version:
            raise InvalidInput(
                f"from_version must be from 1 to {source.version} for job {job_id}, got {from_version}"
            )
        found = self._registered(source.blueprint)
        if webhook_url is not None:
            check_webhook_url(webhook_url, secret=self._webhook_secret)
        # A prefix of the log never changes: read and folded once, whatever the source does meanwhile.
        then = fold(recorded.event for recorded in await self._store.history(job_id, limit=from_version))
        assert then is not None and then.version == from_version
        new_job_id = ids.new_job_id()
        traceparent = new_traceparent(
            "chronik.job.fork",
            {
                "chronik.job_id": str(new_job_id),
                "chronik.blueprint": found.name,
                "chronik.forked_from": str(job_id),
            },
        )
        quota = None if monthly_quota is None else Quota(client=actor, monthly=monthly_quota)

        async def attempt(n: int) -> JobState:
            # The source is read again after a conflict (it moved: a result, a cancel, another fork).
            current = source if n == 0 else await self.get(job_id, owner=owner)
            fork = decide_fork(
                current,
                then,
                found,
                new_job_id,
                self._clock(),
                actor=actor,
                webhook_url=webhook_url,
                traceparent=traceparent,
                max_transitions=self._max_transitions,
            )
            return await self._store.fork(current, fork, meta=self._meta(actor), quota=quota)

        return await retry_on_conflict(attempt, what=f"job {job_id}")

    async def webhooks(self, job_id: UUID, *, owner: str | None = None) -> list[dict[str, Any]]:
        """The job's webhook notifications with every attempt; ``JobNotFound`` for an unknown id."""
        await self.get(job_id, owner=owner)
        async with self._store.database.connection() as conn:
            return await outbox.of_job(conn, job_id)

    async def cancel(
        self, job_id: UUID, *, reason: str = "", actor: str = "", owner: str | None = None
    ) -> JobState:
        """Cancel a job that has not ended; ``JobNotCancellable`` when it has."""
        return await self._command(
            job_id,
            lambda state: decide_cancel(state, self._clock(), reason=reason, actor=actor),
            actor,
            owner,
        )

    async def approve(
        self,
        job_id: UUID,
        decision: str,
        *,
        comment: str = "",
        actor: str = "",
        owner: str | None = None,
        token: str | None = None,
    ) -> JobState:
        """Record a person's decision on a job waiting for one; the job moves on by its transitions.

        ``token`` is the public approval link's secret: with it, no owner is needed.
        """
        return await self._command(
            job_id,
            lambda state: decide_approval(
                state, decision, self._clock(), comment=comment, actor=actor, token=token
            ),
            actor,
            owner,
        )

    async def retry(self, job_id: UUID, *, actor: str = "", owner: str | None = None) -> JobState:
        """Re-run a quarantined job's task with a fresh retry budget; ``JobNotRetryable`` otherwise."""
        return await self._command(
            job_id, lambda state: decide_retry(state, self._clock(), actor=actor), actor, owner
        )

    async def _command(
        self,
        job_id: UUID,
        decide: Callable[[JobState], tuple[AnyEvent, ...]],
        actor: str,
        owner: str | None,
    ) -> JobState:
        async def attempt(_n: int) -> JobState:
            state = await self.get(job_id, owner=owner)
            return await self._store.commit(state, decide(state), meta=self._meta(actor))

        return await retry_on_conflict(attempt, what=f"job {job_id}")

    def _meta(self, actor: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"instance": self._instance}
        if actor:
            meta["actor"] = actor
        return meta


def _owned(job_id: UUID, state: JobState | None, owner: str | None) -> JobState:
    if state is None or (owner is not None and state.client != owner):
        raise JobNotFound(f"no job has the id {job_id}")
    return state
