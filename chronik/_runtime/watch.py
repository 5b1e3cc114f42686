"""Waiting on jobs without polling: the instance's job notifications, fanned out to waiters.

Every commit of a job notifies ``chronik_jobs`` with ``<job_id>:<version>:<status>``
(migration 0013), and the instance's one LISTEN connection hands each payload to
``JobWatch``, the hub. A waiter subscribes to a job *before* it reads it, so a
change committed in between still wakes it; a notification wakes only that job's
subscribers; when the listener reconnects, every subscriber is told to read again
(what was notified meanwhile is lost). ``JobWaits`` serves the two ways clients
wait on it: ``wait`` (``GET /jobs/{id}?wait=``) and ``events`` (the ``/events``
stream). While they wait they hold no connection and cost no query.

A wait ends when the job has *stopped*: it ended (finished, failed, cancelled) or
it was quarantined, the outcomes its webhook announces; a quarantined job moves
only when a person retries it. A job waiting for a person's approval has not
stopped: as in Avtomatika and Temporal, a wait is for the outcome, and a waiter
that wants to see the approval request follows the stream or reads the status
the wait answers with at its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Final, NamedTuple
from uuid import UUID

import structlog

from chronik.core.records import RecordedEvent
from chronik.core.state import TERMINAL_STATUSES, JobState, JobStatus

from .jobs import JobService

__all__ = ["STOPPED_STATUSES", "JobNotice", "JobWaits", "JobWatch", "Subscription", "parse_notice"]

log = structlog.get_logger("chronik.watch")

STOPPED_STATUSES: Final = TERMINAL_STATUSES | {JobStatus.QUARANTINED}
"""The statuses that end a wait and a stream: the job will not move on by itself."""

_PAGE = 500
"""Events read per query when a stream catches up."""


class JobNotice(NamedTuple):
    """What a notification says about a job."""

    version: int
    status: str | None
    """``None``: unknown, as notifications may have been lost (the listener reconnected); read again."""


def parse_notice(payload: str) -> tuple[str, JobNotice] | None:
    """The job id (as text) and notice of a ``chronik_jobs`` payload; ``None`` if it is not one."""
    job_id, _, rest = payload.partition(":")
    version, _, status = rest.partition(":")
    if not status or not version.isdigit():
        return None
    return job_id, JobNotice(int(version), status)


class Subscription:
    """What one waiter hears about one job, from the moment it subscribed."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.closed = False
        """The hub closed (the instance shuts down): stop waiting."""
        self._pending: JobNotice | None = None
        self._woken = asyncio.Event()

    def deliver(self, notice: JobNotice) -> None:
        """Keep the newest news (a read-again wins over any version) and wake the waiter."""
        pending = self._pending
        if pending is not None:
            if pending.status is None or notice.status is None:
                notice = JobNotice(max(pending.version, notice.version), None)
            elif pending.version > notice.version:
                notice = pending
        self._pending = notice
        self._woken.set()

    def close(self) -> None:
        """End the waiter's wait for good."""
        self.closed = True
        self._woken.set()

    async def next(self, *, after_version: int, within: float) -> JobNotice | None:
        """The news past ``after_version``, waiting at most ``within`` seconds for it.

        Returns the newest notice of a later version, or one whose ``status`` is
        ``None`` (read again); ``None`` at the timeout or once the hub is closed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.closed:
            pending, self._pending = self._pending, None
            self._woken.clear()
            if pending is not None and (pending.status is None or pending.version > after_version):
                return pending
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await self._woken.wait()
            except TimeoutError:
                return None
        return None


class JobWatch:
    """The hub: job notifications in, each to the subscriptions of its job only."""

    def __init__(self) -> None:
        # Keyed by the id as PostgreSQL writes it (lowercase, hyphenated, as str(UUID)): a
        # notification of a job nobody waits on costs a split and a dict lookup, no parsing.
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._closed = False

    @property
    def watching(self) -> int:
        """How many subscriptions are open."""
        return sum(len(subscriptions) for subscriptions in self._subscriptions.values())

    @contextmanager
    def subscribe(self, job_id: UUID) -> Iterator[Subscription]:
        """Hear about ``job_id`` until the block ends; subscribe *before* reading the job."""
        key = str(job_id)
        subscription = Subscription(key)
        if self._closed:
            subscription.close()
        self._subscriptions.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscriptions = self._subscriptions.get(key)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[key]

    def notified(self, payload: str) -> None:
        """The listener's callback for ``chronik_jobs``: wake the job's subscriptions."""
        parsed = parse_notice(payload)
        if parsed is None:
            log.warning("job_notice_unreadable", payload=payload[:200])
            return
        job_id, notice = parsed
        for subscription in self._subscriptions.get(job_id, ()):
            subscription.deliver(notice)

    def reconnected(self) -> None:
        """The listener's callback on (re)connecting: notifications may be lost, all read again."""
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.deliver(JobNotice(0, None))

    def close(self) -> None:
        """End every wait now and any later one at once: the instance is shutting down."""
        self._closed = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.close()


