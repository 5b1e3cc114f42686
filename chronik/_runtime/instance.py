"""The services of one instance, wired from its settings over its database.

An instance serves jobs (``JobService``), rate limits and operator commands;
started with its executor, it also listens on one connection for the queues'
notifications, runs the step executor, serves the worker protocol, and takes its
turn at the cluster's housekeeping: the watcher (one instance at a time), the
projections, webhooks, S3 clean-ups and schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from chronik.adapters.archive_store import open_archive
from chronik.adapters.config import load_schedules
from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.listener import Listener
from chronik.adapters.s3 import TaskFiles, ensure_bucket
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.blueprint import Blueprint
from chronik.core.retry import RetryPolicy
from chronik.projections.setup import PROJECTORS
from chronik.settings import Settings

from .archived import ArchivedHistory
from .batches import JobBatches
from .console_sessions import ConsoleSessions
from .console_stats import ConsoleStats
from .executor import StepExecutor
from .files import JobFiles
from .janitor import FileJanitor
from .jobs import JobService
from .limits import RateLimiter, WorkerBudgets
from .operations import Operations
from .overview import Overview
from .projector import ProjectionRunner
from .retention import Archiver, RetentionPolicy
from .scheduler import Scheduler, check_blueprints
from .store import JobStore
from .watch import JobWaits, JobWatch
from .watcher import Watcher
from .webhooks import WebhookSender
from .workers import WorkerService

__all__ = ["JOBS_CHANNEL", "STEPS_CHANNEL", "TASKS_CHANNEL", "Instance"]

STEPS_CHANNEL = "chronik_steps"
"""The NOTIFY channel of the ``job_steps`` queue (see migration 0003)."""

TASKS_CHANNEL = "chronik_tasks"
"""The NOTIFY channel of the ``tasks`` queue (see migration 0004)."""

JOBS_CHANNEL = "chronik_jobs"
"""The NOTIFY channel of every change of a job, for waiting clients (see migration 0013)."""


class Instance:
    """Builds the services of one instance; ``start`` runs its background ones, ``stop`` ends them."""

    def __init__(
        self, database: Database, blueprints: Mapping[str, Blueprint], settings: Settings, metrics: Metrics
    ) -> None:
        self._blueprints = blueprints
        self._settings = settings
        self._metrics = metrics
        self._stop = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self.running = False
        """Whether the background services run (``start`` was called, ``stop`` not yet)."""
        self.store = store = JobStore(
            database, blueprints, on_commit=metrics.committed, files=settings.s3 is not None
        )
        archive_store = open_archive(settings.archive_url, settings.s3) if settings.archive_url else None
        self.archived = ArchivedHistory(database, archive_store)
        """The history of jobs whose partition of the log was archived, read from the archive."""
        self.jobs = JobService(
            store,
            blueprints,
            instance=settings.instance_id,
            webhook_secret=settings.webhook_secret,
            max_transitions=settings.max_transitions,
            archive=self.archived,
        )
        self.archiver = Archiver(
            database,
            store=archive_store,
            policy=RetentionPolicy.of(
                blueprints, default_days=settings.retention_days, failed_days=settings.retention_failed_days
            ),
            partition_days=settings.partition_days,
            interval=settings.archive_interval,
        )
        """Partitions of the log ahead of time, and the archive of those past retention."""

        self.batches = JobBatches(self.jobs, store)
        """Cancel or retry every job a filter finds (the API's and the console's batch actions)."""
        budgets = WorkerBudgets(
            heartbeats=settings.worker_rate_heartbeats,
            polls=settings.worker_rate_polls,
            other=settings.worker_rate_other,
        )
        self.limits = RateLimiter(database, metrics, budgets)
        self.operations = Operations(store, metrics)
        self.listener = Listener(store.database.dsn, [STEPS_CHANNEL, TASKS_CHANNEL, JOBS_CHANNEL])
        self.watch = JobWatch()
        """The hub of clients waiting on jobs, fed by the listener (when it runs)."""
        self.listener.subscribe(
            JOBS_CHANNEL, on_notify=self.watch.notified, on_reconnect=self.watch.reconnected
        )
        self.waits = JobWaits(self.jobs, self.watch)
        self.overview = Overview(database, liveness_seconds=settings.task_lease_seconds)
        """Live workers and job counts; a worker is live while its leases would be (the task lease)."""
        self.files = JobFiles(self.jobs, settings.s3)
        """Clients' links to and uploads into a job's S3 folder (``FilesNotConfigured`` without S3)."""
        self.console_sessions = ConsoleSessions(database)
        self.console_stats = ConsoleStats(
            database, schedules_path=settings.schedules_config_path, tz=settings.timezone
        )
        """The console's reads: activity over time, the queue, schedules, analytics."""
        policy = RetryPolicy(base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)
        self.workers = WorkerService(
            store,
            tasks_signal=self.listener.signal(TASKS_CHANNEL),
            lease_seconds=settings.task_lease_seconds,
            max_poll_seconds=settings.max_poll_seconds,
            policy=policy,
            instance=settings.instance_id,
        )
        # Idle, the watcher and the projections back off to the safety-net poll; notifications
        # bring them back to their pace: the queues' for the watcher, every job's change (a
        # step run in-process notifies no queue) for the projections.
        queues = (self.listener.signal(STEPS_CHANNEL), self.listener.signal(TASKS_CHANNEL))
        self.watcher = Watcher(
            store,
            interval=settings.watcher_interval,
            idle_interval=settings.poll_interval,
            wake=queues,
            policy=policy,
            instance=settings.instance_id,
        )
        self.projections = ProjectionRunner(
            store.database,
            PROJECTORS,
            interval=settings.projection_interval,
            idle_interval=settings.poll_interval,
            wake=(*queues, self.listener.signal(JOBS_CHANNEL)),
        )
        self.scheduler: Scheduler | None = None

    async def start(self) -> None:
        """Listen, then start every service this instance's settings ask for."""
        settings, store = self._settings, self.store
        self.running = True
        # Appends need the partition of today's jobs: made (if another instance did not) before any work.
        await self.archiver.ensure_partitions()
        await self.listener.start()
        self._stop.clear()
        files = None
        if settings.s3 is not None:
            client = settings.s3.client()
            await asyncio.to_thread(ensure_bucket, client, settings.s3.bucket)
            files = partial(TaskFiles, client, settings.s3.bucket)
            janitor = FileJanitor(store.database, client, settings.s3.bucket, interval=settings.poll_interval)
            self._spawn("files", janitor.run(self._stop))
        if settings.schedules_config_path:
            entries = load_schedules(settings.schedules_config_path)
            check_blueprints(entries, self._blueprints, settings.schedules_config_path)
            self.scheduler = Scheduler(
                store,
                self._blueprints,
                entries,
                tz=ZoneInfo(settings.timezone),
                instance=settings.instance_id,
                max_transitions=settings.max_transitions,
            )
            self.scheduler.start()
        if settings.webhook_secret:
            sender = WebhookSender(
                store.database,
                secret=settings.webhook_secret,
                interval=settings.webhook_interval,
                max_attempts=settings.webhook_max_attempts,
                retry_base_seconds=settings.webhook_retry_base_seconds,
                concurrency=settings.webhook_concurrency,
            )
            self._spawn("webhooks", sender.run(self._stop))
        executor = StepExecutor(
            store,
            self._blueprints,
            wake=self.listener.signal(STEPS_CHANNEL),
            instance=settings.instance_id,
            max_concurrent=settings.max_concurrent_jobs,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.step_lease_seconds,
            observe_step=lambda blueprint, seconds: self._metrics.step_seconds.labels(blueprint).observe(
                seconds
            ),
            files=files,
        )
        store.run_steps_here(executor)
        self._spawn("executor", executor.run(self._stop))
        self._spawn("watcher", self.watcher.run(self._stop))
        self._spawn("projections", self.projections.run(self._stop))
        self._spawn("archiver", self.archiver.run(self._stop))

    def _spawn(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        self._background.append(asyncio.create_task(loop, name=f"chronik-{name}"))

    def begin_shutdown(self) -> None:
        """Stop taking work: answer waiting worker long-polls and client waits at once, end streams."""
        self.workers.close()
        self.watch.close()

    async def stop(self) -> None:
        """Let running handlers finish, then stop every service and the listener."""
        if not self.running:
            return
        self.running = False
        self.begin_shutdown()
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        self._stop.set()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []
        await self.listener.stop()
