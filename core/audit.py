"""What an event means to a person reading a job's history: who, what, which task, why.

Pure functions of an event and the job's state just before it; the ``job_history``
projection and ``chronik jobs history`` both use them.
"""

from __future__ import annotations

from typing import Any, assert_never
from uuid import UUID

from .events import (
    AnyEvent,
    ApprovalGiven,
    ApprovalRequested,
    ApprovalTimedOut,
    BranchesJoined,
    BranchFailed,
    ChildEnded,
    ChildStarted,
    FilesStored,
    HandlerFailed,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobFinished,
    JobForked,
    JobQuarantined,
    JobRetried,
    ParallelDispatched,
    StateEntered,
    TaskCompleted,
    TaskDispatched,
    TaskFailed,
    TaskLost,
    TaskResultIgnored,
    TaskRetryScheduled,
    TimedOut,
    TimerFired,
    TimerStarted,
)
from .state import JobState

__all__ = ["LOST_CODES", "AuditFacts", "facts_of"]

LOST_CODES = {"timed_out": "TIMEOUT_ERROR", "lease_expired": "TRANSIENT_ERROR"}
"""The error code a lost attempt counts as, by its reason (as the deciders treat it)."""


class AuditFacts:
    """The readable facts of one event."""

    __slots__ = ("actor", "attempt", "error_code", "outcome", "summary", "task_id", "task_type", "worker_id")

    def __init__(
        self,
        summary: str,
        *,
        actor: str | None = None,
        task_id: UUID | None = None,
        task_type: str | None = None,
        attempt: int | None = None,
        worker_id: str | None = None,
        error_code: str | None = None,
        outcome: str | None = None,
    ) -> None:
        self.summary = summary
        self.actor = actor
        self.task_id = task_id
        self.task_type = task_type
        self.attempt = attempt
        self.worker_id = worker_id
        self.error_code = error_code
        self.outcome = outcome


def task_type_of(state: JobState | None, task_id: UUID) -> str | None:
    """The type of a task the job dispatched, from its state (a single task or a branch)."""
    if state is None:
        return None
    if state.task is not None and state.task.task_id == task_id:
        return state.task.task_type
    if state.fan_out is not None:
        branch = state.fan_out.branches.get(str(task_id))
        if branch is not None:
            return branch.task_type
    return None


def facts_of(event: AnyEvent, before: JobState | None, meta: dict[str, Any]) -> AuditFacts:
    """Who did what in ``event``, given the job's state before it and the event's metadata.

    The actor is the event's own (a person, a worker) when it has one, else the
    client recorded in the metadata, else ``chronik`` (the engine decided).
    """
    facts = _facts(event, before)
    if facts.actor is None:
        facts.actor = str(meta.get("actor") or "chronik")
    return facts


