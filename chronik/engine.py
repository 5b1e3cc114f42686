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
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import structlog

from chronik.adapters.postgres.checkpoints import CheckpointStatus
from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.embedded import EmbeddedPostgres, start_embedded
from chronik.adapters.postgres.workers import LiveWorker
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.blueprint import Blueprint
from chronik.core.divergence import Divergence
from chronik.core.errors import QuotaExceeded
from chronik.core.records import JobFilter, LogPosition, RecordedEvent
from chronik.core.state import JobState

from ._runtime.archive import Imported
from ._runtime.batches import BatchAction, BatchOutcome, BatchPreview
from ._runtime.console_sessions import ConsoleSessions
from ._runtime.console_stats import ConsoleStats
from ._runtime.files import JobFiles
from ._runtime.instance import Instance
from ._runtime.job_page import JobPageReads
from ._runtime.overview import Dashboard
from ._runtime.registry import BlueprintRegistry
from ._runtime.retention import Archiver
from ._runtime.setup import prepare_database
from ._runtime.store import JobStore
from ._runtime.workers import WorkerService
from .settings import Settings

__all__ = ["Engine"]

log = structlog.get_logger("chronik.engine")


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
        self.blueprints = BlueprintRegistry()
        """The registered blueprints, by name and by ``api_endpoint`` (``POST /api/v1/jobs/{endpoint}``)."""
        for blueprint in blueprints:
            self.register_blueprint(blueprint)
        self.metrics = Metrics()
        self._db: Database | None = None
        self._instance: Instance | None = None
        self._embedded: EmbeddedPostgres | None = None

    def register_blueprint(self, blueprint: Blueprint) -> None:
        """Validate ``blueprint`` and make it available; a ``BlueprintError`` names what is wrong."""
        self.blueprints.register(blueprint)

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
    def instance(self) -> Instance:
        """The services of this instance (after ``start``); see ``chronik._runtime.instance``."""
        if self._instance is None:
            raise RuntimeError("the engine has not started; call `await engine.start()` first")
        return self._instance

    @property
    def store(self) -> JobStore:
        """The job store, the unit of work of every change (after ``start``)."""
        return self.instance.store

    @property
    def workers(self) -> WorkerService:
        """The worker protocol's service (after ``start`` with its executor)."""
        if not self.instance.running:
            raise RuntimeError("the engine has not started with its executor")
        return self.instance.workers

    @property
    def console_sessions(self) -> ConsoleSessions:
        """The console's sign-ins (after ``start``)."""
        return self.instance.console_sessions

    @property
    def archiver(self) -> Archiver:
        """The log's partitions, the retention plan and the archive (after ``start``)."""
        return self.instance.archiver

    @property
    def console_stats(self) -> ConsoleStats:
        """The console's reads beyond single jobs: activity, queue, schedules, analytics (after ``start``)."""
        return self.instance.console_stats

    async def start(self, *, run_migrations: bool = True, run_executor: bool = True) -> None:
        """Connect (starting the embedded PostgreSQL when no URL is set), migrate, and run handlers."""
        if self._database_url is None:
            self._embedded = await asyncio.to_thread(start_embedded, Path(self.settings.data_dir))
            self._database_url = self._embedded.dsn
        try:
            self._db = await Database.open(
                self._database_url,
                max_size=self.settings.pool_max_size,
                acquire_timeout=self.settings.pool_timeout,
                lock_timeout=self.settings.lock_timeout,
                statement_timeout=self.settings.statement_timeout,
            )
            if run_migrations:
                async with self._db.connection() as conn:
                    applied = await prepare_database(conn)
                if applied:
                    log.info("migrated", applied=applied)
            self._instance = Instance(self._db, self.blueprints, self.settings, self.metrics)
            if run_executor:
                await self._instance.start()
        except BaseException:
            # Nothing half-started stays behind, the embedded PostgreSQL least of all.
            await self.stop()
            raise
        log.info("engine_started", instance=self.settings.instance_id, blueprints=sorted(self.blueprints))

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
            self._db = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
            self._database_url = self.settings.database_url
        log.info("engine_stopped", instance=self.settings.instance_id)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
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
    # ``owner``: the client asking. Another client's job is ``JobNotFound``; None (an admin, or
    # this program) sees every job.

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
        metadata: dict[str, Any] | None = None,
        max_transitions: int | None = None,
        security: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        dispatch_timeout: float | None = None,
    ) -> JobState:
        """Create a job of ``blueprint`` (a name or the object), owned by ``actor``; queue its first step.

        With ``idempotency_key``, the same actor and key within 24 hours return the job the first
        call created, and create nothing. ``timeout_seconds`` is how long the job may run before it
        fails with ``JOB_TIMEOUT`` (default: the blueprint's). ``webhook_url`` is told when the job
        ends or is quarantined (``WEBHOOK_SECRET`` signs it). ``monthly_quota`` counts the job against
        ``actor``'s month (``QuotaExceeded`` past it): only a job really created, no idempotent repeat.
        ``max_transitions`` caps the states it may enter (default ``MAX_TRANSITIONS_PER_JOB``);
        ``metadata``, ``security``, ``policy`` and ``dispatch_timeout`` are Avtomatika's (docs/api.md).
        """
        try:
            return await self.instance.jobs.create(
                blueprint,
                initial_data,
                actor=actor,
                idempotency_key=idempotency_key,
                timeout_seconds=timeout_seconds,
                webhook_url=webhook_url,
                monthly_quota=monthly_quota,
                metadata=metadata,
                max_transitions=max_transitions,
                security=security,
                policy=policy,
                dispatch_timeout=dispatch_timeout,
            )
        except QuotaExceeded:
            self.metrics.rate_limited.labels("quota").inc()
            raise

    async def get_job(self, job_id: UUID, *, owner: str | None = None) -> JobState:
        """The job's current state; ``JobNotFound`` for an unknown id."""
        return await self.instance.jobs.get(job_id, owner=owner)

    async def get_job_with_progress(
        self, job_id: UUID, *, owner: str | None = None
    ) -> tuple[JobState, dict[str, Any] | None]:
        """The job's state and its worker's last progress report; ``JobNotFound`` for an unknown id."""
        return await self.instance.jobs.get_with_progress(job_id, owner=owner)

    async def wait_for_job(
        self, job_id: UUID, seconds: float, *, owner: str | None = None
    ) -> tuple[JobState, dict[str, Any] | None]:
        """``get_job_with_progress`` once the job ended or was quarantined, or after ``seconds``."""
        if owner is not None:
            await self.instance.jobs.get(job_id, owner=owner)
        return await self.instance.waits.wait(job_id, seconds)

    async def job_events(
        self, job_id: UUID, after: int = 0, *, owner: str | None = None
    ) -> AsyncIterator[RecordedEvent | None] | None:
        """The job's events after version ``after`` as they commit, until it stops (``JobWaits.events``)."""
        if owner is not None:
            await self.instance.jobs.get(job_id, owner=owner)
        return await self.instance.waits.events(job_id, after)

    async def job_history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None, owner: str | None = None
    ) -> list[RecordedEvent]:
        """The job's events in order (a page after ``after_version``); ``JobNotFound`` for an unknown id."""
        return await self.instance.jobs.history(job_id, after_version=after_version, limit=limit, owner=owner)

    async def job_history_page(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None, owner: str | None = None
    ) -> tuple[list[RecordedEvent], bool]:
        """The job's events, and whether they came from its archive (its partition left the database)."""
        return await self.instance.jobs.history_page(
            job_id, after_version=after_version, limit=limit, owner=owner
        )

    async def list_jobs(
        self,
        where: JobFilter,
        *,
        limit: int = 50,
        after: tuple[datetime, UUID] | None = None,
        owner: str | None = None,
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
        """Jobs matching ``where``, newest first, ``limit`` a page; pass the returned cursor for the next."""
        return await self.instance.jobs.list_jobs(where, limit=limit, after=after, owner=owner)

    async def job_as_of(
        self,
        job_id: UUID,
        *,
        version: int | None = None,
        at: datetime | None = None,
        owner: str | None = None,
    ) -> JobState:
        """The job as the fold of its first ``version`` events, or of those that happened by ``at``."""
        return await self.instance.jobs.as_of(job_id, version=version, at=at, owner=owner)

    async def job_webhooks(self, job_id: UUID, *, owner: str | None = None) -> list[dict[str, Any]]:
        """The job's webhook notifications with every attempt; ``JobNotFound`` for an unknown id."""
        return await self.instance.jobs.webhooks(job_id, owner=owner)

    async def cancel_job(
        self, job_id: UUID, *, reason: str = "", actor: str = "", owner: str | None = None
    ) -> JobState:
        """Cancel a job that has not ended (its task is withdrawn); ``JobNotCancellable`` when it has."""
        return await self.instance.jobs.cancel(job_id, reason=reason, actor=actor, owner=owner)

    async def approve_job(
        self,
        job_id: UUID,
        decision: str,
        *,
        comment: str = "",
        actor: str = "",
        owner: str | None = None,
        token: str | None = None,
    ) -> JobState:
        """Record a person's decision on a job waiting for one; ``token``: the public link's secret."""
        return await self.instance.jobs.approve(
            job_id, decision, comment=comment, actor=actor, owner=owner, token=token
        )

    async def retry_job(self, job_id: UUID, *, actor: str = "", owner: str | None = None) -> JobState:
        """Re-run a quarantined job's task with a fresh retry budget; ``JobNotRetryable`` otherwise."""
        return await self.instance.jobs.retry(job_id, actor=actor, owner=owner)

    async def fork_job(
        self,
        job_id: UUID,
        from_version: int,
        *,
        actor: str = "",
        owner: str | None = None,
        webhook_url: str | None = None,
        monthly_quota: int | None = None,
    ) -> JobState:
        """Start a new job from the job's state as of ``from_version`` (1 to its version); the new job.

        It runs the state the job was in then, with its data then, and belongs to the same client;
        the job's history records the fork. ``monthly_quota`` counts it against ``actor``'s month.
        """
        return await self.instance.jobs.fork(
            job_id,
            from_version,
            actor=actor,
            owner=owner,
            webhook_url=webhook_url,
            monthly_quota=monthly_quota,
        )

    async def count_jobs(self, where: JobFilter, *, owner: str | None = None) -> int:
        """How many jobs match ``where`` (of ``owner``'s, when given)."""
        return await self.instance.jobs.count(where, owner=owner)

    async def preview_batch(
        self, action: BatchAction, where: JobFilter, *, owner: str | None = None
    ) -> BatchPreview:
        """How many of the jobs ``where`` finds ``action`` (cancel, retry) would act on now; the first ids."""
        return await self.instance.batches.preview(action, where, owner=owner)

    async def run_batch(
        self,
        action: BatchAction,
        where: JobFilter,
        *,
        actor: str = "",
        owner: str | None = None,
        reason: str = "",
    ) -> BatchOutcome:
        """Cancel or retry up to ``BATCH_CAP`` of the jobs ``where`` finds, each as its own command."""
        return await self.instance.batches.run(action, where, actor=actor, owner=owner, reason=reason)

    # -- limits and operations ------------------------------------------------------

    async def check_rate(self, key: str, limit: int, per_seconds: float, *, kind: str = "client") -> None:
        """Count a request against ``key``; ``RateLimited`` (429, with Retry-After) past ``limit``."""
        await self.instance.limits.check(key, limit, per_seconds, kind=kind)

    async def check_worker_rate(self, worker_id: str, kind: str) -> None:
        """Count one wasted worker request of ``kind`` (an empty poll, a refusal, ...) against its budget."""
        await self.instance.limits.check_worker(worker_id, kind)

    async def readiness(self) -> str | None:
        """Why this instance is not ready to serve (``None`` when it is)."""
        if self._instance is None:
            return "the engine has not started"
        return await self._instance.operations.readiness()

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of this instance, with the cluster's queues read now."""
        return await self.instance.operations.metrics_text()

    async def projection_status(self) -> list[CheckpointStatus]:
        """Each asynchronous projection's checkpoint and how far behind the log it is."""
        return await self.instance.operations.projection_status()

    async def rebuild_projections(self, name: str | None = None) -> list[tuple[str, LogPosition]]:
        """Refold one projection (``name``; ``KeyError`` if unknown) or all, and swap each in."""
        return await self.instance.operations.rebuild_projections(name)

    async def export_events(self, out: IO[str], *, since: int = 0) -> int:
        """Write the log after position ``since`` to ``out`` as JSON lines; how many events."""
        return await self.instance.operations.export_events(out, since=since)

    async def import_events(
        self, lines: Iterable[str], *, name: str = "the import", restore: bool = False
    ) -> Imported:
        """Load an export into this (empty) database, or restore an archive file into it (``restore``),
        and derive every projection, queue and timer."""
        return await self.instance.operations.import_events(
            lines, name=name, restore=restore, partition_days=self.settings.partition_days
        )

    # -- workers, dashboard, files ----------------------------------------------------

    async def live_workers(self) -> list[LiveWorker]:
        """The workers that beat within the task lease (``TASK_LEASE_SECONDS``), by id."""
        return await self.instance.overview.live_workers()

    async def dashboard(self, *, owner: str | None = None) -> Dashboard:
        """Live workers, and ``owner``'s jobs per status with their queued task attempts."""
        return await self.instance.overview.dashboard(owner=owner)

    @property
    def files(self) -> JobFiles:
        """The jobs' files on S3: presigned links, streamed uploads (after ``start``)."""
        return self.instance.files

    # -- the console's job page -------------------------------------------------------

    @property
    def job_page(self) -> JobPageReads:
        """The console job page's reads of one job: filtered pages, moves, attempts (after ``start``)."""
        return JobPageReads(self.instance.jobs, self.database, self.blueprints)

    async def replay_job(self, job_id: UUID, *, owner: str | None = None) -> tuple[int, list[Divergence]]:
        """Would today's registered handlers decide as the job's history did (``chronik jobs replay``)?

        How many handler runs the history has, and each one decided differently now. Handlers run
        for real; ``BlueprintNotFound`` when the job's blueprint is not registered here.
        """
        return await self.job_page.replay(job_id, owner=owner)
