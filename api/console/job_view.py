"""What the job page shows of a job's events: one row per event, a page of them, a diff of two states.

Plain functions of what the engine returned, so that the page module stays a list of routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from chronik.core.audit import facts_of
from chronik.core.records import RecordedEvent

__all__ = [
    "FAILURE_TYPES",
    "PAGE_SIZE",
    "Change",
    "EventRow",
    "TimelinePage",
    "diff_keys",
    "event_row",
]

PAGE_SIZE: Final = 100
"""Events per timeline page (as the history route's pages go)."""

FAILURE_TYPES: Final = (
    "HandlerFailed",
    "TaskFailed",
    "TaskLost",
    "JobFailed",
    "JobQuarantined",
    "BranchFailed",
    "TimedOut",
    "ApprovalTimedOut",
)
"""The event types the "failures only" filter keeps: something went wrong, or a deadline passed."""

_TASK_EVENTS = frozenset(
    {"TaskCompleted", "TaskFailed", "TaskLost", "TaskRetryScheduled", "TaskResultIgnored", "JobRetried",
     "BranchFailed"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as the timeline shows it."""

    version: int
    type: str
    at: datetime
    recorded_at: datetime
    summary: str
    actor: str
    data: dict[str, Any]
    """The event's own fields, without its type and time."""
    meta: dict[str, Any]
    failure: bool


def event_row(recorded: RecordedEvent) -> EventRow:
    """The row of one stored event: who did what (``core.audit``), and its data and meta to expand."""
    facts = facts_of(recorded.event, None, recorded.meta)
    summary = facts.summary
    if recorded.type in _TASK_EVENTS and facts.task_type is None:
        # The audit names the task's type from the state before the event, which a page of the log
        # does not have (folding up to it would read the whole log): say "the task" instead.
        summary = summary.replace("None", "the task", 1)
    data = msgspec.to_builtins(recorded.event)
    data.pop("type", None)
    data.pop("at", None)
    return EventRow(
        version=recorded.version,
        type=recorded.type,
        at=recorded.event.at,
        recorded_at=recorded.recorded_at,
        summary=summary,
        actor=facts.actor or "",
        data=data,
        meta=recorded.meta,
        failure=recorded.type in FAILURE_TYPES,
    )


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """A page of the timeline, newest first, and the ``upto`` of the pages beside it."""

    rows: list[EventRow]
    upto: int
    """The newest version the page covers; on the newest page, the job's version when it was read
    (new events are those after it)."""
    older: int | None
    newer: int | None
    """None: this is the newest page (the one that follows the job live)."""
    failures: bool

    @property
    def follows(self) -> bool:
        """Whether new events go on top of this page as they happen."""
        return self.newer is None


@dataclass(frozen=True, slots=True)
class Change:
    """A top-level key of ``state_history`` that differs between two versions."""

    key: str
    kind: str
    """``added``, ``removed`` or ``changed``."""
    before: Any = None
    after: Any = None


def diff_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The keys added, removed or changed from ``before`` to ``after``, by key."""
    changes: list[Change] = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(Change(key, "added", after=after[key]))
        elif key not in after:
            changes.append(Change(key, "removed", before=before[key]))
        elif _plain(before[key]) != _plain(after[key]):
            changes.append(Change(key, "changed", before=before[key], after=after[key]))
    return changes


def _plain(value: Any) -> Any:
    # 1 and 1.0, True and 1 are equal in Python but not in JSON, which is what the job holds.
    return msgspec.json.encode(value, order="sorted")
