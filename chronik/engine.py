"""The engine: blueprints, the database, and the services of one instance, behind one facade.

```python
engine = Engine()                 # DATABASE_URL, or the embedded PostgreSQL
engine.register_blueprint(bp)
await engine.start()              # migrate, listen, run handlers
job = await engine.create_job("orders", {"order_id": 7})
await engine.stop()
```

``engine.run()`` does the same, blocking until SIGINT or SIGTERM. There is no
module-level engine: two engines fit in one process (tests run two at once).
The work is done in ``chronik._runtime``; this class starts it and passes calls on.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, TypeVar
from uuid import UUID

import structlog

from chronik.adapters.postgres import checkpoints, stats
from chronik.adapters.postgres.checkpoints import CheckpointStatus
from chronik.adapters.postgres.database import DATABASE_ERRORS, Database
from chronik.adapters.postgres.embedded import EmbeddedPostgres, start_embedded
from chronik.adapters.postgres.listener import Listener
from chronik.adapters.postgres.migrate import pending_migrations
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.blueprint import Blueprint
from chronik.core.errors import BlueprintError, BlueprintNotFound, QuotaExceeded
from chronik.core.records import JobFilter, LogPosition, RecordedEvent
from chronik.core.state import JobState
from chronik.projections.rebuild import rebuild as rebuild_projection
from chronik.projections.setup import PROJECTORS, projector_named

from ._runtime.archive import Imported, export_events, import_events
from ._runtime.instance import Instance
from ._runtime.jobs import JobService
from ._runtime.limits import RateLimiter, WorkerBudgets
from ._runtime.projector import ProjectionRunner
from ._runtime.scheduler import Scheduler
from ._runtime.setup import prepare_database
from ._runtime.store import JobStore
from ._runtime.watcher import Watcher
from ._runtime.workers import WorkerService
from .settings import Settings

__all__ = ["Engine"]

log = structlog.get_logger("chronik.engine")

T = TypeVar("T")


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
        self.metrics = Metrics()
        self._db: Database | None = None
        self._store: JobStore | None = None
        self._jobs: JobService | None = None
        self._limits: RateLimiter | None = None
        self._instance: Instance | None = None
        self._embedded: EmbeddedPostgres | None = None

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
        return _started(self._db)

    @property
    def store(self) -> JobStore:
        """The job store, the unit of work of every change (after ``start``)."""
        return _started(self._store)

    @property
    def workers(self) -> WorkerService:
        """The worker protocol's service (after ``start`` with its executor)."""
        return _started(self._instance, "with its executor").workers

    @property
    def watcher(self) -> Watcher | None:
        """This instance's watcher (after ``start`` with its executor)."""
        return self._instance.watcher if self._instance is not None else None

    @property
    def projections(self) -> ProjectionRunner | None:
        """This instance's projection runner (after ``start`` with its executor)."""
        return self._instance.projections if self._instance is not None else None

    @property
    def scheduler(self) -> Scheduler | None:
        """This instance's schedules, when ``SCHEDULES_CONFIG_PATH`` names some."""
        return self._instance.scheduler if self._instance is not None else None

    @property
    def listener(self) -> Listener | None:
        """This instance's LISTEN connection (after ``start`` with its executor)."""
        return self._instance.listener if self._instance is not None else None

    async def start(self, *, run_migrations: bool = True, run_executor: bool = True) -> None:
        """Connect (starting the embedded PostgreSQL when no URL is set), migrate, and run handlers."""
        if self._database_url is None:
            self._embedded = await asyncio.to_thread(start_embedded, Path(self.settings.data_dir))
            self._database_url = self._embedded.dsn
        settings = self.settings
        try:
            self._db = await Database.open(self._database_url, max_size=settings.pool_max_size)
            self._store = JobStore(
                self._db, self.blueprints, on_commit=self.metrics.committed, files=settings.s3 is not None
            )
            self._jobs = JobService(
                self._store,
                self.blueprints,
                instance=settings.instance_id,
                webhook_secret=settings.webhook_secret,
            )
            budgets = WorkerBudgets(
                heartbeats=settings.worker_rate_heartbeats,
                polls=settings.worker_rate_polls,
                other=settings.worker_rate_other,
            )
            self._limits = RateLimiter(self._db, self.metrics, budgets)
            if run_migrations:
                async with self._db.connection() as conn:
                    applied = await prepare_database(conn)
                if applied:
                    log.info("migrated", applied=applied)
            if run_executor:
                self._instance = Instance(self._store, self.blueprints, settings, self.metrics)
                await self._instance.start()
        except BaseException:
            # Nothing half-started stays behind, the embedded PostgreSQL least of all.
            await self.stop()
            raise
        log.info("engine_started", instance=settings.instance_id, blueprints=sorted(self.blueprints))

    def begin_shutdown(self) -> None:
        """Stop taking work: answer waiting worker long-polls at once. ``stop`` does the rest."""
        if self._instance is not None:
            self._instance.begin_shutdown()

    async def stop(self) -> None:
        """Let running handlers finish, then disconnect (and stop the embedded server)."""
        if self._instance is not None:
            await self._instance.stop()
            self._instance = None
        if self._db is not None:
            await self._db.close()
            self._db = self._store = self._jobs = self._limits = None
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

    # -- jobs ---------------------------------------------------------------------

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
        try:
            return await _started(self._jobs).create(
                blueprint,
                initial_data,
                actor=actor,
                idempotency_key=idempotency_key,
                timeout_seconds=timeout_seconds,
                webhook_url=webhook_url,
                monthly_quota=monthly_quota,
            )
        except QuotaExceeded:
            self.metrics.rate_limited.labels("quota").inc()
            raise

    async def get_job(self, job_id: UUID) -> JobState:
        """The job's current state; ``JobNotFound`` for an unknown id."""
        return await _started(self._jobs).get(job_id)

    async def get_job_with_progress(self, job_id: UUID) -> tuple[JobState, dict[str, Any] | None]:
        """The job's state and its worker's last progress report; ``JobNotFound`` for an unknown id."""
        return await _started(self._jobs).get_with_progress(job_id)

    async def job_history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The job's events in order (a page after ``after_version``); ``JobNotFound`` for an unknown id."""
        return await _started(self._jobs).history(job_id, after_version=after_version, limit=limit)

    async def list_jobs(
        self, where: JobFilter, *, limit: int = 50, after: tuple[datetime, UUID] | None = None
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
        """Jobs matching ``where``, newest first, ``limit`` a page; pass the returned cursor for the next."""
        return await _started(self._jobs).list_jobs(where, limit=limit, after=after)

    async def job_as_of(
        self, job_id: UUID, *, version: int | None = None, at: datetime | None = None
    ) -> JobState:
        """The job as the fold of its first ``version`` events, or of those that happened by ``at``."""
        return await _started(self._jobs).as_of(job_id, version=version, at=at)

    async def job_webhooks(self, job_id: UUID) -> list[dict[str, Any]]:
        """The job's webhook notifications with every attempt; ``JobNotFound`` for an unknown id."""
        return await _started(self._jobs).webhooks(job_id)

    async def cancel_job(self, job_id: UUID, *, reason: str = "", actor: str = "") -> JobState:
        """Cancel a job that has not ended; ``JobNotCancellable`` when it has.

        Its queued task is withdrawn; a worker running it is told on its next heartbeat.
        """
        return await _started(self._jobs).cancel(job_id, reason=reason, actor=actor)

    async def approve_job(
        self, job_id: UUID, decision: str, *, comment: str = "", actor: str = ""
    ) -> JobState:
        """Record a person's decision on a job waiting for one; the job moves on by its transitions."""
        return await _started(self._jobs).approve(job_id, decision, comment=comment, actor=actor)

    async def retry_job(self, job_id: UUID, *, actor: str = "") -> JobState:
        """Re-run a quarantined job's task with a fresh retry budget; ``JobNotRetryable`` otherwise."""
        return await _started(self._jobs).retry(job_id, actor=actor)

    # -- limits -----------------------------------------------------------------

    async def check_rate(self, key: str, limit: int, per_seconds: float, *, kind: str = "client") -> None:
        """Count a request against ``key``; ``RateLimited`` (429, with Retry-After) past ``limit``."""
        await _started(self._limits).check(key, limit, per_seconds, kind=kind)

    async def check_worker_rate(self, worker_id: str, kind: str) -> None:
        """A worker's budget per minute for ``kind``: ``heartbeats``, ``polls`` or ``other`` (0: none)."""
        await _started(self._limits).check_worker(worker_id, kind)

    # -- operations ---------------------------------------------------------------

    async def readiness(self) -> str | None:
        """Why this instance is not ready to serve (``None`` when it is): the database must answer and
        every migration be applied."""
        if self._db is None:
            return "the engine has not started"
        try:
            async with self._db.connection(wait_seconds=5) as conn:
                pending = await pending_migrations(conn)
        except DATABASE_ERRORS as exc:
            return f"the database does not answer: {exc}"
        if pending:
            return f"migrations not applied: {', '.join(pending)} (run chronik db migrate)"
        return None

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of this instance, with the cluster's queues read now."""
        async with self.database.connection() as conn:
            snapshot = await stats.cluster_snapshot(conn)
        return self.metrics.render(snapshot)

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


def _started(part: T | None, what: str = "") -> T:
    if part is None:
        raise RuntimeError(
            f"the engine has not started {what}; call `await engine.start()`".replace("  ", " ")
        )
    return part
