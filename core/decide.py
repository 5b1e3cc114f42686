"""Deciders: from a job's state and what happened, the events to append.

Each decider is pure and returns a tuple of events; the engine loads, decides
and appends. Deciding again after a version conflict is always safe. A person's
decision is decided in ``approvals``, a passed deadline or timer in ``deadlines``.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import datetime, timedelta
from typing import Any, assert_never
from uuid import UUID, uuid4

import msgspec

from .actions import Action, AwaitApproval, DispatchParallel, DispatchTask, RunBlueprint, Sleep, TransitionTo
from .blueprint import Blueprint
from .errors import BlueprintError, JobNotCancellable
from .events import (
    AnyEvent,
    ApprovalRequested,
    BranchSpec,
    ChildEnded,
    ChildStarted,
    ErrorInfo,
    HandlerFailed,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobFinished,
    ParallelDispatched,
    StateEntered,
    TaskDispatched,
    TimerStarted,
)
from .ids import new_job_id
from .state import ACTIVE_STATUSES, JobState, JobStatus, result_of

__all__ = [
    "HandlerOutcome",
    "decide_cancel",
    "decide_child_ended",
    "decide_create",
    "decide_step",
    "decide_transition_cap",
    "history_diff",
]


class HandlerOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of a handler produced."""

    state: str
    """The state whose handler ran."""
    action: Action | None = None
    error: ErrorInfo | None = None
    traceback: str = ""
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


