"""Deadlines and timers: when a job needs the engine again, and what fires then.

A job needs a step now while a handler waits to run (``needs_step``), and
otherwise at its earliest deadline or timer (``wakes_at``); when that time
comes, ``decide_due`` decides what fires. State deadlines are written into the
log by ``stamp_state_deadlines``, so the fold never needs the blueprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from .approvals import TIMEOUT_DECISION
from .blueprint import Blueprint
from .events import (
    AnyEvent,
    ApprovalTimedOut,
    BranchesJoined,
    ErrorInfo,
    JobFailed,
    StateEntered,
    TimedOut,
    TimerFired,
)
from .state import ACTIVE_STATUSES, JobState, JobStatus

__all__ = [
    "decide_due",
    "needs_step",
    "stamp_state_deadlines",
    "wakes_at",
]


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
