"""Approvals: a person's decision on a job waiting for one.

A job waits after its handler calls ``actions.await_human_approval``; the
decision moves it along ``transitions[decision]``. The ``timeout`` transition is
where the approval's deadline leads (see ``deadlines.decide_due``).
"""

from __future__ import annotations

import hmac
from datetime import datetime

from .errors import InvalidDecision, JobNotAwaitingApproval, JobNotFound
from .events import AnyEvent, ApprovalGiven, StateEntered
from .state import JobState, JobStatus

__all__ = [
    "TIMEOUT_DECISION",
    "decide_approval",
    "decisions_of",
]


def decide_approval(
    state: JobState,
    decision: str,
    at: datetime,
    *,
    comment: str = "",
    actor: str = "",
    token: str | None = None,
) -> tuple[AnyEvent, ...]:
    """A person's decision on a job waiting for one: it moves to ``transitions[decision]``.

    With ``token`` (the public approval link), the decision counts only if it is the open
    request's token; any other answers as an unknown job does, so the link reveals nothing.
    """
    approval = state.approval
    if token is not None and (
        approval is None
        or not approval.token
        or not hmac.compare_digest(token.encode(), approval.token.encode())
    ):
        raise JobNotFound(f"no job has the id {state.job_id}")
    if state.status != JobStatus.WAITING_FOR_HUMAN or approval is None:
        raise JobNotAwaitingApproval(f"job {state.job_id} is {state.status!r}, not waiting for a decision")
    if approval.timeout_at is not None and at >= approval.timeout_at:
        # Its deadline has passed; the watcher is about to follow "timeout". A late decision loses.
        raise JobNotAwaitingApproval(
            f"job {state.job_id} stopped waiting for a decision at {approval.timeout_at}"
        )
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
