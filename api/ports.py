"""What the HTTP layer needs from an orchestrator; the engine provides it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from chronik._runtime.batches import BatchAction, BatchOutcome, BatchPreview
from chronik._runtime.console_sessions import ConsoleSessions
from chronik._runtime.console_stats import ConsoleStats
from chronik._runtime.files import JobFiles
from chronik._runtime.job_page import JobPageReads
from chronik._runtime.overview import Dashboard
from chronik._runtime.registry import BlueprintRegistry
from chronik._runtime.retention import Archiver
from chronik.adapters.postgres.checkpoints import CheckpointStatus
from chronik.adapters.postgres.workers import LiveWorker
from chronik.core.blueprint import Blueprint
from chronik.core.divergence import Divergence
from chronik.core.errors import ChronikError
from chronik.core.records import JobFilter, RecordedEvent
from chronik.core.state import JobState
from chronik.core.wire import (
    EventAnswer,
    HeartbeatAnswer,
    ProgressReport,
    RegisterAnswer,
    RegisterBody,
    ReportedResult,
    ResultAnswer,
    TaskMessage,
    TaskRef,
    TokenAnswer,
    TokenHolder,
)

__all__ = ["Orchestrator", "WorkerProtocol"]


class WorkerProtocol(Protocol):
    """The worker protocol's service, as the worker routes call it (task ids already parsed)."""

    async def register(self, registration: RegisterBody) -> RegisterAnswer: ...

    async def heartbeat(self, worker_id: str, running: list[TaskRef] | None = None) -> HeartbeatAnswer: ...

    async def next_task(
        self,
        worker_id: str,
        task_types: list[str],
        wait_seconds: float,
        *,
        gone: asyncio.Event | None = None,
    ) -> TaskMessage | None: ...

    async def next_tasks(
        self,
        worker_id: str,
        task_types: list[str],
        wait_seconds: float,
        *,
        limit: int,
        gone: asyncio.Event | None = None,
    ) -> list[TaskMessage]: ...

    async def submit_result(self, result: ReportedResult) -> ResultAnswer: ...

    async def submit_results(
        self, results: Sequence[ReportedResult]
    ) -> list[ResultAnswer | ChronikError]: ...

    async def report_progress(self, report: ProgressReport) -> EventAnswer: ...

    async def issue_token(self, worker_id: str, *, by_certificate: bool, seconds: float) -> TokenAnswer: ...

    async def verify_token(self, token: str) -> TokenHolder | None: ...


class Orchestrator(Protocol):
    """The job commands and queries the routes call."""

    @property
    def workers(self) -> WorkerProtocol:
        """The worker protocol's service."""
        ...

    @property
    def console_sessions(self) -> ConsoleSessions:
        """The console's sign-ins."""
        ...

    @property
    def console_stats(self) -> ConsoleStats:
        """The console's reads beyond single jobs: activity, queue, schedules, analytics."""
        ...

    @property
    def archiver(self) -> Archiver:
        """The log's partitions: which may leave, and why the others stay (the retention page)."""
        ...

    @property
    def job_page(self) -> JobPageReads:
        """The console job page's reads of one job: filtered pages, moves, task attempts."""
        ...

    async def replay_job(self, job_id: UUID, *, owner: str | None = None) -> tuple[int, list[Divergence]]:
        """The job's handler runs, and those today's handlers decide differently."""
        ...

    @property
    def blueprints(self) -> BlueprintRegistry:
        """The registered blueprints, by name and by ``api_endpoint``."""
        ...

    async def readiness(self) -> str | None: ...

    async def check_rate(self, key: str, limit: int, per_seconds: float, *, kind: str = "client") -> None: ...

    async def check_worker_rate(self, worker_id: str, kind: str) -> None: ...

    async def job_webhooks(self, job_id: UUID, *, owner: str | None = None) -> list[dict[str, Any]]: ...

    async def metrics_text(self) -> bytes: ...

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
    ) -> JobState: ...

    # ``owner``: the client asking; another client's job is JobNotFound. None: every job (an admin).

    async def get_job(self, job_id: UUID, *, owner: str | None = None) -> JobState: ...

    async def job_history(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None, owner: str | None = None
    ) -> list[RecordedEvent]: ...

    async def job_history_page(
        self, job_id: UUID, *, after_version: int = 0, limit: int | None = None, owner: str | None = None
    ) -> tuple[list[RecordedEvent], bool]: ...

    async def list_jobs(
        self,
        where: JobFilter,
        *,
        limit: int = 50,
        after: tuple[datetime, UUID] | None = None,
        owner: str | None = None,
    ) -> tuple[list[JobState], tuple[datetime, UUID] | None]: ...

    async def job_as_of(
        self,
        job_id: UUID,
        *,
        version: int | None = None,
        at: datetime | None = None,
        owner: str | None = None,
    ) -> JobState: ...

    async def cancel_job(
        self, job_id: UUID, *, reason: str = "", actor: str = "", owner: str | None = None
    ) -> JobState: ...

    async def retry_job(self, job_id: UUID, *, actor: str = "", owner: str | None = None) -> JobState: ...

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
        """A new job from the job's state as of ``from_version``; the new job's state."""
        ...

    async def count_jobs(self, where: JobFilter, *, owner: str | None = None) -> int: ...

    async def preview_batch(
        self, action: BatchAction, where: JobFilter, *, owner: str | None = None
    ) -> BatchPreview: ...

    async def run_batch(
        self,
        action: BatchAction,
        where: JobFilter,
        *,
        actor: str = "",
        owner: str | None = None,
        reason: str = "",
    ) -> BatchOutcome: ...

    async def approve_job(
        self,
        job_id: UUID,
        decision: str,
        *,
        comment: str = "",
        actor: str = "",
        owner: str | None = None,
        token: str | None = None,
    ) -> JobState: ...

    async def get_job_with_progress(
        self, job_id: UUID, *, owner: str | None = None
    ) -> tuple[JobState, dict[str, Any] | None]: ...

    async def wait_for_job(
        self, job_id: UUID, seconds: float, *, owner: str | None = None
    ) -> tuple[JobState, dict[str, Any] | None]:
        """``get_job_with_progress`` once the job has stopped, or after ``seconds`` as it is then."""
        ...

    async def job_events(
        self, job_id: UUID, after: int = 0, *, owner: str | None = None
    ) -> AsyncIterator[RecordedEvent | None] | None:
        """The job's events after version ``after`` as they commit, until it stops; ``None`` items
        are keep-alives. ``None`` itself when the job has stopped and nothing follows ``after``."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    # -- workers, dashboard, files (``owner`` as above)

    async def live_workers(self) -> list[LiveWorker]: ...

    async def projection_status(self) -> list[CheckpointStatus]: ...

    async def dashboard(self, *, owner: str | None = None) -> Dashboard: ...

    @property
    def files(self) -> JobFiles:
        """The jobs' files on S3: presigned links and streamed uploads."""
        ...
