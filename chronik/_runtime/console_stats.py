"""What the console shows beyond single jobs: activity over time, the queue, schedules, analytics.

Reads only, each one client's (``owner``) or everyone's (None, an admin). The overview's counts
read index ranges of the last day (migration 0018), so a page costs the same however much history
the jobs table keeps. Analytics read the ``chronik_analytics`` views, which have no owner column:
they are everyone's, for admins, and run under a statement timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from chronik.adapters.config import ScheduleEntry, load_schedules
from chronik.adapters.postgres import console_stats
from chronik.adapters.postgres.console_stats import Analytics, CodeCount, QueueDepth
from chronik.adapters.postgres.database import Database
from chronik.adapters.scheduling import describe, next_fire
from chronik.core.errors import ConfigError, InvalidInput

__all__ = [
    "ANALYTICS_WINDOWS",
    "Activity",
    "AnalyticsPage",
    "Buckets",
    "ConsoleStats",
    "ScheduleView",
    "Schedules",
    "buckets",
]

ANALYTICS_WINDOWS: Mapping[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "24h": (timedelta(days=1), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
}
"""The analytics page's windows: how far back, and the width of a throughput bar."""

ANALYTICS_TIMEOUT = "10s"
"""The longest one analytics read may take; the page says so rather than load the database."""

_TOP_CODES = 8
_ANALYTICS_ROWS = 50


class Buckets(msgspec.Struct, kw_only=True):
    """Counts per bucket of time: each bucket's start, and one count per bucket for each series."""

    starts: tuple[datetime, ...]
    width: timedelta
    series: dict[str, tuple[int, ...]]


class Activity(msgspec.Struct, kw_only=True):
    """The overview's activity: jobs created and ended over time, and why jobs failed."""

    per_minute: Buckets
    """The last hour, a bucket a minute (series ``created``, ``ended``)."""
    per_hour: Buckets
    """The last day, a bucket an hour (series ``created``, ``ended``)."""
    failure_codes: list[CodeCount]
    """The most frequent error codes of the jobs that failed in the last day."""


class ScheduleView(msgspec.Struct, kw_only=True):
    """One schedule: what it starts and when, its next fire, and its last fire and job."""

    name: str
    blueprint: str
    trigger: str
    next_fire: datetime | None
    last_fire: datetime | None
    last_job_id: UUID | None
    """The last fire's job, when the viewer may see it (None otherwise, or when it never fired)."""
    last_job_status: str | None


class Schedules(msgspec.Struct, kw_only=True):
    """The instance's schedules (``SCHEDULES_CONFIG_PATH``), or why they could not be read."""

    configured: bool
    timezone: str
    entries: list[ScheduleView]
    error: str | None = None


class AnalyticsPage(msgspec.Struct, kw_only=True):
    """The analytics of one window; ``timed_out`` when a read took longer than ``ANALYTICS_TIMEOUT``."""

    window: str
    since: datetime
    analytics: Analytics | None
    throughput: Buckets | None
    timed_out: bool = False


def buckets(
    since: datetime, width: timedelta, count: int, series: Mapping[str, Mapping[datetime, int]]
) -> Buckets:
    """``count`` buckets of ``width`` from ``since``, each series' counts filled in (0 where none)."""
    starts = tuple(since + width * n for n in range(count))
    return Buckets(
        starts=starts,
        width=width,
        series={name: tuple(_sum_into(starts, width, counts)) for name, counts in series.items()},
    )


