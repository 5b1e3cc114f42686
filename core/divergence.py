"""Re-deciding history with today's handlers: where would the current code have chosen otherwise?

A job's log records what each handler run decided. Replaying it, every group of
events a handler run produced is decided again from the state the log gives at
that point, by the blueprint as it is now, and the two are compared. History is
not changed: the walk always continues with what was recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any
from uuid import UUID, uuid4

import msgspec

from .events import (
    AnyEvent,
    ApprovalRequested,
    BranchesJoined,
    ChildStarted,
    FilesStored,
    HandlerFailed,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobForked,
    ParallelDispatched,
    StateEntered,
    TaskDispatched,
    TimedOut,
)
from .evolve import evolve
from .state import JobState, JobStatus

__all__ = ["Divergence", "HandlerRun", "handler_runs", "recorded_ids"]


class HandlerRun(msgspec.Struct, frozen=True):
    """The events one handler run appended, and the job's state just before them."""

    version: int
    """The version of the first of them."""
    before: JobState
    events: tuple[AnyEvent, ...]


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """A handler run whose outcome today's code would decide differently."""

    version: int
    state: str
    recorded: list[dict[str, Any]]
    decided: list[dict[str, Any]]


def handler_runs(events: Sequence[AnyEvent]) -> Iterator[HandlerRun]:
    """The handler runs in a job's history, each with the state it started from.

    A handler runs once a job has entered a state (JobCreated, StateEntered,
    BranchesJoined) and is ``running``; what follows, unless an outside event (a
    cancel, a deadline), is what the handler decided: one event, or a HandlerFailed
    and its JobFailed. (A worker's result also leaves a job ``running`` for a
    moment, but the StateEntered after it is the result's, not a handler's.)
    """
    state: JobState | None = None
    index = 0
    entered = False
    while index < len(events):
        event = events[index]
        if isinstance(event, FilesStored | JobForked):
            # A record (what a handler or task stored, a fork taken), not a decision: it leaves the
            # walk as it is.
            state = evolve(state, event)
            index += 1
            continue
        if (
            entered
            and state is not None
            and state.status == JobStatus.RUNNING
            and not isinstance(event, JobCancelled | TimedOut)
        ):
            group: tuple[AnyEvent, ...] = (event,)
            if (
                isinstance(event, HandlerFailed)
                and index + 1 < len(events)
                and isinstance(events[index + 1], JobFailed)
            ):
                group = (event, events[index + 1])
            yield HandlerRun(index + 1, state, group)
            for item in group:
                state = evolve(state, item)
            index += len(group)
            entered = isinstance(group[-1], StateEntered)
            continue
        state = evolve(state, event)
        index += 1
        entered = isinstance(event, JobCreated | StateEntered | BranchesJoined)


def recorded_ids(events: Sequence[AnyEvent]) -> Callable[[], UUID]:
    """An id source that hands out the ids the recorded events were given, in order.

    Deciding again with it makes today's events comparable with history: a task or
    child job gets the id it had, and only a real difference remains.
    """
    ids: list[UUID] = []
    for event in events:
        if isinstance(event, TaskDispatched):
            ids.append(event.task_id)
        elif isinstance(event, ParallelDispatched):
            ids.extend(branch.task_id for branch in event.branches)
        elif isinstance(event, ChildStarted):
            ids.append(event.child_job_id)
        elif isinstance(event, ApprovalRequested) and event.token:
            ids.append(UUID(hex=event.token))  # the public link's token is a uuid4's hex
    pool = iter(ids)
    return lambda: next(pool, None) or uuid4()
