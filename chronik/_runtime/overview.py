"""The cluster at a glance, for clients: the live workers, and a client's jobs counted by status.

Workers are shared by every client, so any client sees all of them. A worker is
live while its last heartbeat is within the task lease (``TASK_LEASE_SECONDS``):
a worker silent for longer has lost every task it held (the watcher re-queues
them), so it no longer counts as one that works. The ``workers`` table keeps it
until it registers again; nothing depends on that row (leases live on the tasks).
"""

from __future__ import annotations

import msgspec

from chronik.adapters.postgres import dashboard, workers
from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.workers import LiveWorker
from chronik.core.state import TERMINAL_STATUSES, JobStatus

__all__ = ["JOB_STATUSES", "Dashboard", "Overview"]

JOB_STATUSES: tuple[str, ...] = tuple(
    value for name, value in vars(JobStatus).items() if name.isupper() and isinstance(value, str)
)
"""Every status a job can have; the dashboard counts each, zero included, so its keys are stable."""


ENDED_WITHIN_HOURS = 24
"""The dashboard's window for ended jobs: counting every job ever ended would read all of history."""
_LIVE = sorted(set(JOB_STATUSES) - TERMINAL_STATUSES)


class Dashboard(msgspec.Struct, kw_only=True):
    """What ``GET /api/v1/dashboard`` shows."""

    workers: int
    """Live workers (everyone's)."""
    queued: int
    """Task attempts of the caller's jobs that wait in the queue for a worker (not yet taken)."""
    jobs: dict[str, int]
    """The caller's jobs per status, every status present (0 when none): all that have not ended,
    and of the ended statuses those that ended within the last ``ended_within_hours``."""
    ended_within_hours: int = 24


class Overview:
    """Reads for the dashboard and the worker list; ``liveness_seconds`` is the task lease."""

    def __init__(self, database: Database, *, liveness_seconds: float) -> None:
        self._database = database
        self._liveness = liveness_seconds

    async def live_workers(self) -> list[LiveWorker]:
        """The workers that beat within the liveness window, by id, with the attempts they hold."""
        async with self._database.connection() as conn:
            return await workers.list_live(conn, self._liveness)

    async def dashboard(self, *, owner: str | None = None) -> Dashboard:
        """Live workers, and ``owner``'s jobs per status (None: every client's, for an admin)."""
        async with self._database.connection() as conn:
            counts = await dashboard.count_jobs_by_status(
                conn, owner, live=_LIVE, ended_within_hours=ENDED_WITHIN_HOURS
            )
            live = await workers.count_live(conn, self._liveness)
        jobs = dict.fromkeys(JOB_STATUSES, 0)
        for count in counts:
            jobs[count.status] = count.jobs
        return Dashboard(
            workers=live,
            queued=sum(count.queued for count in counts),
            jobs=jobs,
            ended_within_hours=ENDED_WITHIN_HOURS,
        )
