"""The fold: ``evolve(state, event) -> state``, one pure function for every use.

The live engine, a full rebuild, the audit replay and "state as of version N"
all go through this function, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, assert_never

from msgspec.structs import replace

from .events import (
    AnyEvent,
    ApprovalGiven,
    ApprovalRequested,
    ApprovalTimedOut,
    BranchesJoined,
    BranchFailed,
    ChildEnded,
    ChildStarted,
    ErrorInfo,
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
from .state import (
    ApprovalState,
    BranchState,
    ChildState,
    FanOutState,
    JobState,
    JobStatus,
    TaskState,
    TimerState,
)

__all__ = ["EventOutOfOrder", "evolve", "fold", "replay"]


class EventOutOfOrder(ValueError):
    """An event cannot follow the state it was applied to."""


def evolve(state: JobState | None, event: AnyEvent) -> JobState:
    """Apply one event to a job's state and return the new state."""
    if state is None:
        if not isinstance(event, JobCreated):
            raise EventOutOfOrder(f"a stream must start with JobCreated, not {type(event).__name__}")
        return JobState(
            job_id=event.job_id,
            blueprint=event.blueprint,
            status=JobStatus.RUNNING,
            current_state=event.start_state,
            initial_data=dict(event.initial_data),
            state_history=dict(event.state_history),
            version=1,
            created_at=event.at,
            updated_at=event.at,
            parent_job_id=event.parent_job_id,
            deadline_at=event.deadline_at,
            state_deadline_at=event.state_deadline_at,
            on_timeout=event.on_timeout,
            webhook_url=event.webhook_url,
            traceparent=event.traceparent,
            client=event.client,
            metadata=dict(event.metadata),
            max_transitions=event.max_transitions,
            dispatch_timeout=event.dispatch_timeout,
            forked_from=event.forked_from,
        )
    version = state.version + 1
    match event:
        case JobCreated():
            raise EventOutOfOrder(f"job {state.job_id} was already created")
        case StateEntered(state=target, updates=updates, removed=removed):
            return replace(
                state,
                status=JobStatus.RUNNING,
                current_state=target,
                state_history=_merge(state.state_history, updates, removed),
                task=None,
                aggregation_results=None,
                state_deadline_at=event.state_deadline_at,
                on_timeout=event.on_timeout,
                transitions=state.transitions + 1,
                failure=event.error or state.failure,
                version=version,
                updated_at=event.at,
            )
        case HandlerFailed() | TaskFailed() | TaskLost() | TaskResultIgnored():
            # The fact is recorded; what it leads to (a retry, a failure...) is the next event.
            return replace(state, version=version, updated_at=event.at)
        case TaskDispatched():
            task = TaskState(
                task_id=event.task_id,
                task_type=event.task_type,
                state=event.state,
                params=dict(event.params),
                transitions=dict(event.transitions),
                timeout_seconds=event.timeout_seconds,
                max_retries=event.max_retries,
                priority=event.priority,
                attempt=1,
                first_attempt=1,
                available_at=event.at,
                dispatched_at=event.at,
                dispatch_timeout=event.dispatch_timeout,
            )
            return _waiting(
                state,
                event,
                JobStatus.WAITING_FOR_WORKER,
                version,
                task=task,
            )
        case ParallelDispatched():
            branches = {
                str(spec.task_id): BranchState(
                    task_type=spec.task_type,
                    params=dict(spec.params),
                    timeout_seconds=spec.timeout_seconds,
                    max_retries=spec.max_retries,
                    priority=spec.priority,
                    attempt=1,
                    first_attempt=1,
                    available_at=event.at,
                )
                for spec in event.branches
            }
            return _waiting(
                state,
                event,
                JobStatus.WAITING_FOR_WORKER,
                version,
                fan_out=FanOutState(
                    state=event.state,
                    aggregate_into=event.aggregate_into,
                    dispatched_at=event.at,
                    branches=branches,
                ),
            )
        case TaskCompleted(task_id=task_id, status=status, data=data):
            if (branch := _branch(state, task_id)) is not None:
                outcome = {"task_type": branch.task_type, "status": status, "data": data}
                return _settle_branch(state, task_id, outcome, version, event.at)
            # A StateEntered (or a JobFailed for an unexpected status) always follows in the same append.
            return replace(state, status=JobStatus.RUNNING, version=version, updated_at=event.at)
        case BranchFailed(task_id=task_id, error=error):
            branch = _branch(state, task_id)
            if branch is None:
                raise EventOutOfOrder(f"job {state.job_id} has no branch {task_id}")
            outcome = {"task_type": branch.task_type, "status": "failure", "error": _builtins(error)}
            return _settle_branch(state, task_id, outcome, version, event.at)
        case BranchesJoined():
            fan_out = state.fan_out
            if fan_out is None:
                raise EventOutOfOrder(f"job {state.job_id} has no fan-out to join at version {state.version}")
            return replace(
                state,
                status=JobStatus.RUNNING,
                current_state=event.state,
                fan_out=None,
                aggregation_results={key: branch.outcome for key, branch in fan_out.branches.items()},
                state_deadline_at=event.state_deadline_at,
                on_timeout=event.on_timeout,
                version=version,
                updated_at=event.at,
            )
        case TaskRetryScheduled(task_id=task_id, attempt=attempt, delay_seconds=delay):
            available = event.at + timedelta(seconds=delay)
            if (branch := _branch(state, task_id)) is not None:
                retried = replace(branch, attempt=attempt, available_at=available)
                return _replace_branch(state, task_id, retried, version, event.at)
            task = _task(state)
            return replace(
                state,
                status=JobStatus.WAITING_FOR_WORKER,
                task=replace(task, attempt=attempt, available_at=available),
                version=version,
                updated_at=event.at,
            )
        case JobQuarantined(error=error):
            return replace(
                state, status=JobStatus.QUARANTINED, error=error, version=version, updated_at=event.at
            )
        case JobRetried(attempt=attempt):
            task = replace(_task(state), attempt=attempt, first_attempt=attempt, available_at=event.at)
            return replace(
                state,
                status=JobStatus.WAITING_FOR_WORKER,
                task=task,
                error=None,
                version=version,
                updated_at=event.at,
            )
        case ApprovalRequested():
            approval = ApprovalState(
                state=event.state,
                message=event.message,
                transitions=dict(event.transitions),
                requested_at=event.at,
                timeout_at=event.timeout_at,
                token=event.token,
            )
            return _waiting(
                state,
                event,
                JobStatus.WAITING_FOR_HUMAN,
                version,
                approval=approval,
            )
        case TimerStarted():
            timer = TimerState(state=event.state, fire_at=event.fire_at, then=event.then)
            return _waiting(
                state,
                event,
                JobStatus.WAITING_FOR_TIMER,
                version,
                timer=timer,
            )
        case ChildStarted():
            child = ChildState(
                job_id=event.child_job_id,
                blueprint=event.blueprint,
                state=event.state,
                transitions=dict(event.transitions),
            )
            return _waiting(
                state,
                event,
                JobStatus.WAITING_FOR_CHILD,
                version,
                child=child,
                children=(*state.children, event.child_job_id),
            )
        case ChildEnded():
            # A StateEntered (or a JobFailed) always follows in the same append and moves the job on.
            return replace(state, child=None, version=version, updated_at=event.at)
        case JobForked(new_job_id=new_job_id):
            # A record of the source's, not a change of it: status, state and updated_at stay (an
            # ended job stays ended); only the version moves, as with every event of the stream.
            return replace(state, forks=(*state.forks, new_job_id), version=version)
        case FilesStored(keys=keys):
            files = tuple(dict.fromkeys((*state.files, *keys)))
            return replace(state, files=files, version=version, updated_at=event.at)
        case TimedOut():
            # Whatever the job waited on is abandoned; its task rows are withdrawn, its child cancelled.
            return replace(
                state,
                task=None,
                approval=None,
                timer=None,
                fan_out=None,
                child=None,
                state_deadline_at=None,
                on_timeout=None,
                version=version,
                updated_at=event.at,
            )
        case TimerFired():
            # A StateEntered always follows in the same append and moves the job on.
            return replace(state, timer=None, version=version, updated_at=event.at)
        case ApprovalGiven() | ApprovalTimedOut():
            # A StateEntered always follows in the same append and moves the job on.
            return replace(state, approval=None, version=version, updated_at=event.at)
        case JobFinished(updates=updates, removed=removed):
            return replace(
                state,
                status=JobStatus.FINISHED,
                state_history=_merge(state.state_history, updates, removed),
                aggregation_results=None,
                version=version,
                updated_at=event.at,
                finished_at=event.at,
            )
        case JobFailed(error=error, updates=updates, removed=removed):
            return replace(
                state,
                status=JobStatus.FAILED,
                state_history=_merge(state.state_history, updates, removed),
                error=error,
                approval=None,
                timer=None,
                fan_out=None,
                child=None,
                aggregation_results=None,
                version=version,
                updated_at=event.at,
                finished_at=event.at,
            )
        case JobCancelled(reason=reason):
            return replace(
                state,
                status=JobStatus.CANCELLED,
                error=ErrorInfo(code="CANCELLED", message=reason or "cancelled"),
                approval=None,
                timer=None,
                fan_out=None,
                child=None,
                aggregation_results=None,
                version=version,
                updated_at=event.at,
                finished_at=event.at,
            )
        case _:
            assert_never(event)


