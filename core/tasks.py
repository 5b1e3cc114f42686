"""Deciders for a job's task: a worker's result, an attempt that was lost, a person's retry."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from .errors import JobNotRetryable
from .events import (
    AnyEvent,
    BranchesJoined,
    BranchFailed,
    ErrorInfo,
    JobCancelled,
    JobFailed,
    JobQuarantined,
    JobRetried,
    StateEntered,
    TaskCompleted,
    TaskFailed,
    TaskLost,
    TaskResultIgnored,
    TaskRetryScheduled,
)
from .evolve import fold
from .retry import FAIL_CODES, QUARANTINE_CODES, RetryPolicy
from .state import JobState, JobStatus, TaskState

__all__ = ["TaskResult", "current_attempt", "decide_retry", "decide_task_lost", "decide_task_result"]

FAILURE = "failure"
CANCELLED = "cancelled"


class TaskResult:
    """A worker's answer for one attempt, as the deciders need it."""

    __slots__ = ("attempt", "claimed_at", "data", "error", "status", "task_id", "worker_id")

    def __init__(
        self,
        *,
        task_id: UUID,
        attempt: int,
        worker_id: str,
        status: str,
        data: Any = None,
        error: ErrorInfo | None = None,
        claimed_at: datetime | None = None,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.worker_id = worker_id
        self.status = status
        self.data = data
        self.error = error
        self.claimed_at = claimed_at


def current_attempt(state: JobState, task_id: UUID) -> TaskState | None:
    """The task ``task_id`` if the job waits on it now: its single task or a branch not yet in."""
    if state.status != JobStatus.WAITING_FOR_WORKER:
        return None
    if state.task is not None:
        return state.task if state.task.task_id == task_id else None
    if state.fan_out is not None:
        branch = state.fan_out.branches.get(str(task_id))
        return state.fan_out.task(str(task_id)) if branch is not None and branch.outcome is None else None
    return None


def _is_branch(state: JobState) -> bool:
    return state.fan_out is not None


def _joined(state: JobState, events: tuple[AnyEvent, ...]) -> tuple[AnyEvent, ...]:
    """The events, and a BranchesJoined after them when they bring in the fan-out's last branch."""
    after = fold(events, state)
    if after is None or after.fan_out is None or after.fan_out.pending or not events:
        return events
    fan_out = after.fan_out
    return (*events, BranchesJoined(at=events[-1].at, state=fan_out.aggregate_into, from_state=fan_out.state))


def decide_task_result(
    state: JobState, result: TaskResult, at: datetime, *, policy: RetryPolicy, rand: float
) -> tuple[AnyEvent, ...]:
    """The events that a worker's result leads to.

    A result for an attempt that is not the current one is recorded as ignored
    (while the job has not ended) and changes nothing else.
    """
    task = current_attempt(state, result.task_id)
    if task is None or task.attempt != result.attempt:
        if state.is_terminal:
            return ()
        reason = (
            "superseded by a later attempt" if task is not None else "the job no longer waits on this task"
        )
        return (
            TaskResultIgnored(
                at=at,
                task_id=result.task_id,
                attempt=result.attempt,
                worker_id=result.worker_id,
                status=result.status,
                reason=reason,
            ),
        )
    if result.status == FAILURE:
        error = result.error or ErrorInfo(code="TRANSIENT_ERROR", message="the worker reported a failure")
        failed = TaskFailed(
            at=at,
            task_id=task.task_id,
            attempt=task.attempt,
            worker_id=result.worker_id,
            error=error,
            data=result.data,
            claimed_at=result.claimed_at,
        )
        if _is_branch(state):
            return _joined(state, (failed, *_after_branch_failure(task, error, at, policy, rand)))
        return (failed, *_after_failure(task, error, at, policy, rand))
    completed = TaskCompleted(
        at=at,
        task_id=task.task_id,
        attempt=task.attempt,
        worker_id=result.worker_id,
        status=result.status,
        data=result.data,
        claimed_at=result.claimed_at,
    )
    if _is_branch(state):
        # A branch has no transitions: whatever it returned is the aggregator's to judge.
        return _joined(state, (completed,))
    target = task.transitions.get(result.status)
    if target is None and result.status == CANCELLED:
        return (
            completed,
            JobCancelled(at=at, reason="the worker cancelled the task", actor=result.worker_id),
        )
    if target is None:
        error = ErrorInfo(
            code="UNHANDLED_TASK_STATUS",
            message=f"the worker returned status {result.status!r} for task {task.task_type!r}, but "
            f"the handler of state {task.state!r} only has transitions for "
            f"{', '.join(map(repr, task.transitions))}",
        )
        return (completed, JobFailed(at=at, state=task.state, error=error))
    # Only an object is merged into state_history, as Avtomatika does; the raw data stays in TaskCompleted.
    updates = result.data if isinstance(result.data, dict) else {}
    return (completed, StateEntered(at=at, state=target, from_state=task.state, updates=updates))


def decide_task_lost(
    state: JobState,
    *,
    task_id: UUID,
    attempt: int,
    worker_id: str,
    reason: str,
    claimed_at: datetime | None,
    at: datetime,
    policy: RetryPolicy,
    rand: float,
) -> tuple[AnyEvent, ...]:
    """The events for an attempt that ended without a result.

    ``reason`` is ``lease_expired`` or ``timed_out``, either a retryable failure; or ``not_taken``:
    no worker took the attempt within the job's ``dispatch_timeout``, and the job fails.
    """
    task = current_attempt(state, task_id)
    if task is None or task.attempt != attempt:
        return ()
    lost = TaskLost(
        at=at, task_id=task_id, attempt=attempt, worker_id=worker_id, reason=reason, claimed_at=claimed_at
    )
    if reason == "not_taken":
        error = ErrorInfo(
            code="DISPATCH_TIMEOUT",
            message=f"no worker took task {task.task_type!r} within the job's dispatch_timeout of "
            f"{task.dispatch_timeout} s",
        )
        # Another attempt would wait in the same queue for the same absent workers.
        if _is_branch(state):
            return _joined(state, (lost, BranchFailed(at=at, task_id=task_id, error=error)))
        return (lost, JobFailed(at=at, state=task.state, error=error))
    if reason == "timed_out":
        error = ErrorInfo(
            code="TIMEOUT_ERROR",
            message=f"attempt {attempt} of task {task.task_type!r} ran past its timeout of "
            f"{task.timeout_seconds} s",
        )
    else:
        error = ErrorInfo(
            code="TRANSIENT_ERROR",
            message=f"worker {worker_id!r} stopped renewing its lease on attempt {attempt} of task "
            f"{task.task_type!r}",
        )
    if _is_branch(state):
        return _joined(state, (lost, *_after_branch_failure(task, error, at, policy, rand)))
    return (lost, *_after_failure(task, error, at, policy, rand))


def decide_retry(state: JobState, at: datetime, *, actor: str = "") -> tuple[AnyEvent, ...]:
    """A person re-runs a quarantined job: its task is queued again with a fresh retry budget."""
    if state.status != JobStatus.QUARANTINED or state.task is None:  # fan-outs never quarantine
        raise JobNotRetryable(
            f"job {state.job_id} is {state.status!r}; only a quarantined job can be retried"
        )
    return (JobRetried(at=at, task_id=state.task.task_id, attempt=state.task.attempt + 1, actor=actor),)


def _after_failure(
    task: TaskState, error: ErrorInfo, at: datetime, policy: RetryPolicy, rand: float
) -> tuple[AnyEvent, ...]:
    if error.code in QUARANTINE_CODES:
        return (JobQuarantined(at=at, state=task.state, error=error),)
    if error.code in FAIL_CODES:
        target = task.transitions.get(FAILURE)
        if target is not None:
            # The blueprint's failure path runs, but the job ends failed whatever end it reaches.
            return (StateEntered(at=at, state=target, from_state=task.state, error=error),)
        return (JobFailed(at=at, state=task.state, error=error),)
    if task.retries_left > 0:
        return _retry(task, error, at, policy, rand)
    return (JobQuarantined(at=at, state=task.state, error=_exhausted(task, error)),)


def _after_branch_failure(
    task: TaskState, error: ErrorInfo, at: datetime, policy: RetryPolicy, rand: float
) -> tuple[AnyEvent, ...]:
    """A branch retries like a task; when it cannot, it fails alone and the aggregator decides.

    Quarantining a whole fan-out for one branch would stall every other branch's
    result behind a person; the aggregator sees the error code instead.
    """
    if error.code in QUARANTINE_CODES or error.code in FAIL_CODES:
        return (BranchFailed(at=at, task_id=task.task_id, error=error),)
    if task.retries_left > 0:
        return _retry(task, error, at, policy, rand)
    return (BranchFailed(at=at, task_id=task.task_id, error=_exhausted(task, error)),)


def _retry(
    task: TaskState, error: ErrorInfo, at: datetime, policy: RetryPolicy, rand: float
) -> tuple[AnyEvent, ...]:
    retry = task.attempt - task.first_attempt + 1
    return (
        TaskRetryScheduled(
            at=at,
            task_id=task.task_id,
            attempt=task.attempt + 1,
            delay_seconds=round(policy.delay(retry, rand), 3),
            error_code=error.code,
        ),
    )


def _exhausted(task: TaskState, error: ErrorInfo) -> ErrorInfo:
    attempts = task.attempt - task.first_attempt + 1
    return ErrorInfo(
        code=error.code,
        type=error.type,
        message=f"gave up after {attempts} attempt(s) of task {task.task_type!r}: {error.message}",
    )