def history_diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The top-level changes a handler made to ``state_history``."""
    updates = {key: value for key, value in after.items() if key not in before or before[key] != value}
    removed = tuple(key for key in before if key not in after)
    return updates, removed


def decide_create(
    job_id: UUID,
    blueprint: Blueprint,
    initial_data: dict[str, Any],
    at: datetime,
    *,
    parent_job_id: UUID | None = None,
    timeout_seconds: float | None = None,
    webhook_url: str | None = None,
    traceparent: str | None = None,
    client: str = "",
    metadata: dict[str, Any] | None = None,
    max_transitions: int = 0,
    security: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    dispatch_timeout: float | None = None,
) -> tuple[AnyEvent, ...]:
    """The events that create a job; ``timeout_seconds`` overrides the blueprint's job timeout.

    ``client`` owns the job; ``max_transitions`` caps the states it may enter (0: no cap).
    """
    start = blueprint.start_state
    if start is None:
        raise BlueprintError(f"blueprint {blueprint.name!r} has no start state")
    job_timeout = timeout_seconds if timeout_seconds is not None else blueprint.timeout_seconds
    spec = blueprint.states[start]
    return (
        JobCreated(
            at=at,
            job_id=job_id,
            blueprint=blueprint.name,
            start_state=start,
            initial_data=initial_data,
            parent_job_id=parent_job_id,
            deadline_at=None if job_timeout is None else at + timedelta(seconds=job_timeout),
            state_deadline_at=None
            if spec.timeout_seconds is None
            else at + timedelta(seconds=spec.timeout_seconds),
            on_timeout=spec.on_timeout,
            webhook_url=webhook_url,
            traceparent=traceparent,
            client=client,
            metadata=metadata or {},
            max_transitions=max_transitions,
            security=security,
            policy=policy,
            dispatch_timeout=dispatch_timeout,
        ),
    )


def decide_transition_cap(state: JobState, at: datetime) -> tuple[AnyEvent, ...]:
    """The failure of a job that entered more states than its cap allows; empty within the cap.

    Checked before a handler runs, so a blueprint that cycles stops instead of running forever.
    """
    if not state.max_transitions or state.transitions <= state.max_transitions:
        return ()
    error = ErrorInfo(
        code="MAX_TRANSITIONS_EXCEEDED",
        message=f"the job entered states {state.transitions} times, more than its max_transitions of "
        f"{state.max_transitions}: a blueprint that loops on purpose needs a higher max_transitions "
        "(in the create body) or MAX_TRANSITIONS_PER_JOB",
    )
    return (JobFailed(at=at, state=state.current_state, error=error),)


def decide_step(
    state: JobState,
    blueprint: Blueprint,
    outcome: HandlerOutcome,
    at: datetime,
    *,
    new_id: Callable[[], UUID] = uuid4,
    blueprints: Container[str] = (),
) -> tuple[AnyEvent, ...]:
    """The events that follow one handler run of the job's current state.

    ``blueprints`` are the names a child job may be started of (``run_blueprint``).
    """
    if outcome.state != state.current_state or state.status not in ACTIVE_STATUSES:
        # The job moved on while the handler ran (cancelled, or another instance won): drop the outcome.
        return ()
    spec = blueprint.states.get(state.current_state)
    if spec is None:
        error = ErrorInfo(
            code="UNKNOWN_STATE",
            message=f"blueprint {blueprint.name!r} has no handler for state {state.current_state!r}",
        )
        return _fail(state, error, at)
    if outcome.error is not None:
        return (
            HandlerFailed(at=at, state=state.current_state, error=outcome.error, traceback=outcome.traceback),
            JobFailed(at=at, state=state.current_state, error=outcome.error),
        )
    if spec.is_end:
        if outcome.action is not None:
            return _fail(
                state, _action_error(f"the end state {spec.name!r} took an action; end states take none"), at
            )
        if spec.is_failure or state.failure is not None:
            error = state.failure or ErrorInfo(
                code="FAILURE_STATE", message=f"the job ended in the failure state {spec.name!r}"
            )
            return (
                JobFailed(
                    at=at, state=spec.name, error=error, updates=outcome.updates, removed=outcome.removed
                ),
            )
        return (JobFinished(at=at, state=spec.name, updates=outcome.updates, removed=outcome.removed),)
    match outcome.action:
        case None:
            return _fail(
                state,
                _action_error(
                    f"the handler of state {spec.name!r} returned without an action; call exactly one, "
                    "e.g. actions.transition_to(...)"
                ),
                at,
            )
        case TransitionTo(state=target):
            if target not in blueprint.states:
                return _fail(
                    state,
                    _action_error(f"the handler of state {spec.name!r} moved to unknown state {target!r}"),
                    at,
                )
            return (
                StateEntered(
                    at=at,
                    state=target,
                    from_state=spec.name,
                    updates=outcome.updates,
                    removed=outcome.removed,
                ),
            )
        case DispatchTask() as task:
            if refused := _unknown_targets(
                state, blueprint, task.transitions, f"dispatched {task.task_type!r}", at
            ):
                return refused
            return (
                TaskDispatched(
                    at=at,
                    task_id=new_id(),
                    task_type=task.task_type,
                    state=spec.name,
                    params=task.params,
                    transitions=task.transitions,
                    timeout_seconds=task.timeout_seconds,
                    max_retries=task.max_retries,
                    priority=task.priority,
                    updates=outcome.updates,
                    removed=outcome.removed,
                    dispatch_timeout=state.dispatch_timeout,
                ),
            )
        case AwaitApproval() as approval:
            if refused := _unknown_targets(state, blueprint, approval.transitions, "awaits approval", at):
                return refused
            timeout_at = (
                None if approval.timeout_seconds is None else at + timedelta(seconds=approval.timeout_seconds)
            )
            return (
                ApprovalRequested(
                    at=at,
                    state=spec.name,
                    message=approval.message,
                    transitions=approval.transitions,
                    updates=outcome.updates,
                    removed=outcome.removed,
                    timeout_at=timeout_at,
                    token=new_id().hex,  # 122 random bits (uuid4): the public link's secret
                ),
            )
        case Sleep(seconds=seconds, then=then):
            if refused := _unknown_targets(state, blueprint, {"then": then}, "sleeps", at):
                return refused
            fire_at = at + timedelta(seconds=seconds)
            return (
                TimerStarted(
                    at=at,
                    state=spec.name,
                    fire_at=fire_at,
                    then=then,
                    updates=outcome.updates,
                    removed=outcome.removed,
                ),
            )
        case DispatchParallel(branches=branches, aggregate_into=into):
            if refused := _unknown_targets(state, blueprint, {"aggregate_into": into}, "fanned out", at):
                return refused
            return (
                ParallelDispatched(
                    at=at,
                    state=spec.name,
                    aggregate_into=into,
                    branches=tuple(
                        BranchSpec(
                            task_id=new_id(),
                            task_type=branch.task_type,
                            params=branch.params,
                            timeout_seconds=branch.timeout_seconds,
                            max_retries=branch.max_retries,
                            priority=branch.priority,
                        )
                        for branch in branches
                    ),
                    updates=outcome.updates,
                    removed=outcome.removed,
                ),
            )
        case RunBlueprint() as run:
            if run.blueprint not in blueprints:
                message = f"the handler of state {spec.name!r} ran unknown blueprint {run.blueprint!r}"
                return _fail(state, _action_error(message), at)
            if refused := _unknown_targets(
                state, blueprint, run.transitions, f"ran blueprint {run.blueprint!r}", at
            ):
                return refused
            return (
                ChildStarted(
                    at=at,
                    state=spec.name,
                    child_job_id=new_job_id(at, seed=new_id()),
                    blueprint=run.blueprint,
                    transitions=run.transitions,
                    updates=outcome.updates,
                    removed=outcome.removed,
                ),
            )
        case _:
            assert_never(outcome.action)


def decide_cancel(
    state: JobState, at: datetime, *, reason: str = "", actor: str = ""
) -> tuple[AnyEvent, ...]:
    """The events that cancel a job; a job that has ended cannot be cancelled."""
    if state.is_terminal:
        raise JobNotCancellable(f"job {state.job_id} has already ended with status {state.status!r}")
    return (JobCancelled(at=at, reason=reason, actor=actor),)


def decide_child_ended(state: JobState, child: JobState, at: datetime) -> tuple[AnyEvent, ...]:
    """A job's child ended: the job moves on by the child's outcome. Nothing while the child runs."""
    waiting = state.child
    if state.status != JobStatus.WAITING_FOR_CHILD or waiting is None or waiting.job_id != child.job_id:
        return ()
    if not child.is_terminal:
        return ()
    result = result_of(child)
    ended = ChildEnded(
        at=at, child_job_id=child.job_id, status=child.status, result=result, error=child.error
    )
    if child.status == JobStatus.FINISHED:
        target = waiting.transitions.get("success")
    elif child.status == JobStatus.CANCELLED:
        target = waiting.transitions.get("cancelled", waiting.transitions.get("failure"))
    else:
        target = waiting.transitions.get("failure")
    if target is None:
        reason = child.error.message if child.error is not None else child.status
        error = ErrorInfo(
            code="CHILD_FAILED",
            message=f"child job {child.job_id} of blueprint {child.blueprint!r} ended {child.status!r} "
            f"({reason}) and state {waiting.state!r} has no transition for it",
        )
        return (ended, JobFailed(at=at, state=waiting.state, error=error))
    # A finished child's result is merged like a worker's: only an object, top-level keys.
    updates = result if child.status == JobStatus.FINISHED and isinstance(result, dict) else {}
    return (ended, StateEntered(at=at, state=target, from_state=waiting.state, updates=updates))


def _unknown_targets(
    state: JobState, blueprint: Blueprint, transitions: dict[str, str], doing: str, at: datetime
) -> tuple[AnyEvent, ...]:
    """The failure of an action whose transitions name states the blueprint lacks; empty when none."""
    unknown = [target for target in transitions.values() if target not in blueprint.states]
    if not unknown:
        return ()
    message = (
        f"the handler of state {state.current_state!r} {doing} with transitions to unknown state(s) "
        f"{', '.join(map(repr, unknown))}"
    )
    return _fail(state, _action_error(message), at)


def _action_error(message: str) -> ErrorInfo:
    return ErrorInfo(code="ACTION_ERROR", type="ActionError", message=message)


def _fail(state: JobState, error: ErrorInfo, at: datetime) -> tuple[AnyEvent, ...]:
    return (
        HandlerFailed(at=at, state=state.current_state, error=error),
        JobFailed(at=at, state=state.current_state, error=error),
    )
