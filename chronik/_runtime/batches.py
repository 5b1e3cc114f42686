"""Batch actions: cancel or retry every job a filter finds, each through the one command path.

A dry run counts the jobs the action applies to (cancel: those that have not ended;
retry: the quarantined) among those the filter finds and the caller owns, and shows
the first ids. A real run walks them newest first in keyset pages and acts on each
with ``JobService.cancel`` or ``retry``: its own commit, decided again on a conflict,
ownership checked again. A job that ended or moved on meanwhile is skipped with the
reason, never an error of the whole batch. One run acts on at most ``cap`` jobs;
``more`` says whether others remain (run it again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

import msgspec

from chronik.core.errors import ChronikError
from chronik.core.records import JobFilter
from chronik.core.state import JobState, JobStatus

from .jobs import JobService
from .store import JobStore

__all__ = [
    "APPLIES_TO",
    "BATCH_CAP",
    "BatchAction",
    "BatchOutcome",
    "BatchPreview",
    "BatchSkip",
    "JobBatches",
]

BatchAction = Literal["cancel", "retry"]

BATCH_CAP: Final = 10_000
"""The most jobs one real run acts on."""

APPLIES_TO: Final[dict[str, tuple[str, ...]]] = {
    "cancel": (
        JobStatus.RUNNING,
        JobStatus.WAITING_FOR_WORKER,
        JobStatus.WAITING_FOR_HUMAN,
        JobStatus.WAITING_FOR_TIMER,
        JobStatus.WAITING_FOR_CHILD,
        JobStatus.QUARANTINED,
    ),
    "retry": (JobStatus.QUARANTINED,),
}
"""The statuses of the jobs each action applies to."""

_PAGE = 500
"""Jobs read per keyset page of a real run."""

_AT_ONCE = 8
"""Commands in flight at once: a batch must not take the whole pool from the instance's other work."""


class BatchPreview(msgspec.Struct, frozen=True, kw_only=True):
    """What a real run would act on now."""

    count: int
    first_ids: list[UUID]
    """The first ten, newest first."""


class BatchSkip(msgspec.Struct, frozen=True, kw_only=True):
    """A job a run found but did not act on, and why (it ended or moved on meanwhile, say)."""

    job_id: UUID
    code: str
    reason: str


class BatchOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a real run did."""

    count: int
    """Jobs it found and tried: ``done`` plus the skipped."""
    done: int
    skipped: list[BatchSkip]
    more: bool
    """Whether jobs it would act on remain past the cap."""


class JobBatches:
    """Cancel or retry the jobs a filter finds, for the API and the console."""

    def __init__(self, jobs: JobService, store: JobStore, *, cap: int = BATCH_CAP) -> None:
        self._jobs = jobs
        self._store = store
        self.cap = cap
        """The most jobs one real run acts on."""

    @staticmethod
    def scope(action: BatchAction, where: JobFilter, *, owner: str | None) -> JobFilter:
        """``where``, narrowed to the jobs ``action`` applies to and ``owner`` owns (None: anyone's)."""
        return msgspec.structs.replace(
            where, statuses=APPLIES_TO[action], client=owner if owner is not None else where.client
        )

    async def preview(self, action: BatchAction, where: JobFilter, *, owner: str | None) -> BatchPreview:
        """How many jobs a run would act on now, and the first ten ids."""
        scoped = self.scope(action, where, owner=owner)
        count = await self._store.count_jobs(scoped)
        first = await self._store.list_keys(scoped, limit=10, after=None) if count else []
        return BatchPreview(count=count, first_ids=[job_id for _created, job_id in first])

    async def run(
        self, action: BatchAction, where: JobFilter, *, actor: str, owner: str | None, reason: str = ""
    ) -> BatchOutcome:
        """Act on up to ``cap`` of the jobs, newest first, each through the one command path."""
        scoped = self.scope(action, where, owner=owner)
        command = self._command(action, actor=actor, owner=owner, reason=reason)
        gate = asyncio.Semaphore(_AT_ONCE)

        async def act(job_id: UUID) -> BatchSkip | None:
            async with gate:
                try:
                    await command(job_id)
                except ChronikError as exc:  # it ended, or moved on, after it was listed
                    return BatchSkip(job_id=job_id, code=exc.code, reason=exc.message)
                return None

        count, skipped = 0, list[BatchSkip]()
        after: tuple[datetime, UUID] | None = None
        while True:
            limit = min(_PAGE, self.cap - count)
            keys = await self._store.list_keys(scoped, limit=limit, after=after)
            outcomes = await asyncio.gather(*(act(job_id) for _created, job_id in keys))
            skipped += [skip for skip in outcomes if skip is not None]
            count += len(keys)
            if len(keys) < limit:
                return BatchOutcome(count=count, done=count - len(skipped), skipped=skipped, more=False)
            after = keys[-1]
            if count >= self.cap:
                more = bool(await self._store.list_keys(scoped, limit=1, after=after))
                return BatchOutcome(count=count, done=count - len(skipped), skipped=skipped, more=more)

    def _command(
        self, action: BatchAction, *, actor: str, owner: str | None, reason: str
    ) -> Callable[[UUID], Awaitable[JobState]]:
        if action == "cancel":
            return lambda job_id: self._jobs.cancel(job_id, reason=reason, actor=actor, owner=owner)
        return lambda job_id: self._jobs.retry(job_id, actor=actor, owner=owner)
