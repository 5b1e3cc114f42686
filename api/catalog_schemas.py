"""Bodies of Avtomatika's catalog routes: workers, the dashboard, a job's files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from chronik._runtime.overview import Dashboard
from chronik.adapters.postgres.workers import LiveWorker

__all__ = ["DashboardView", "FileUploadLink", "FileUploaded", "WorkerView"]


class WorkerView(msgspec.Struct, kw_only=True):
    """A live worker in ``GET /api/v1/workers`` (Avtomatika's field names where it has them)."""

    worker_id: str
    worker_type: str
    supported_skills: list[dict[str, str]]
    """Avtomatika's shape, ``[{"name": ...}]``: one per task type it runs."""
    task_types: list[str]
    capacity: int
    """Attempts it runs at once."""
    running_tasks: int
    """Attempts it holds now."""
    resources: dict[str, Any]
    capabilities: dict[str, Any]
    registered_at: datetime
    last_heartbeat_at: datetime

    @classmethod
    def of(cls, worker: LiveWorker) -> WorkerView:
        """The view of a ``workers`` row."""
        info = worker.info
        return cls(
            worker_id=worker.worker_id,
            worker_type=str(info.get("worker_type", "generic")),
            supported_skills=[{"name": name} for name in worker.task_types],
            task_types=list(worker.task_types),
            capacity=worker.capacity,
            running_tasks=worker.running_tasks,
            resources=info.get("resources") or {},
            capabilities=info.get("capabilities") or {},
            registered_at=worker.registered_at,
            last_heartbeat_at=worker.last_heartbeat_at,
        )


class DashboardView(msgspec.Struct, kw_only=True):
    """``GET /api/v1/dashboard`` in Avtomatika's shape.

    ``{"workers": {"total": n}, "jobs": {"queued": n, <status>: n, ...}}``.
    """

    workers: dict[str, int]
    jobs: dict[str, int]
    ended_within_hours: int
    """``finished``, ``failed`` and ``cancelled`` count the jobs that ended within these last hours."""

    @classmethod
    def of(cls, dashboard: Dashboard) -> DashboardView:
        """The view of the counts."""
        return cls(
            workers={"total": dashboard.workers},
            jobs={"queued": dashboard.queued, **dashboard.jobs},
            ended_within_hours=dashboard.ended_within_hours,
        )


class FileUploadLink(msgspec.Struct, kw_only=True):
    """``GET /api/v1/jobs/{job_id}/files/upload``: where to ``PUT`` the file, and for how long."""

    url: str
    expires_in: int
    method: str = "PUT"


class FileUploaded(msgspec.Struct, kw_only=True):
    """``PUT /api/v1/jobs/{job_id}/files/content/{filename}``: the file is stored."""

    status: str = "uploaded"
    s3_uri: str


# -- forks and batch actions (the console's, and any client's) ---------------------------------
