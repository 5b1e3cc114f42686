"""The engine: blueprints, the database, and the step executor of one instance.

```python
engine = Engine()                 # DATABASE_URL, or the embedded PostgreSQL
engine.register_blueprint(bp)
await engine.start()              # migrate, listen, run handlers
job = await engine.create_job("orders", {"order_id": 7})
await engine.stop()
```

``engine.run()`` does the same, blocking until SIGINT or SIGTERM. There is no
module-level engine: two engines fit in one process (tests run two at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import signal
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from chronik.adapters.config import ScheduleEntry, load_schedules
from chronik.adapters.embedded import EmbeddedPostgres, start_embedded
from chronik.adapters.postgres import checkpoints, stats
from chronik.adapters.postgres.checkpoints import CheckpointStatus
from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.listener import Listener
from chronik.adapters.postgres.migrate import pending_migrations
from chronik.adapters.postgres.queries import QUERIES
from chronik.adapters.s3 import TaskFiles, ensure_bucket
from chronik.adapters.telemetry.metrics import Metrics
from chronik.adapters.telemetry.tracing import new_traceparent
from chronik.core.actions import check_timeout
from chronik.core.blueprint import Blueprint
from chronik.core.decide import decide_approval, decide_cancel, decide_create
from chronik.core.errors import (
    ActionError,
    BlueprintError,
    BlueprintNotFound,
    InvalidInput,
    JobNotFound,
    QuotaExceeded,
    RateLimited,
    VersionConflict,
)
from chronik.core.events import AnyEvent
from chronik.core.evolve import fold
from chronik.core.records import LogPosition, RecordedEvent
from chronik.core.retry import RetryPolicy
from chronik.core.state import JobState
from chronik.core.tasks import decide_retry
from chronik.projections.jobs import JobFilter
from chronik.projections.rebuild import rebuild as rebuild_projection
from chronik.projections.setup import PROJECTORS, prepare_database, projector_named

from ._runtime.archive import Imported, export_events, import_events
from ._runtime.executor import StepExecutor
from ._runtime.janitor import FileJanitor
from ._runtime.projector import ProjectionRunner
from ._runtime.scheduler import Scheduler, check_blueprints
from ._runtime.store import JobStore
from ._runtime.watcher import Watcher
from ._runtime.webhooks import WebhookSender, check_webhook_url
from ._runtime.workers import WorkerService
from .settings import Settings

__all__ = ["STEPS_CHANNEL", "TASKS_CHANNEL", "Engine"]

log = structlog.get_logger("chronik.engine")

STEPS_CHANNEL = "chronik_steps"
"""The NOTIFY channel of the ``job_steps`` queue (see migration 0003)."""

TASKS_CHANNEL = "chronik_tasks"
"""The NOTIFY channel of the ``tasks`` queue (see migration 0004)."""

_MAX_COMMAND_ATTEMPTS = 10


class Engine:
    """One orchestrator instance: register blueprints, start, then create and follow jobs."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        blueprints: Iterable[Blueprint] = (),
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._database_url = database_url or self.settings.database_url
        self.blueprints: dict[str, Blueprint] = {}
        self._endpoints: dict[str, Blueprint] = {}
        for blueprint in blueprints:
            self.register_blueprint(blueprint)
        self._db: Database | None = None
        self._store: JobStore | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._listener: Listener | None = None
        self._stop = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._workers: WorkerService | None = None
        self.watcher: Watcher | None = None
        self.projections: ProjectionRunner | None = None
        self.scheduler: Scheduler | None = None
        self.metrics = Metrics()
        self.schedules: list[ScheduleEntry] = []

    # -- blueprints -------------------------------------------------------------

    def register_blueprint(self, blueprint: Blueprint) -> None:
        """Validate ``blueprint`` and make it available; a ``BlueprintError`` names what is wrong."""
        for warning in blueprint.validate():
            log.warning("blueprint_unchecked", detail=warning)
        if blueprint.name in self.blueprints and self.blueprints[blueprint.name] is not blueprint:
            raise BlueprintError(f"a blueprint named {blueprint.name!r} is already registered")
        other = self._endpoints.get(blueprint.api_endpoint)
        if other is not None and other is not blueprint:
            raise BlueprintError(
                f"blueprint {blueprint.name!r}: api_endpoint {blueprint.api_endpoint!r} is already used by "
                f"blueprint {other.name!r}"
            )
        self.blueprints[blueprint.name] = blueprint
        self._endpoints[blueprint.api_endpoint] = blueprint

    @property
    def endpoints(self) -> Mapping[str, Blueprint]:
        """The registered blueprints by ``api_endpoint`` (``POST /api/v1/jobs/{endpoint}``)."""
        return MappingProxyType(self._endpoints)

    def blueprint_for_endpoint(self, endpoint: str) -> Blueprint:
        """The blueprint whose jobs are created at ``POST /api/v1/jobs/{endpoint}``."""
        blueprint = self._endpoints.get(endpoint)
        if blueprint is None:
            known = ", ".join(sorted(self._endpoints)) or "none"
            raise BlueprintNotFound(f"no blueprint has the api_endpoint {endpoint!r} (known: {known})")
        return blueprint

    # -- lifecycle --------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """The URL of the database in use (after ``start``)."""
        if self._database_url is None:
            raise RuntimeError("the engine has not started")
        return self._database_url

    @property
    def database(self) -> Database:
        """The database (after ``start``)."""
        if self._db is None:
            raise RuntimeError("the engine has not started; call `await engine.start()` first")
        return self._db

    @property
    def store(self) -> JobStore:
        """The job store (after ``start``)."""
        if self._store is None:
            raise RuntimeError("the engine has not started; call `await engine.start()` first")
        return self._store

    async def start(self, *, run_migrations: bool = True, run_executor: bool = True) -> None:
        """Connect (starting the embedded PostgreSQL when no URL is set), migrate, and run handlers."""
        if self._database_url is None:
            self._embedded = await asyncio.to_thread(start_embedded, Path(self.settings.data_dir))
            self._database_url = self._embedded.dsn
        try:
            self._db = await Database.open(self._database_url, max_size=self.settings.pool_max_size)
            self._store = JobStore(
                self._db.pool,
                self.blueprints,
                on_commit=self.metrics.committed,
                files=self.settings.s3 is not None,
            )
            if run_migrations:
                async with self._db.connection() as conn:
                    applied = await prepare_database(conn)
                if applied:
                    log.info("migrated", applied=applied)
            if run_executor:
                await self._start_background(self._store, self._database_url)
        except BaseException:
            # Nothing half-started stays behind, the embedded PostgreSQL least of all.
            await self.stop()
            raise
        log.info("engine_started", instance=self.settings.instance_id, blueprints=sorted(self.blueprints))

    async def _start_background(self, store: JobStore, dsn: str) -> None:
        settings = self.settings
        policy = RetryPolicy(base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)
        self._listener = Listener(dsn, [STEPS_CHANNEL, TASKS_CHANNEL])
        await self._listener.start()
        self._stop.clear()
        s3 = settings.s3
        files = None
        if s3 is not None:
            client = s3.client()
            await asyncio.to_thread(ensure_bucket, client, s3.bucket)
            files = partial(TaskFiles, client, s3.bucket)
            janitor = FileJanitor(store.pool, client, s3.bucket, interval=settings.watcher_interval)
            self._background.append(asyncio.create_task(janitor.run(self._stop), name="chronik-files"))
        executor = StepExecutor(
            store,
            self.blueprints,
            wake=self._listener.signal(STEPS_CHANNEL),
            instance=settings.instance_id,
            max_concurrent=settings.max_concurrent_jobs,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.step_lease_seconds,
            observe_step=lambda blueprint, seconds: self.metrics.step_seconds.labels(blueprint).observe(
                seconds
            ),
            files=files,
        )
        self._workers = WorkerService(
            store,
            tasks_signal=self._listener.signal(TASKS_CHANNEL),
            lease_seconds=settings.task_lease_seconds,
            max_poll_seconds=settings.max_poll_seconds,
            policy=policy,
            instance=settings.instance_id,
        )
        self.watcher = Watcher(
            store, dsn=dsn, interval=settings.watcher_interval, policy=policy, instance=settings.instance_id
        )
        self.projections = ProjectionRunner(store.pool, PROJECTORS, interval=settings.projection_interval)
        if settings.schedules_config_path:
            self.schedules = load_schedules(settings.schedules_config_path)
            check_blueprints(self.schedules, self.blueprints, settings.schedules_config_path)
            self.scheduler = Scheduler(
                store,
                self.blueprints,
                self.schedules,
                tz=ZoneInfo(settings.timezone),
                instance=settings.instance_id,
            )
            self.scheduler.start()
        if settings.webhook_secret:
            sender = WebhookSender(
                store.pool,
                secret=settings.webhook_secret,
                interval=settings.webhook_interval,
                max_attempts=settings.webhook_max_attempts,
                retry_base_seconds=settings.webhook_retry_base_seconds,
                concurrency=settings.webhook_concurrency,
            )
            self._background.append(asyncio.create_task(sender.run(self._stop), name="chronik-webhooks"))
        self._background += [
            asyncio.create_task(executor.run(self._stop), name="chronik-executor"),
            asyncio.create_task(self.watcher.run(self._stop), name="chronik-watcher"),
            asyncio.create_task(self.projections.run(self._stop), name="chronik-projections"),
        ]

    @property
    def workers(self) -> WorkerService:
        """The worker protocol's service (after ``start``)."""
        if self._workers is None:
            raise RuntimeError("the engine has not started with its executor")
        return self._workers

    def begin_shutdown(self) -> None:
        """Stop taking work: answer waiting worker long-polls at once. ``stop`` does the rest."""
        if self._workers is not None:
            self._workers.close()

    async def stop(self) -> None:
        """Let running handlers finish, then disconnect (and stop the embedded server)."""
        self.begin_shutdown()
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        self._stop.set()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._db is not None:
            await self._db.close()
            self._db = None
            self._store = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
            self._database_url = self.settings.database_url
        log.info("engine_stopped", instance=self.settings.instance_id)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def run(self) -> None:
        """Start, run until SIGINT or SIGTERM, then stop gracefully."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            async with self:
                await stop.wait()

        asyncio.run(main())

    # -- commands and queries -----------------------------------------------------

    async def create_job(
        self,
        blueprint: str | Blueprint,
        initial_data: dict[str, Any] | None = None,
        *,
        actor: str = "",
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        webhook_url: str | None = None,
        monthly_quota: int | None = None,
    ) -> JobState:
        """Create a job of ``blueprint`` (a name or the object) and queue its first step.

        With ``idempotency_key``, the same actor and key within 24 hours return the
        job the first call created, and create nothing. ``timeout_seconds`` is how long
        the job may run before it fails with ``JOB_TIMEOUT`` (default: the blueprint's).
        ``webhook_url`` is told when the job ends or is quarantined (``WEBHOOK_SECRET`` signs it).
        ``monthly_quota`` counts the job against ``actor``'s month (``QuotaExceeded`` past it);
        only a job really created counts, not a refused request nor an idempotent repeat.
        """
        name = blueprint.name if isinstance(blueprint, Blueprint) else blueprint
        found = self.blueprints.get(name)
        if found is None:
            raise BlueprintNotFound(f"no blueprint named {name!r} is registered")
        try:
            check_timeout("timeout_seconds", timeout_seconds)
        except ActionError as exc:
            raise InvalidInput(exc.message) from None
        if webhook_url is not None:
            check_webhook_url(webhook_url, secret=self.settings.webhook_secret)
        job_id = uuid4()
        traceparent = new_traceparent(
            "chronik.job.create", {"chronik.job_id": str(job_id), "chronik.blueprint": found.name}
        )
        events = decide_create(
            job_id,
            found,
            dict(initial_data or {}),
            _now(),
            timeout_seconds=timeout_seconds,
            webhook_url=webhook_url,
            traceparent=traceparent,
        )
        if monthly_quota is not None:
            await self.check_quota(actor, monthly_quota)
        try:
            job, created = await self.store.create(
                events, meta=self._meta(actor), client=actor, idempotency_key=idempotency_key
            )
        except BaseException:
            if monthly_quota is not None:
                await self._release_quota(actor)
            raise
        if monthly_quota is not None and not created:
            await self._release_quota(actor)
        return job

    async def get_job(self, job_id: UUID) -> JobState:
        """The job's current state; ``JobNotFound`` for an unknown id."""
        state = await self.store.load(job_id)
        if state is None:
            raise JobNotFound(f"no job has the id {job_id}")
        return state

    async def job_history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The job's events in order (a page after ``after_version``); ``JobNotFound`` for an unknown id."""
        events = await self.store.history(job_id, after_version=after_version, limit=limit)
        if not events and (after_version == 0 or await self.store.load(job_id) is None):
            raise JobNotFound(f"no job has the id {job_id}")
        return events

    async def list_jobs(
        self, where: JobFilter, *, limit: int = 50, after: tuple[datetime, UUID] | None = None
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
        """Jobs matching ``where``, newest first, ``limit`` a page; pass the returned cursor for the next."""
        return await self.store.list_jobs(where, limit=limit, after=after)

    async def job_as_of(
        self, job_id: UUID, *, version: int | None = None, at: datetime | None = None
    ) -> JobState:
        """The job as the fold of its first ``version`` events, or of those that happened by ``at``.

        The same fold as the live state, over a prefix of the log: time travel for audits.
        """
        events = await self.job_history(job_id)
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

    async def cancel_job(self, job_id: UUID, *, reason: str = "", actor: str = "") -> JobState:
        """Cancel a job that has not ended; ``JobNotCancellable`` when it has.

        Its queued task is withdrawn; a worker running it is told on its next heartbeat.
        """
        return await self._command(
            job_id, lambda state: decide_cancel(state, _now(), reason=reason, actor=actor), actor
        )

    async def approve_job(
        self, job_id: UUID, decision: str, *, comment: str = "", actor: str = ""
    ) -> JobState:
        """Record a person's decision on a job waiting for one; the job moves on by its transitions."""
        return await self._command(
            job_id,
            lambda state: decide_approval(state, decision, _now(), comment=comment, actor=actor),
            actor,
        )

    async def retry_job(self, job_id: UUID, *, actor: str = "") -> JobState:
        """Re-run a quarantined job's task with a fresh retry budget; ``JobNotRetryable`` otherwise."""
        return await self._command(job_id, lambda state: decide_retry(state, _now(), actor=actor), actor)

    async def job_webhooks(self, job_id: UUID) -> list[dict[str, Any]]:
        """The job's webhook notifications with every attempt; ``JobNotFound`` for an unknown id."""
        await self.get_job(job_id)
        async with self.store.pool.acquire() as conn:
            rows = await conn.fetch(QUERIES["webhooks_of_job"], job_id)
        return [{**dict(row), "attempt_log": json.loads(row["attempt_log"])} for row in rows]

    async def check_rate(self, key: str, limit: int, per_seconds: float, *, kind: str = "client") -> None:
        """Count a request against ``key``; ``RateLimited`` (429, with Retry-After) past ``limit``."""
        async with self.store.pool.acquire() as conn:
            row = await conn.fetchrow(QUERIES["hit_rate_limit"], key, per_seconds)
        if row["hits"] > limit:
            self.metrics.rate_limited.labels(kind).inc()
            retry = max(0.0, row["retry_after"])
            raise RateLimited(
                f"more than {limit} requests in {per_seconds:g} s for {key}; "
                f"try again in {math.ceil(retry)} s",
                retry_after=retry,
            )

    async def check_worker_rate(self, worker_id: str, kind: str) -> None:
        """A worker's budget per minute for ``kind``: ``heartbeats``, ``polls`` or ``other`` (0: none)."""
        limit = {
            "heartbeats": self.settings.worker_rate_heartbeats,
            "polls": self.settings.worker_rate_polls,
        }.get(kind, self.settings.worker_rate_other)
        if limit:
            await self.check_rate(f"worker:{worker_id}:{kind}", limit, 60.0, kind=f"worker_{kind}")

    async def check_quota(self, client: str, monthly: int) -> None:
        """Count a job against ``client``'s month; ``QuotaExceeded`` (429) past ``monthly``."""
        async with self.store.pool.acquire() as conn:
            hits = await conn.fetchval(QUERIES["hit_monthly_quota"], f"quota:{client}")
        if hits > monthly:
            self.metrics.rate_limited.labels("quota").inc()
            raise QuotaExceeded(
                f"client {client!r} has created its {monthly} jobs for this month (monthly_attempts); "
                "the quota renews on the 1st (UTC)"
            )

    async def _release_quota(self, client: str) -> None:
        async with self.store.pool.acquire() as conn:
            await conn.execute(QUERIES["release_monthly_quota"], f"quota:{client}")

    async def projection_status(self) -> list[CheckpointStatus]:
        """Each asynchronous projection's checkpoint and how far behind the log it is."""
        async with self.database.connection() as conn:
            return await checkpoints.list_with_lag(conn)

    async def rebuild_projections(self, name: str | None = None) -> list[tuple[str, LogPosition]]:
        """Refold one projection (``name``) or all from the log and swap each in; where each got to.

        ``KeyError`` names the known projections when ``name`` is not one of them.
        """
        chosen = [projector_named(name)] if name else list(PROJECTORS)
        reached = []
        async with self.database.connection() as conn:
            for projector in chosen:
                reached.append((projector.name, await rebuild_projection(conn, projector)))
        return reached

    async def export_events(self, out: IO[str], *, since: int = 0) -> int:
        """Write the log after position ``since`` to ``out`` as JSON lines; how many events."""
        return await export_events(self.store, out, since=since)

    async def import_events(self, lines: Iterable[str], *, name: str = "the import") -> Imported:
        """Load an export into this (empty) database and derive every projection, queue and timer."""
        return await import_events(self.store, lines, name=name)

    async def readiness(self) -> str | None:
        """Why this instance is not ready to serve (``None`` when it is): the database must answer and
        every migration be applied."""
        if self._db is None:
            return "the engine has not started"
        try:
            async with self._db.connection(wait_seconds=5) as conn:
                pending = await pending_migrations(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"the database does not answer: {exc}"
        if pending:
            return f"migrations not applied: {', '.join(pending)} (run chronik db migrate)"
        return None

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of this instance, with the cluster's queues read now."""
        async with self.database.connection() as conn:
            snapshot = await stats.cluster_snapshot(conn)
        return self.metrics.render(snapshot)

    async def get_job_with_progress(self, job_id: UUID) -> tuple[JobState, dict[str, Any] | None]:
        """The job's state and its worker's last progress report; ``JobNotFound`` for an unknown id."""
        found = await self.store.load_with_progress(job_id)
        if found is None:
            raise JobNotFound(f"no job has the id {job_id}")
        return found

    async def _command(
        self, job_id: UUID, decide: Callable[[JobState], tuple[AnyEvent, ...]], actor: str
    ) -> JobState:
        for _ in range(_MAX_COMMAND_ATTEMPTS):
            state = await self.get_job(job_id)
            events = decide(state)
            try:
                return await self.store.commit(state, events, meta=self._meta(actor))
            except VersionConflict:
                continue
        raise VersionConflict(f"job {job_id} kept moving; try again")

    def _meta(self, actor: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"instance": self.settings.instance_id}
        if actor:
            meta["actor"] = actor
        return meta


def _now() -> datetime:
    return datetime.now(UTC)
