"""What a metrics scrape reads: the cluster's queues and the projections' lag."""

from __future__ import annotations

from chronik.adapters.telemetry.metrics import ClusterSnapshot, ProjectionLag, QueueDepth

from . import checkpoints
from .database import Connection
from .queries import QUERIES

__all__ = ["cluster_snapshot"]


async def cluster_snapshot(conn: Connection) -> ClusterSnapshot:
    """Task queue depths per type, steps due, and each projection's lag, read now."""
    queues = await conn.fetch(QUERIES["queue_depths"])
    due = await conn.fetchval(QUERIES["steps_due"])
    lags = await checkpoints.list_with_lag(conn)
    return ClusterSnapshot(
        queues=tuple(
            QueueDepth(task_type=row["task_type"], queued=row["queued"], oldest_seconds=row["oldest_seconds"])
            for row in queues
        ),
        steps_due=due,
        projections=tuple(
            ProjectionLag(name=lag.name, lag_events=lag.lag_events, lag_seconds=lag.lag_seconds)
            for lag in lags
        ),
    )
