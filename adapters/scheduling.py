"""APScheduler, the clock of schedules: it computes each schedule's fire times and calls back on each.

Every instance runs the same triggers, so all of them compute the same fire
times (an interval counts from a fixed anchor, not from each instance's start).
What a fire does, and that only one instance acts on it, is the runtime's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import ScheduleEntry

__all__ = ["FireClock", "describe", "next_fire", "trigger_of"]

_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
"""Intervals count from here, so every instance computes the same fire times."""


def trigger_of(entry: ScheduleEntry, tz: ZoneInfo) -> BaseTrigger:
    """The APScheduler trigger of a schedule, in the time zone ``tz``."""
    if entry.interval_seconds is not None:
        return IntervalTrigger(seconds=entry.interval_seconds, start_date=_ANCHOR, timezone=tz)
    if entry.cron is not None:
        return CronTrigger.from_crontab(entry.cron, timezone=tz)
    assert entry.at is not None
    hour, minute = entry.at
    if entry.weekly_days:
        return CronTrigger(day_of_week=",".join(entry.weekly_days), hour=hour, minute=minute, timezone=tz)
    if entry.monthly_dates:
        days = ",".join(str(day) for day in entry.monthly_dates)
        return CronTrigger(day=days, hour=hour, minute=minute, timezone=tz)
    return CronTrigger(hour=hour, minute=minute, timezone=tz)


def describe(entry: ScheduleEntry) -> str:
    """When a schedule fires, as its file says it."""
    at = f"{entry.at[0]:02d}:{entry.at[1]:02d}" if entry.at else ""
    if entry.interval_seconds is not None:
        return f"every {entry.interval_seconds:g} s"
    if entry.cron is not None:
        return f"cron {entry.cron}"
    if entry.weekly_days:
        return f"{','.join(entry.weekly_days)} at {at}"
    if entry.monthly_dates:
        return f"days {','.join(map(str, entry.monthly_dates))} at {at}"
    return f"daily at {at}"


def next_fire(entry: ScheduleEntry, tz: ZoneInfo, now: datetime) -> datetime | None:
    """When ``entry`` fires next after ``now``; ``None`` when never."""
    fire: datetime | None = trigger_of(entry, tz).get_next_fire_time(None, now)
    return fire


class FireClock:
    """Calls ``on_fire(entry, fire_time)`` at each fire of each schedule, in the running event loop."""

    def __init__(
        self,
        entries: Iterable[ScheduleEntry],
        *,
        tz: ZoneInfo,
        on_fire: Callable[[ScheduleEntry, datetime], Coroutine[Any, Any, Any]],
    ) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._tz = tz
        self._on_fire = on_fire
        self._scheduler: AsyncIOScheduler | None = None
        self._firing: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Start firing."""
        scheduler = AsyncIOScheduler(timezone=self._tz)
        for entry in self._entries.values():
            # The job body does nothing: the fire is taken from the submission event, which
            # carries the exact scheduled time that every instance agrees on.
            scheduler.add_job(
                _nothing,
                trigger_of(entry, self._tz),
                id=entry.name,
                coalesce=True,
                misfire_grace_time=30,
                max_instances=1000,
            )
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop firing, and let fires in flight finish."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._firing:
            await asyncio.gather(*self._firing, return_exceptions=True)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        entry = self._entries.get(event.job_id)
        if entry is None:
            return
        for fire_time in event.scheduled_run_times:
            task = asyncio.get_running_loop().create_task(self._on_fire(entry, fire_time))
            self._firing.add(task)
            task.add_done_callback(self._firing.discard)


async def _nothing() -> None:
    return None