def _sum_into(starts: tuple[datetime, ...], width: timedelta, counts: Mapping[datetime, int]) -> list[int]:
    totals = [0] * len(starts)
    if not starts:
        return totals
    for moment, count in counts.items():
        index = int((moment - starts[0]) // width)
        if 0 <= index < len(totals):
            totals[index] += count
    return totals


def _floor(moment: datetime, width: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + width * ((moment - epoch) // width)


class ConsoleStats:
    """The console's reads over one database; ``schedules_path`` and ``tz`` as the scheduler has them."""

    def __init__(
        self,
        database: Database,
        *,
        schedules_path: str | None,
        tz: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._schedules_path = schedules_path
        self._tz = tz
        self._clock = clock
        self._entries: list[ScheduleEntry] | None = None

    async def activity(self, *, owner: str | None = None) -> Activity:
        """Jobs created and ended per minute (last hour) and per hour (last day), and the error codes
        of the jobs that failed in the last day; ``owner``'s, or everyone's for None."""
        now = self._clock()
        minute, hour = timedelta(minutes=1), timedelta(hours=1)
        first_hour = _floor(now, hour) - 23 * hour
        first_minute = _floor(now, minute) - 59 * minute
        async with self._database.connection() as conn:
            created, ended = await console_stats.jobs_per_minute(conn, first_hour, owner)
            codes = await console_stats.failure_codes(conn, first_hour, owner, limit=_TOP_CODES)
        series = {"created": created, "ended": ended}
        return Activity(
            per_minute=buckets(first_minute, minute, 60, series),
            per_hour=buckets(first_hour, hour, 24, series),
            failure_codes=codes,
        )

    async def queue(self, *, owner: str | None = None) -> QueueDepth:
        """Task attempts of ``owner``'s jobs (None: everyone's) in the queue, and the longest wait."""
        async with self._database.connection() as conn:
            return await console_stats.queue_depth(conn, owner)

    async def schedules(self, *, owner: str | None = None) -> Schedules:
        """Each schedule with its trigger, next fire and last fire; its last job only if ``owner`` may
        see it (a schedule's jobs belong to no client, so only admins do)."""
        if not self._schedules_path:
            return Schedules(configured=False, timezone=self._tz, entries=[])
        try:
            entries = self._load_entries()
        except ConfigError as exc:
            return Schedules(configured=True, timezone=self._tz, entries=[], error=exc.message)
        async with self._database.connection() as conn:
            last = await console_stats.last_schedule_runs(conn, [entry.name for entry in entries])
        now, tz = self._clock(), ZoneInfo(self._tz)
        views = []
        for entry in entries:
            run = last.get(entry.name)
            visible = run is not None and run.client is not None and (owner is None or run.client == owner)
            views.append(
                ScheduleView(
                    name=entry.name,
                    blueprint=entry.blueprint,
                    trigger=describe(entry),
                    next_fire=next_fire(entry, tz, now),
                    last_fire=run.fire_time if run else None,
                    last_job_id=run.job_id if run and visible else None,
                    last_job_status=run.status if run and visible else None,
                )
            )
        return Schedules(configured=True, timezone=self._tz, entries=views)

    def _load_entries(self) -> list[ScheduleEntry]:
        # Read once: the scheduler read the same file at start and fires what it read then.
        if self._entries is None:
            assert self._schedules_path is not None
            self._entries = sorted(load_schedules(Path(self._schedules_path)), key=lambda entry: entry.name)
        return self._entries

    async def analytics(self, window: str) -> AnalyticsPage:
        """Time per state, error rate per task type and jobs ended over time, over ``window`` (a key of
        ``ANALYTICS_WINDOWS``); everyone's: the views know no owner."""
        if window not in ANALYTICS_WINDOWS:
            raise InvalidInput(f"window must be one of {', '.join(ANALYTICS_WINDOWS)}, got {window!r}")
        span, width = ANALYTICS_WINDOWS[window]
        count = int(span / width)
        since = _floor(self._clock(), width) - (count - 1) * width
        async with self._database.transaction(readonly=True) as conn:
            found = await console_stats.analytics(
                conn,
                since,
                bucket_seconds=width.total_seconds(),
                limit=_ANALYTICS_ROWS,
                statement_timeout=ANALYTICS_TIMEOUT,
            )
        if found is None:
            return AnalyticsPage(window=window, since=since, analytics=None, throughput=None, timed_out=True)
        ended = {
            name: {row.bucket: getattr(row, name) for row in found.throughput}
            for name in ("finished", "failed", "cancelled")
        }
        return AnalyticsPage(
            window=window, since=since, analytics=found, throughput=buckets(since, width, count, ended)
        )