def _facts(event: AnyEvent, before: JobState | None) -> AuditFacts:
    match event:
        case JobCreated(forked_from=origin):
            if origin is None:
                return AuditFacts(f"created in state {event.start_state!r}")
            return AuditFacts(
                f"forked from job {origin.job_id} at version {origin.version}, in state {event.start_state!r}"
            )
        case JobForked():
            return AuditFacts(
                f"forked at version {event.from_version} into job {event.new_job_id}",
                actor=event.actor or None,
            )
        case StateEntered():
            return AuditFacts(f"moved from {event.from_state!r} to {event.state!r}")
        case HandlerFailed(error=error):
            return AuditFacts(
                f"the handler of {event.state!r} failed: {error.message}", error_code=error.code
            )
        case JobFinished():
            return AuditFacts(f"finished in {event.state!r}", outcome="finished")
        case JobFailed(error=error):
            return AuditFacts(f"failed in {event.state!r}: {error.message}", error_code=error.code)
        case JobCancelled():
            return AuditFacts(
                "cancelled" + (f": {event.reason}" if event.reason else ""), actor=event.actor or None
            )
        case TaskDispatched():
            return AuditFacts(
                f"dispatched task {event.task_type!r}",
                task_id=event.task_id,
                task_type=event.task_type,
                attempt=1,
            )
        case ParallelDispatched():
            return AuditFacts(f"fanned out {len(event.branches)} task(s) into {event.aggregate_into!r}")
        case TaskCompleted():
            task_type = task_type_of(before, event.task_id)
            return AuditFacts(
                f"worker {event.worker_id!r} returned {event.status!r} for {task_type!r} "
                f"(attempt {event.attempt})",
                actor=event.worker_id,
                task_id=event.task_id,
                task_type=task_type,
                attempt=event.attempt,
                worker_id=event.worker_id,
                outcome=event.status,
            )
        case TaskFailed(error=error):
            task_type = task_type_of(before, event.task_id)
            return AuditFacts(
                f"attempt {event.attempt} of {task_type!r} failed on {event.worker_id!r}: {error.message}",
                actor=event.worker_id,
                task_id=event.task_id,
                task_type=task_type,
                attempt=event.attempt,
                worker_id=event.worker_id,
                error_code=error.code,
            )
        case TaskLost():
            task_type = task_type_of(before, event.task_id)
            return AuditFacts(
                f"attempt {event.attempt} of {task_type!r} was lost ({event.reason})",
                task_id=event.task_id,
                task_type=task_type,
                attempt=event.attempt,
                worker_id=event.worker_id or None,
                error_code=LOST_CODES.get(event.reason, "TRANSIENT_ERROR"),
                outcome=event.reason,
            )
        case TaskRetryScheduled():
            task_type = task_type_of(before, event.task_id)
            return AuditFacts(
                f"attempt {event.attempt} of {task_type!r} queued in {event.delay_seconds} s",
                task_id=event.task_id,
                task_type=task_type,
                attempt=event.attempt,
                error_code=event.error_code,
            )
        case TaskResultIgnored():
            return AuditFacts(
                f"ignored a result of attempt {event.attempt}: {event.reason}",
                actor=event.worker_id,
                task_id=event.task_id,
                task_type=task_type_of(before, event.task_id),
                attempt=event.attempt,
                worker_id=event.worker_id,
                outcome=event.status,
            )
        case JobQuarantined(error=error):
            return AuditFacts(f"quarantined in {event.state!r}: {error.message}", error_code=error.code)
        case JobRetried():
            return AuditFacts(
                f"retried: attempt {event.attempt} queued",
                actor=event.actor or None,
                task_id=event.task_id,
                task_type=task_type_of(before, event.task_id),
                attempt=event.attempt,
            )
        case ApprovalRequested():
            return AuditFacts(
                f"asked for a decision: {event.message}" if event.message else "asked for a decision"
            )
        case ApprovalGiven():
            return AuditFacts(
                f"decided {event.decision!r}" + (f": {event.comment}" if event.comment else ""),
                actor=event.actor or None,
                outcome=event.decision,
            )
        case ApprovalTimedOut():
            return AuditFacts(f"nobody decided on {event.state!r} in time", outcome="timeout")
        case TimerStarted():
            return AuditFacts(f"sleeps until {event.fire_at.isoformat()}, then {event.then!r}")
        case TimerFired():
            return AuditFacts(f"woke up, on to {event.then!r}")
        case TimedOut():
            return AuditFacts(
                f"the {event.scope}'s deadline {event.deadline_at.isoformat()} passed in {event.state!r}",
                error_code="JOB_TIMEOUT" if event.scope == "job" else "STATE_TIMEOUT",
                outcome=event.scope,
            )
        case BranchFailed(error=error):
            return AuditFacts(
                f"branch {task_type_of(before, event.task_id)!r} failed for good: {error.message}",
                task_id=event.task_id,
                task_type=task_type_of(before, event.task_id),
                error_code=error.code,
            )
        case BranchesJoined():
            return AuditFacts(f"every branch is in; on to {event.state!r}")
        case ChildStarted():
            return AuditFacts(f"started child job {event.child_job_id} of {event.blueprint!r}")
        case ChildEnded():
            return AuditFacts(
                f"child job {event.child_job_id} ended {event.status!r}",
                error_code=event.error.code if event.error is not None else None,
                outcome=event.status,
            )
        case FilesStored(keys=keys, by=by):
            return AuditFacts(
                f"stored {len(keys)} file(s): {', '.join(keys[:3])}" + (" ..." if len(keys) > 3 else ""),
                actor=None if by.startswith("handler:") else by,
            )
        case _:
            assert_never(event)
