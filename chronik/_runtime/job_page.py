"""What the console's job page reads beyond the job API: filtered pages of the log, the moves a job
made, its task attempts, and a replay of its history against today's handlers.

Every read takes ``owner`` like the job service's (another client's job is ``JobNotFound``) and is
bounded by a page, by the job's distinct moves or by its task events: none reads the whole log,
except the replay, which must.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

import msgspec

from chronik.adapters.postgres import job_page
from chronik.adapters.postgres.database import Database
from chronik.core.attempts import ATTEMPT_EVENT_TYPES, TaskAttempt, task_attempts
from chronik.core.blueprint import Blueprint
from chronik.core.divergence import Divergence
from chronik.core.errors import BlueprintNotFound
from chronik.core.records import RecordedEvent

from .jobs import JobService
from .replay import divergences

__all__ = ["EventPage", "JobPageReads"]


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a job's events of some types, newest first, and where the pages beside it end."""

    events: list[RecordedEvent]
    older: int | None
    """The ``upto`` of the page of older events; None: this is the oldest."""
    newer: int | None
    """The ``upto`` of the page of newer events (the job's version: the newest page); None: this
    is the newest."""


class JobPageReads:
    """The console job page's reads of one job."""

    def __init__(self, jobs: JobService, database: Database, blueprints: Mapping[str, Blueprint]) -> None:
        self._jobs = jobs
        self._database = database
        self._blueprints = blueprints

    async def events_of_types(
        self,
        job_id: UUID,
        types: Sequence[str],
        *,
        upto: int | None = None,
        limit: int = 100,
        owner: str | None = None,
    ) -> EventPage:
        """The job's events of ``types`` at or below version ``upto`` (default: its newest), newest first."""
        job = await self._jobs.get(job_id, owner=owner)
        top = job.version if upto is None else min(upto, job.version)
        async with self._database.connection() as conn:
            found = await job_page.events_of_types(conn, job_id, types, upto=top, limit=limit + 1)
            newest, above = await job_page.version_after_types(conn, job_id, types, after=top, limit=limit)
        events = found[:limit]
        older = found[limit].version if len(found) > limit else None
        # The newer page is the newest one when it is not full: it goes up to the job's version.
        newer = None if newest is None else newest if above == limit else job.version
        return EventPage(events=events, older=older, newer=newer)

    async def moves(self, job_id: UUID, *, owner: str | None = None) -> dict[tuple[str | None, str], int]:
        """How many times the job moved from each state to each other (``(None, start)``: its start)."""
        await self._jobs.get(job_id, owner=owner)
        async with self._database.connection() as conn:
            return await job_page.moves(conn, job_id)

    async def attempts(self, job_id: UUID, *, owner: str | None = None) -> list[TaskAttempt]:
        """Every task attempt of the job, from its task events; an open one is ``queued`` or ``running``."""
        await self._jobs.get(job_id, owner=owner)
        async with self._database.connection() as conn:
            found = await job_page.events_of_types(
                conn, job_id, ATTEMPT_EVENT_TYPES, upto=2**31 - 1, limit=None
            )
            queue = {(task.task_id, task.attempt): task for task in await job_page.open_tasks(conn, job_id)}
        attempts = task_attempts(recorded.event for recorded in reversed(found))
        shown = []
        for attempt in attempts:
            row = queue.get((attempt.task_id, attempt.attempt))
            if attempt.outcome == "open" and row is not None:
                attempt = msgspec.structs.replace(
                    attempt,
                    outcome="running" if row.status == "leased" else row.status,
                    claimed_at=row.claimed_at,
                    worker_id=row.worker_id,
                )
            shown.append(attempt)
        return shown

    async def replay(self, job_id: UUID, *, owner: str | None = None) -> tuple[int, list[Divergence]]:
        """Would today's handlers decide as the job's history did? Its handler runs, and those that
        differ (``chronik jobs replay --blueprint``, with this instance's blueprints).

        Handlers run for real, as in the CLI: their side effects belong in tasks.
        """
        job = await self._jobs.get(job_id, owner=owner)
        blueprint = self._blueprints.get(job.blueprint)
        if blueprint is None:
            raise BlueprintNotFound(
                f"blueprint {job.blueprint!r} of job {job_id} is not registered on this instance; "
                "replay runs today's handlers, so it needs them"
            )
        events = [recorded.event for recorded in await self._jobs.history(job_id, owner=owner)]
        return await divergences(blueprint, events, blueprints=self._blueprints)
