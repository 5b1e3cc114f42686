"""The current state of a job: what the fold of its events gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import msgspec

from .events import ErrorInfo, ForkedFrom

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ApprovalState",
    "BranchState",
    "ChildState",
    "FanOutState",
    "JobState",
    "JobStatus",
    "TaskState",
    "TimerState",
    "pending_attempts",
    "pending_task",
    "result_of",
]


class JobStatus:
    """The status values a job can have, as stored and shown."""

    RUNNING: Final = "running"
    WAITING_FOR_WORKER: Final = "waiting_for_worker"
    WAITING_FOR_HUMAN: Final = "waiting_for_human"
    WAITING_FOR_TIMER: Final = "waiting_for_timer"
    WAITING_FOR_CHILD: Final = "waiting_for_child"
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
    dispatch_timeout: float | None = None
    """How long after ``available_at`` a worker must have taken the attempt (the job's)."""

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
    token: str = ""
    """The secret of the public approval link (``ApprovalRequested.token``)."""


class TimerState(msgspec.Struct, frozen=True, kw_only=True):
    """The timer a job sleeps on."""

    state: str
    fire_at: datetime
    then: str


class BranchState(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One branch of a fan-out: its task's current attempt and, once it is in, its outcome.

    Stored as an array, not an object: a fan-out of thousands of branches is rewritten
    with every result, and field names would be most of its size.
    """

    task_type: str
    params: dict[str, Any]
    timeout_seconds: float | None
    max_retries: int
    priority: int
    attempt: int
    first_attempt: int
    available_at: datetime
    outcome: dict[str, Any] | None = None
    """``{"task_type", "status", "data"}``, or ``{"task_type", "status": "failure", "error"}``."""


class FanOutState(msgspec.Struct, frozen=True, kw_only=True):
    """The branches a job waits on; keys are the branches' task ids as strings."""

    state: str
    aggregate_into: str
    dispatched_at: datetime
    branches: dict[str, BranchState]

    @property
    def pending(self) -> int:
        """How many branches are not in yet."""
        return sum(1 for branch in self.branches.values() if branch.outcome is None)

    def task(self, key: str) -> TaskState:
        """The branch ``key`` as a task, as the deciders and the task queue see one."""
        branch = self.branches[key]
        return TaskState(
            task_id=UUID(key),
            task_type=branch.task_type,
            state=self.state,
            params=branch.params,
            transitions={},
            timeout_seconds=branch.timeout_seconds,
            max_retries=branch.max_retries,
            priority=branch.priority,
            attempt=branch.attempt,
            first_attempt=branch.first_attempt,
            available_at=branch.available_at,
            dispatched_at=self.dispatched_at,
        )


class ChildState(msgspec.Struct, frozen=True, kw_only=True):
    """The child job a job waits on."""

    job_id: UUID
    blueprint: str
    state: str
    transitions: dict[str, str]


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
    fan_out: FanOutState | None = None
    aggregation_results: dict[str, Any] | None = None
    """The branches' outcomes by task id, for the aggregator's handler run; gone after it."""
    child: ChildState | None = None
    children: tuple[UUID, ...] = ()
    """Every child job this job started, in order."""
    parent_job_id: UUID | None = None
    deadline_at: datetime | None = None
    """The job's own deadline (``timeout_seconds`` of the job or its blueprint)."""
    state_deadline_at: datetime | None = None
    """The current state's deadline (``timeout_seconds`` of its handler)."""
    on_timeout: str | None = None
    """Where the current state's deadline leads; ``None``: the job fails."""
    webhook_url: str | None = None
    traceparent: str | None = None
    files: tuple[str, ...] = ()
    """Every S3 object key stored for the job (``FilesStored``), removed when it ends."""
    client: str = ""
    """The client that owns the job (``JobCreated.client``); empty: none, only admins see it."""
    metadata: dict[str, Any] = {}
    """The client's own annotations, as sent at creation."""
    transitions: int = 0
    """How many times the job has entered a state (``StateEntered``)."""
    max_transitions: int = 0
    """The most ``transitions`` the job may make; 0: no cap."""
    failure: ErrorInfo | None = None
    """The error that sent the job down a failure path (``StateEntered.error``): it ends failed."""
    dispatch_timeout: float | None = None
    """How long each of the job's tasks may wait for a worker (``JobCreated.dispatch_timeout``)."""
    forked_from: ForkedFrom | None = None
    """The job and version this job was forked from (``JobCreated.forked_from``); None: not a fork."""
    forks: tuple[UUID, ...] = ()
    """Every job forked from this one (``JobForked``), in order."""

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended."""
        return self.status in TERMINAL_STATUSES


def pending_attempts(state: JobState) -> dict[str, tuple[int, datetime]]:
    """The attempt and availability of each task the job waits on, by task id as a string.

    Cheap to compare: the task queue follows the changes between two states of it.
    """
    if state.status != JobStatus.WAITING_FOR_WORKER:
        return {}
    if state.task is not None:
        return {str(state.task.task_id): (state.task.attempt, state.task.available_at)}
    if state.fan_out is not None:
        return {
            key: (branch.attempt, branch.available_at)
            for key, branch in state.fan_out.branches.items()
            if branch.outcome is None
        }
    return {}


def pending_task(state: JobState, key: str) -> TaskState:
    """The pending task ``key`` (a task id as a string) of the job, as one of ``pending_attempts``."""
    if state.task is not None and str(state.task.task_id) == key:
        return state.task
    assert state.fan_out is not None
    return state.fan_out.task(key)


def result_of(state: JobState) -> Any:
    """The job's result: the ``state_history`` entry named after the state it ended in.

    An end handler sets it (``state_history["finished"] = {...}``). Only an ended
    job has a result; ``None`` otherwise. Unlike Avtomatika there is no "last key"
    fallback: key order is not kept by jsonb, and a result must not depend on it.
    """
    if not state.is_terminal:
        return None
    return state.state_history.get(state.current_state)