def fold(events: Iterable[AnyEvent], state: JobState | None = None) -> JobState | None:
    """Apply events in order, starting from ``state`` (nothing by default)."""
    for event in events:
        state = evolve(state, event)
    return state


def replay(events: Iterable[AnyEvent]) -> list[JobState]:
    """The state after each event, in order: the audit trail as states."""
    states: list[JobState] = []
    state: JobState | None = None
    for event in events:
        state = evolve(state, event)
        states.append(state)
    return states


def _task(state: JobState) -> TaskState:
    if state.task is None:
        raise EventOutOfOrder(f"job {state.job_id} has no task at version {state.version}")
    return state.task


def _branch(state: JobState, task_id: Any) -> BranchState | None:
    if state.fan_out is None:
        return None
    return state.fan_out.branches.get(str(task_id))


def _replace_branch(state: JobState, task_id: Any, branch: BranchState, version: int, at: Any) -> JobState:
    assert state.fan_out is not None
    branches = dict(state.fan_out.branches)
    branches[str(task_id)] = branch
    return replace(state, fan_out=replace(state.fan_out, branches=branches), version=version, updated_at=at)


def _settle_branch(state: JobState, task_id: Any, outcome: dict[str, Any], version: int, at: Any) -> JobState:
    branch = _branch(state, task_id)
    assert branch is not None
    return _replace_branch(state, task_id, replace(branch, outcome=outcome), version, at)


def _builtins(error: ErrorInfo) -> dict[str, Any]:
    built: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.type is not None:
        built["type"] = error.type
    return built


def _waiting(
    state: JobState,
    event: TaskDispatched | ParallelDispatched | ApprovalRequested | TimerStarted | ChildStarted,
    status: str,
    version: int,
    **waiting_on: Any,
) -> JobState:
    """The job hands off and waits (for a worker, a person, a timer, a child): the handler's changes
    to ``state_history`` are kept, and the fan-in results it was given are spent."""
    return replace(
        state,
        status=status,
        state_history=_merge(state.state_history, event.updates, event.removed),
        aggregation_results=None,
        version=version,
        updated_at=event.at,
        **waiting_on,
    )


def _merge(history: dict[str, Any], updates: dict[str, Any], removed: tuple[str, ...]) -> dict[str, Any]:
    if not updates and not removed:
        return history
    merged = {key: value for key, value in history.items() if key not in removed}
    merged.update(updates)
    return merged
