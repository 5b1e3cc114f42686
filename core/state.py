"""The current state of a job: what the fold of its events gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import msgspec

from .events import ErrorInfo

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ApprovalState",
    "JobState",
    "JobStatus",
    "TaskState",
    "TimerState",
    "result_of",
]


class JobStatus:
    """The status values a job can have, as stored and shown."""

    RUNNING: Final = "running"
    WAITING_FOR_WORKER: Final = "waiting_for_worker"
    WAITING_FOR_HUMAN: Final = "waiting_for_human"
    WAITING_FOR_TIMER: Final = "waiting_for_timer"
    QUARANTINED: Final = "quarantined"
    FINISHED: Final = "finished"
    FAILED: Final = "failed"
    CANCELLED: Final = "cancelled"


ACTIVE_STATUSES: Final = frozenset({JobStatus.RUNNING})
"""Statuses in which the job's current state still has a handler to run."""

TERMINAL_STATUSES: Final = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED})
"""Statuses from which a job never moves again."""


class TaskState(msgspec.Struct, frozen=True, kw_only=True):
    """The task a job waits on: what was dispatched and which attempt is current."""

    task_id: UUID
    task_type: str
    state: str
    """The job state whose handler dispatched it."""
    params: dict[str, Any]
    transitions: dict[str, str]
    timeout_seconds: float | None
    max_retries: int
    priority: int
    attempt: int
    """The current attempt, from 1."""
    first_attempt: int
    """The attempt the retry budget counts from (a person's retry starts a new budget)."""
    available_at: datetime
    """When the current attempt may be claimed (later than dispatch after a backoff)."""
    dispatched_at: datetime

    @property
    def retries_left(self) -> int:
        """How many more attempts retryable errors may use."""
        return self.max_retries - (self.attempt - self.first_attempt)


class ApprovalState(msgspec.Struct, frozen=True, kw_only=True):
    """The decision a job waits for."""

    state: str
    message: str
    transitions: dict[str, str]
    requested_at: datetime
    timeout_at: datetime | None = None


class TimerState(msgspec.Struct, frozen=True, kw_only=True):
    """The timer a job sleeps on."""

    state: str
    fire_at: datetime
    then: str


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the fold of its stream sees it after ``version`` events.

    Treat the dicts as read-only: ``evolve`` always builds new ones.
    """

    job_id: UUID
    blueprint: str
    status: str
    current_state: str
    initial_data: dict[str, Any]
    state_history: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: ErrorInfo | None = None
    task: TaskState | None = None
    approval: ApprovalState | None = None
    timer: TimerState | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended."""
        return self.status in TERMINAL_STATUSES


def result_of(state: JobState) -> Any:
    """The job's result: the ``state_history`` entry named after the state it ended in.

    An end handler sets it (``state_history["finished"] = {...}``). Only an ended
    job has a result; ``None`` otherwise. Unlike Avtomatika there is no "last key"
    fallback: key order is not kept by jsonb, and a result must not depend on it.
    """
    if not state.is_terminal:
        return None
    return state.state_history.get(state.current_state)
