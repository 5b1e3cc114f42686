"""Forks: a new job started from another job's state as of one of its versions.

The new job has the source's blueprint, ``initial_data`` and ``state_history`` as
of that version, and starts in the state the source was in then: that state's
handler runs again (if the source was waiting for a worker, a person or a timer
there, the handler that started the wait runs again and starts a new one). Its
``JobCreated`` names the source (``forked_from``); the source's stream records the
fork (``JobForked``), which changes nothing else of the source, ended or not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec
from msgspec.structs import replace

from .blueprint import Blueprint
from .errors import InvalidInput
from .events import AnyEvent, ForkedFrom, JobCreated, JobForked
from .state import JobState

__all__ = ["Fork", "decide_fork", "only_recorded_since"]


class Fork(msgspec.Struct, frozen=True, kw_only=True):
    """The events of one fork: appended to the source, and creating the new job."""

    recorded: tuple[AnyEvent, ...]
    """Appended to the source's stream: its ``JobForked``."""
    created: tuple[AnyEvent, ...]
    """The new job's stream: its ``JobCreated``."""


def decide_fork(
    source: JobState,
    then: JobState,
    blueprint: Blueprint,
    new_job_id: UUID,
    at: datetime,
    *,
    actor: str = "",
    webhook_url: str | None = None,
    traceparent: str | None = None,
    max_transitions: int = 0,
) -> Fork:
    """Fork ``source`` (its current state) as it was in ``then`` (its state as of some version).

    What the new job takes from the source: the blueprint, ``initial_data``, ``state_history``
    and state as of ``then``; and, from the source as it is, its client, its ``metadata``, its
    job timeout (the same length, from now), ``dispatch_timeout`` and ``max_transitions``
    (``max_transitions`` here when the source has none). Not taken: the webhook (``webhook_url``
    here, if any), the parent (a fork is nobody's child), children, files and the count of
    transitions. Raises ``InvalidInput`` when the blueprint no longer has that state.
    """
    start = then.current_state
    spec = blueprint.states.get(start)
    if spec is None:
        raise InvalidInput(
            f"job {source.job_id} was in state {start!r} at version {then.version}, "
            f"which blueprint {blueprint.name!r} no longer has"
        )
    job_timeout = None if source.deadline_at is None else source.deadline_at - source.created_at
    created = JobCreated(
        at=at,
        job_id=new_job_id,
        blueprint=source.blueprint,
        start_state=start,
        initial_data=dict(then.initial_data),
        state_history=dict(then.state_history),
        deadline_at=None if job_timeout is None else at + job_timeout,
        state_deadline_at=None
        if spec.timeout_seconds is None
        else at + timedelta(seconds=spec.timeout_seconds),
        on_timeout=spec.on_timeout,
        webhook_url=webhook_url,
        traceparent=traceparent,
        client=source.client,
        metadata=dict(source.metadata),
        max_transitions=source.max_transitions or max_transitions,
        dispatch_timeout=source.dispatch_timeout,
        forked_from=ForkedFrom(job_id=source.job_id, version=then.version),
    )
    forked = JobForked(at=at, new_job_id=new_job_id, from_version=then.version, actor=actor)
    return Fork(recorded=(forked,), created=(created,))


def only_recorded_since(decided_on: JobState, now: JobState) -> bool:
    """Whether the job moved from ``decided_on`` to ``now`` by records alone (``JobForked``).

    Then what was decided on ``decided_on`` still holds: the same state, a later version.
    """
    if now.version <= decided_on.version:
        return False
    return replace(now, version=decided_on.version, forks=decided_on.forks) == decided_on
