"""Schedules: APScheduler fires them in every instance; PostgreSQL lets one fire start one job.

Each instance runs the same APScheduler triggers, so all of them compute the same
fire times (an interval counts from a fixed anchor, not from each instance's
start). Every instance tries each fire; the insert into ``schedule_runs`` with
its unique (name, fire time) key and the job's creation are one transaction, so
exactly one instance starts the job. No cron and no leader election are needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import structlog
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from chronik.adapters.config import ScheduleEntry
from chronik.adapters.postgres.queries import QUERIES
from chronik.core.blueprint import Blueprint
from chronik.core.decide import decide_create
from chronik.core.errors import ConfigError

from .store import JobStore

__all__ = ["Scheduler", "check_blueprints", "describe", "trigger_of"]

log = structlog.get_logger("chronik.schedules")

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


def check_blueprints(entries: list[ScheduleEntry], blueprints: Mapping[str, Blueprint], path: str) -> None:
    """Refuse a schedule of a blueprint this instance does not have, naming the entry and field."""
    for entry in entries:
        if entry.blueprint not in blueprints:
            raise ConfigError(
                f"{path}: [{entry.name}]: field 'blueprint' names {entry.blueprint!r}, which is not "
                f"registered (known: {', '.join(sorted(blueprints)) or 'none'})"
            )
        try:
            trigger_of(entry, ZoneInfo("UTC"))
        except ValueError as exc:
            raise ConfigError(f"{path}: [{entry.name}]: {exc}") from None


class Scheduler:
    """Fires this instance's schedules; the database keeps each fire to one job."""

    def __init__(
        self,
        store: JobStore,
        blueprints: Mapping[str, Blueprint],
        entries: list[ScheduleEntry],
        *,
        tz: ZoneInfo,
        instance: str,
    ) -> None:
        self._store = store
        self._blueprints = blueprints
        self._entries = {entry.name: entry for entry in entries}
        self._tz = tz
        self._instance = instance
        self._scheduler: AsyncIOScheduler | None = None
        self._firing: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Start firing (in the running event loop)."""
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
        log.info("schedules_started", schedules=sorted(self._entries), tz=str(self._tz))

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
            task = asyncio.get_running_loop().create_task(self.fire(entry, fire_time))
            self._firing.add(task)
            task.add_done_callback(self._firing.discard)

    async def fire(self, entry: ScheduleEntry, fire_time: datetime) -> UUID | None:
        """Start the job of one fire, unless another instance did; the job's id when this one did."""
        blueprint = self._blueprints[entry.blueprint]
        job_id = uuid4()
        events = decide_create(job_id, blueprint, dict(entry.input_data), datetime.now(UTC))
        meta = {
            "instance": self._instance,
            "actor": f"schedule:{entry.name}",
            "fire_time": fire_time.isoformat(),
        }
        try:
            async with self._store.pool.acquire() as conn, conn.transaction():
                taken = await conn.fetchval(
                    QUERIES["claim_schedule_run"], entry.name, fire_time, job_id, self._instance
                )
                if taken is None:
                    return None
                await self._store.commit(None, events, meta=meta, conn=conn, savepoint=False)
        except Exception:
            log.exception("schedule_fire_failed", schedule=entry.name, fire_time=fire_time.isoformat())
            return None
        log.info("schedule_fired", schedule=entry.name, fire_time=fire_time.isoformat(), job_id=str(job_id))
        return job_id


async def _nothing() -> None:
    return None