class JobWaits:
    """Wait until a job stops, or follow its events as they commit, woken by the hub."""

    def __init__(self, jobs: JobService, watch: JobWatch, *, heartbeat_seconds: float = 15.0) -> None:
        self._jobs = jobs
        self._watch = watch
        self.heartbeat_seconds = heartbeat_seconds
        """How long a stream stays quiet before it yields ``None``, for a keep-alive through proxies."""

    async def wait(self, job_id: UUID, seconds: float) -> tuple[JobState, dict[str, Any] | None]:
        """The job's state and progress once it has stopped, or after ``seconds`` as it is then.

        It reads the job when it starts, when a notification says the job stopped (or
        the listener reconnected), and at the deadline, for the current progress too.
        ``JobNotFound`` for an unknown id.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self._watch.subscribe(job_id) as subscription:
            state, progress = await self._jobs.get_with_progress(job_id)
            seen = state.version
            while state.status not in STOPPED_STATUSES:
                notice = await subscription.next(after_version=seen, within=deadline - loop.time())
                if notice is None:  # the deadline, or the instance shuts down
                    return await self._jobs.get_with_progress(job_id)
                if notice.status is not None and notice.status not in STOPPED_STATUSES:
                    seen = notice.version  # it moved, but not to an end: nothing to read
                    continue
                state, progress = await self._jobs.get_with_progress(job_id)
                seen = state.version
        return state, progress

    async def events(
        self, job_id: UUID, after_version: int = 0
    ) -> AsyncIterator[RecordedEvent | None] | None:
        """The job's events after ``after_version``, then each as it commits, until it stops.

        ``JobNotFound`` is raised here, before anything streams. ``None`` when the job
        has stopped and has no event after ``after_version``: nothing will follow (a
        client that reconnects after the end is told so). The iterator yields ``None``
        after ``heartbeat_seconds`` without news, for a keep-alive, and ends after the
        event that stops the job, or when the instance shuts down.
        """
        state = await self._jobs.get(job_id)
        if state.status in STOPPED_STATUSES and state.version <= after_version:
            return None
        return self._follow(job_id, after_version)

    async def _follow(self, job_id: UUID, after_version: int) -> AsyncIterator[RecordedEvent | None]:
        with self._watch.subscribe(job_id) as subscription:
            while True:
                state = await self._jobs.get(job_id)
                # Read up to the version just read, no further: what commits next is announced.
                while after_version < state.version:
                    limit = min(_PAGE, state.version - after_version)
                    page = await self._jobs.history(job_id, after_version=after_version, limit=limit)
                    if not page:  # the row is ahead of the log: never seen, but never a hang
                        log.warning("job_events_missing", job_id=str(job_id), after_version=after_version)
                        return
                    for recorded in page:
                        yield recorded
                        after_version = recorded.version
                if state.status in STOPPED_STATUSES and after_version >= state.version:
                    return
                quiet = self.heartbeat_seconds
                while await subscription.next(after_version=after_version, within=quiet) is None:
                    if subscription.closed:
                        return
                    yield None
