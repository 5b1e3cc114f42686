"""Prometheus metrics of one instance, served at ``/_public/metrics``.

Counters and histograms count what this instance did (Prometheus sums the
instances); the queue and projection gauges are read from PostgreSQL at each
scrape, so every instance reports the cluster's queues.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from chronik.core.audit import task_type_of
from chronik.core.events import (
    AnyEvent,
    JobCreated,
    JobFailed,
    JobFinished,
    TaskCompleted,
    TaskFailed,
    TaskLost,
)
from chronik.core.state import JobState

__all__ = ["ClusterSnapshot", "Metrics", "ProjectionLag", "QueueDepth"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    """The instruments of one engine, in a registry of its own (several engines fit in a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs_created = Counter(
            "chronik_jobs_created", "Jobs created", ["blueprint"], registry=self.registry
        )
        self.jobs_ended = Counter(
            "chronik_jobs_ended",
            "Jobs that ended, by status",
            ["blueprint", "status"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "chronik_step_seconds",
            "Handler run time",
            ["blueprint"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.task_seconds = Histogram(
            "chronik_task_run_seconds",
            "Task attempt run time, from claim to result",
            ["task_type", "outcome"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.attempts_lost = Counter(
            "chronik_task_attempts_lost",
            "Attempts that lost their worker (lease_expired) or ran too long (timed_out)",
            ["reason"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "chronik_http_requests",
            "HTTP requests the API received, by route group: client (/api), worker (/_worker), public, other",
            ["route"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "chronik_rate_limited",
            "Requests refused for a rate limit or quota",
            ["kind"],
            registry=self.registry,
        )
        self.tasks_queued = Gauge(
            "chronik_tasks_queued",
            "Task attempts waiting for a worker",
            ["task_type"],
            registry=self.registry,
        )
        self.tasks_oldest = Gauge(
            "chronik_tasks_oldest_queued_seconds",
            "Age of the oldest attempt waiting for a worker",
            ["task_type"],
            registry=self.registry,
        )
        self.steps_due = Gauge("chronik_steps_due", "Handler runs and timers due now", registry=self.registry)
        self.projection_lag_events = Gauge(
            "chronik_projection_lag_events", "Events not yet applied", ["projection"], registry=self.registry
        )
        self.projection_lag_seconds = Gauge(
            "chronik_projection_lag_seconds",
            "Age of the oldest event not yet applied",
            ["projection"],
            registry=self.registry,
        )

    def committed(self, before: JobState | None, after: JobState, events: Sequence[AnyEvent]) -> None:
        """Count what one commit of a job recorded."""
        for event in events:
            match event:
                case JobCreated():
                    self.jobs_created.labels(after.blueprint).inc()
                case JobFinished() | JobFailed():
                    self.jobs_ended.labels(after.blueprint, after.status).inc()
                case TaskCompleted() | TaskFailed() if event.claimed_at is not None:
                    task_type = task_type_of(before, event.task_id) or "unknown"
                    outcome = "completed" if isinstance(event, TaskCompleted) else "failed"
                    self.task_seconds.labels(task_type, outcome).observe(
                        max(0.0, (event.at - event.claimed_at).total_seconds())
                    )
                case TaskLost():
                    self.attempts_lost.labels(event.reason).inc()
        if after.status == "cancelled" and (before is None or before.status != "cancelled"):
            self.jobs_ended.labels(after.blueprint, after.status).inc()

    def render(self, snapshot: ClusterSnapshot) -> bytes:
        """Set the gauges from ``snapshot`` (the cluster's queues and lag, read just now), then render."""
        # Everything was read first: a scrape overlapping this one never renders half-filled gauges.
        self.tasks_queued.clear()
        self.tasks_oldest.clear()
        for queue in snapshot.queues:
            self.tasks_queued.labels(queue.task_type).set(queue.queued)
            self.tasks_oldest.labels(queue.task_type).set(queue.oldest_seconds)
        self.steps_due.set(snapshot.steps_due)
        for lag in snapshot.projections:
            self.projection_lag_events.labels(lag.name).set(lag.lag_events)
            self.projection_lag_seconds.labels(lag.name).set(lag.lag_seconds)
        return generate_latest(self.registry)


class QueueDepth(msgspec.Struct, frozen=True, kw_only=True):
    """Attempts of one task type waiting for a worker, and the age of the oldest."""

    task_type: str
    queued: int
    oldest_seconds: float


class ProjectionLag(msgspec.Struct, frozen=True, kw_only=True):
    """How far one asynchronous projection is behind the log."""

    name: str
    lag_events: int
    lag_seconds: float


class ClusterSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What a scrape reads from PostgreSQL: the cluster's queues and projection lag."""

    queues: tuple[QueueDepth, ...] = ()
    steps_due: int = 0
    projections: tuple[ProjectionLag, ...] = ()
