"""Deciders: from a job's state and what happened, the events to append.

Each decider is pure and returns a tuple of events; the engine loads, decides
and appends. Deciding again after a version conflict is always safe.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from datetime import datetime, timedelta
from typing import Any, assert_never
from uuid import UUID, uuid4

import msgspec

from .actions import Action, AwaitApproval, DispatchParallel, DispatchTask, RunBlueprint, Sleep, TransitionTo
from .blueprint import Blueprint
from .errors import BlueprintError, InvalidDecision, JobNotAwaitingApproval, JobNotCancellable
from .events import (
    AnyEvent,
    ApprovalGiven,
    ApprovalRequested,
    ApprovalTimedOut,
    BranchesJoined,
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
    TimedOut,
    TimerFired,
    TimerStarted,
)
from .state import ACTIVE_STATUSES, JobState, JobStatus, result_of

__all__ = [
    "TIMEOUT_DECISION",
    "HandlerOutcome",
    "decide_approval",
    "decide_cancel",
    "decide_child_ended",
    "decide_create",
    "decide_due",
    "decide_step",
    "decisions_of",
    "history_diff",
    "needs_step",
    "stamp_state_deadlines",
    "wakes_at",
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
) -> tuple[AnyEvent, ...]:
    """The events that create a job; ``timeout_seconds`` overrides the blueprint's job timeout."""
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
        ),
    )


def stamp_state_deadlines(blueprint: Blueprint | None, events: Sequence[AnyEvent]) -> tuple[AnyEvent, ...]:
    """Write each entered state's deadline (its handler's ``timeout_seconds``) into the event.

    Deciders that move a job on a worker's result or a person's decision do not see
    the blueprint; the store stamps their events before appending, so the fold (and
    any replay) finds the deadline in the log and never needs the blueprint.
    """
    if blueprint is None:
        return tuple(events)
    stamped: list[AnyEvent] = []
    for event in events:
        if isinstance(event, StateEntered | BranchesJoined) and event.state_deadline_at is None:
            spec = blueprint.states.get(event.state)
            if spec is not None and spec.timeout_seconds is not None:
                event = msgspec.structs.replace(
                    event,
                    state_deadline_at=event.at + timedelta(seconds=spec.timeout_seconds),
                    on_timeout=spec.on_timeout,
                )
        stamped.append(event)
    return tuple(stamped)


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
        if spec.is_failure:
            error = ErrorInfo(
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
                    child_job_id=new_id(),
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


def decide_approval(
    state: JobState, decision: str, at: datetime, *, comment: str = "", actor: str = ""
) -> tuple[AnyEvent, ...]:
    """A person's decision on a job waiting for one: it moves to ``transitions[decision]``."""
    approval = state.approval
    if state.status != JobStatus.WAITING_FOR_HUMAN or approval is None:
        raise JobNotAwaitingApproval(f"job {state.job_id} is {state.status!r}, not waiting for a decision")
    # "timeout" is where the deadline leads; nobody can decide it.
    target = approval.transitions.get(decision) if decision != TIMEOUT_DECISION else None
    if target is None:
        raise InvalidDecision(
            f"decision {decision!r} is not one job {state.job_id} offers; "
            f"choose one of {', '.join(map(repr, decisions_of(approval.transitions)))}"
        )
    return (
        ApprovalGiven(at=at, decision=decision, comment=comment, actor=actor),
        StateEntered(at=at, state=target, from_state=approval.state),
    )


TIMEOUT_DECISION = "timeout"
"""The transition an approval follows when its deadline passes; not a decision a person can send."""


def decisions_of(transitions: dict[str, str]) -> list[str]:
    """The decisions a person can send for an approval with these transitions, sorted."""
    return sorted(key for key in transitions if key != TIMEOUT_DECISION)


def decide_due(state: JobState, now: datetime, at: datetime) -> tuple[AnyEvent, ...]:
    """The job's earliest wake time that has come by ``now`` fires; nothing when none has.

    In order of precedence at equal times: the job's deadline, the state's deadline,
    an approval's deadline, a sleep's end. ``now`` is the database's clock (the one
    that made the step due); ``at`` stamps the events.
    """
    if state.is_terminal:
        return ()
    if state.deadline_at is not None and state.deadline_at <= now:
        error = ErrorInfo(
            code="JOB_TIMEOUT", message=f"the job ran past its deadline {state.deadline_at.isoformat()}"
        )
        return (
            TimedOut(at=at, scope="job", state=state.current_state, deadline_at=state.deadline_at),
            JobFailed(at=at, state=state.current_state, error=error),
        )
    if state.state_deadline_at is not None and state.state_deadline_at <= now:
        timed_out = TimedOut(
            at=at, scope="state", state=state.current_state, deadline_at=state.state_deadline_at
        )
        if state.on_timeout is not None:
            return (timed_out, StateEntered(at=at, state=state.on_timeout, from_state=state.current_state))
        error = ErrorInfo(
            code="STATE_TIMEOUT", message=f"the job stayed in state {state.current_state!r} past its timeout"
        )
        return (timed_out, JobFailed(at=at, state=state.current_state, error=error))
    approval = state.approval
    if (
        state.status == JobStatus.WAITING_FOR_HUMAN
        and approval is not None
        and approval.timeout_at is not None
        and approval.timeout_at <= now
    ):
        approval_timed_out = ApprovalTimedOut(at=at, state=approval.state)
        target = approval.transitions.get(TIMEOUT_DECISION)
        if target is not None:
            return (approval_timed_out, StateEntered(at=at, state=target, from_state=approval.state))
        error = ErrorInfo(
            code="APPROVAL_TIMEOUT", message=f"nobody decided on state {approval.state!r} in time"
        )
        return (approval_timed_out, JobFailed(at=at, state=approval.state, error=error))
    timer = state.timer
    if state.status == JobStatus.WAITING_FOR_TIMER and timer is not None and timer.fire_at <= now:
        return (
            TimerFired(at=at, state=timer.state, then=timer.then),
            StateEntered(at=at, state=timer.then, from_state=timer.state),
        )
    return ()


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


def wakes_at(state: JobState) -> datetime | None:
    """When the job must be looked at again without anyone asking: its earliest deadline or timer."""
    if state.is_terminal:
        return None
    times = [state.deadline_at, state.state_deadline_at]
    if state.status == JobStatus.WAITING_FOR_TIMER and state.timer is not None:
        times.append(state.timer.fire_at)
    if state.status == JobStatus.WAITING_FOR_HUMAN and state.approval is not None:
        times.append(state.approval.timeout_at)
    due = [time for time in times if time is not None]
    return min(due) if due else None


def needs_step(state: JobState) -> bool:
    """Whether the job's current state has a handler waiting to run."""
    return state.status in ACTIVE_STATUSES


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
