"""The actions a handler takes: exactly one per run, recorded, never executed here.

A handler receives an ``Actions`` object and calls one of its methods; the call
only records the intent. The decider turns the recorded action into events
after the handler has returned, so nothing a handler does is half-applied.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import ActionError

__all__ = ["Action", "Actions", "AwaitApproval", "DispatchTask", "Sleep", "TransitionTo", "describe_action"]


class TransitionTo(msgspec.Struct, frozen=True, tag="transition_to"):
    """Move the job to ``state``."""

    state: str


class DispatchTask(msgspec.Struct, frozen=True, kw_only=True, tag="dispatch_task"):
    """Hand a task to a worker; the job moves on by ``transitions[result status]``."""

    task_type: str
    params: dict[str, Any] = {}
    transitions: dict[str, str]
    timeout_seconds: float | None = None
    max_retries: int = 3
    priority: int = 0


class AwaitApproval(msgspec.Struct, frozen=True, kw_only=True, tag="await_human_approval"):
    """Wait for a person's decision; the job moves on by ``transitions[decision]``."""

    message: str
    transitions: dict[str, str]
    timeout_seconds: float | None = None


class Sleep(msgspec.Struct, frozen=True, kw_only=True, tag="sleep"):
    """Wait ``seconds``, durably, then move to ``then``."""

    seconds: float
    then: str


Action = TransitionTo | DispatchTask | AwaitApproval | Sleep


_INT32 = 2**31
_MAX_RETRIES = 1000
_MAX_SECONDS = 365 * 24 * 3600


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def describe_action(action: Action) -> str:
    """The action as the call that made it, for error messages."""
    match action:
        case TransitionTo(state=state):
            return f"actions.transition_to({state!r})"
        case DispatchTask(task_type=task_type):
            return f"actions.dispatch_task({task_type!r}, ...)"
        case AwaitApproval():
            return "actions.await_human_approval(...)"
        case Sleep(then=then):
            return f"actions.sleep(..., then={then!r})"


class Actions:
    """What a handler can do with its job. Call exactly one method per handler run."""

    def __init__(self, state: str) -> None:
        self._state = state
        self._taken: Action | None = None

    @property
    def taken(self) -> Action | None:
        """The action the handler took, if any."""
        return self._taken

    def transition_to(self, state: str) -> None:
        """Move the job to ``state`` once the handler returns."""
        if not isinstance(state, str) or not state:
            raise ActionError(f"actions.transition_to() needs a state name, got {state!r}")
        self._take(TransitionTo(state))

    def dispatch_task(
        self,
        task_type: str,
        params: dict[str, Any] | None = None,
        *,
        transitions: dict[str, str],
        timeout_seconds: float | None = None,
        max_retries: int = 3,
        priority: int = 0,
    ) -> None:
        """Hand ``task_type`` with ``params`` to a worker once the handler returns.

        Args:
            task_type: The skill a worker must have.
            params: JSON parameters for the worker.
            transitions: The next state for each result status the worker may return
                (``"success"``, ``"failure"``, or any custom status).
            timeout_seconds: Time one attempt may run after a worker took it; past it,
                the attempt fails with TIMEOUT_ERROR. None: no limit beyond the lease.
            max_retries: Retries after the first attempt for retryable errors;
                then the job is quarantined.
            priority: Higher runs first; equal priorities run oldest first.
        """
        if not isinstance(task_type, str) or not task_type:
            raise ActionError(f"actions.dispatch_task() needs a task type, got {task_type!r}")
        if not isinstance(transitions, dict) or not transitions:
            raise ActionError("actions.dispatch_task() needs transitions, e.g. {'success': 'next_state'}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in transitions.items()):
            raise ActionError(
                f"actions.dispatch_task(): transitions must map status names to states: {transitions!r}"
            )
        if params is not None and not isinstance(params, dict):
            raise ActionError(f"actions.dispatch_task(): params must be a dict, got {type(params).__name__}")
        if timeout_seconds is not None and (
            not isinstance(timeout_seconds, int | float) or not 0 < timeout_seconds <= _MAX_SECONDS
        ):
            raise ActionError(
                f"actions.dispatch_task(): timeout_seconds must be positive seconds, at most {_MAX_SECONDS}, "
                f"got {timeout_seconds!r}"
            )
        if not _is_int(max_retries) or not 0 <= max_retries <= _MAX_RETRIES:
            raise ActionError(
                f"actions.dispatch_task(): max_retries must be an int from 0 to {_MAX_RETRIES}, "
                f"got {max_retries!r}"
            )
        if not _is_int(priority) or not -_INT32 <= priority < _INT32:
            raise ActionError(f"actions.dispatch_task(): priority must be a 32-bit int, got {priority!r}")
        self._take(
            DispatchTask(
                task_type=task_type,
                params=dict(params or {}),
                transitions=dict(transitions),
                timeout_seconds=timeout_seconds,
                max_retries=max_retries,
                priority=priority,
            )
        )

    def await_human_approval(
        self, message: str = "", *, transitions: dict[str, str], timeout_seconds: float | None = None
    ) -> None:
        """Wait for a person's decision (``POST /api/v1/jobs/{id}/approval``) once the handler returns.

        Args:
            message: What the person is asked, shown with the job.
            transitions: The next state for each decision, e.g. ``{"approved": "ship"}``; a
                ``"timeout"`` entry is where the job goes when nobody decides in time.
            timeout_seconds: How long to wait, durably; then ``transitions["timeout"]``, or the
                job fails with ``APPROVAL_TIMEOUT`` when there is no such entry. None: forever.
        """
        if not isinstance(transitions, dict) or not transitions:
            raise ActionError(
                "actions.await_human_approval() needs transitions, e.g. {'approved': 'next_state'}"
            )
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in transitions.items()):
            raise ActionError(
                f"actions.await_human_approval(): transitions must map decisions to states: {transitions!r}"
            )
        if timeout_seconds is not None and (
            not isinstance(timeout_seconds, int | float)
            or isinstance(timeout_seconds, bool)
            or not 0 < timeout_seconds <= _MAX_SECONDS
        ):
            raise ActionError(
                f"actions.await_human_approval(): timeout_seconds must be positive seconds, at most "
                f"{_MAX_SECONDS}, got {timeout_seconds!r}"
            )
        self._take(
            AwaitApproval(
                message=str(message), transitions=dict(transitions), timeout_seconds=timeout_seconds
            )
        )

    def sleep(self, seconds: float, *, then: str) -> None:
        """Wait ``seconds`` and then move the job to ``then``.

        The timer is a row in PostgreSQL, not a task in memory: it survives restarts
        and fires on whichever instance is running then.
        """
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 <= seconds <= _MAX_SECONDS
        ):
            raise ActionError(f"actions.sleep() needs seconds from 0 to {_MAX_SECONDS}, got {seconds!r}")
        if not isinstance(then, str) or not then:
            raise ActionError(f"actions.sleep() needs then=<state>, got {then!r}")
        self._take(Sleep(seconds=float(seconds), then=then))

    def _take(self, action: Action) -> None:
        if self._taken is not None:
            raise ActionError(
                f"the handler of state {self._state!r} called {describe_action(action)} after "
                f"{describe_action(self._taken)}; a handler takes exactly one action per run"
            )
        self._taken = action
