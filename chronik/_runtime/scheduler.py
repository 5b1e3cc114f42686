"""Schedules: the clock fires them in every instance; PostgreSQL lets one fire start one job.

Every instance tries each fire; the insert into ``schedule_runs`` with its unique
(name, fire time) key and the job's creation are one transaction, so exactly one
instance starts the job. No cron and no leader election are needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog

from chronik.adapters.config import ScheduleEntry
from chronik.adapters.postgres import schedules
from chronik.adapters.scheduling import FireClock, trigger_of
from chronik.core import ids
from chronik.core.blueprint import Blueprint
from chronik.core.decide import decide_create
from chronik.core.errors import ConfigError, InvalidInitialData

from .input_check import check_initial_data
from .store import JobStore

__all__ = ["Scheduler", "check_blueprints"]

log = structlog.get_logger("chronik.schedules")


def check_blueprints(entries: list[ScheduleEntry], blueprints: Mapping[str, Blueprint], path: str) -> None:
    """Refuse a schedule of a blueprint this instance does not have, naming the entry and field.

    Its ``input_data`` must fit the blueprint's ``input_schema`` here, once: a fire creates its job
    from that same data, so no fire can then fail on it.
    """
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
        try:
            check_initial_data(blueprints[entry.blueprint], entry.input_data)
        except InvalidInitialData as exc:
            raise ConfigError(f"{path}: [{entry.name}]: field 'input_data': {exc.message}") from None


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
        max_transitions: int = 100,
    ) -> None:
        self._max_transitions = max_transitions
        self._store = store
        self._blueprints = blueprints
        self._names = sorted(entry.name for entry in entries)
        self._tz = tz
        self._instance = instance
        self._clock = FireClock(entries, tz=tz, on_fire=self.fire)

    def start(self) -> None:
        """Start firing (in the running event loop)."""
        self._clock.start()
        log.info("schedules_started", schedules=self._names, tz=str(self._tz))

    async def stop(self) -> None:
        """Stop firing, and let fires in flight finish."""
        await self._clock.stop()

    async def fire(self, entry: ScheduleEntry, fire_time: datetime) -> UUID | None:
        """Start the job of one fire, unless another instance did; the job's id when this one did."""
        blueprint = self._blueprints[entry.blueprint]
        job_id = ids.new_job_id()
        events = decide_create(
            job_id,
            blueprint,
            dict(entry.input_data),
            datetime.now(UTC),
            max_transitions=self._max_transitions,
        )
        meta = {
            "instance": self._instance,
            "actor": f"schedule:{entry.name}",
            "fire_time": fire_time.isoformat(),
        }
        try:
            async with self._store.database.transaction() as conn:
                if not await schedules.claim_run(
                    conn, entry.name, fire_time, job_id=job_id, instance=self._instance
                ):
                    return None
                await self._store.commit(
                    None, events, meta=meta, conn=conn, savepoint=False, blueprint=blueprint
                )
        except Exception:
            log.exception("schedule_fire_failed", schedule=entry.name, fire_time=fire_time.isoformat())
            return None
        log.info("schedule_fired", schedule=entry.name, fire_time=fire_time.isoformat(), job_id=str(job_id))
        return job_id
