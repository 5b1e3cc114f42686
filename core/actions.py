"""The actions a handler takes: exactly one per run, recorded, never executed here.

A handler receives an ``Actions`` object and calls one of its methods; the call
only records the intent. The decider turns the recorded action into events
after the handler has returned, so nothing a handler does is half-applied.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import ActionError

__all__ = [
    "MAX_BRANCHES",
    "Action",
    "Actions",
    "AwaitApproval",
    "Branch",
    "DispatchParallel",
    "DispatchTask",
    "RunBlueprint",
    "Sleep",
    "TransitionTo",
    "describe_action",
]


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


class Branch(msgspec.Struct, frozen=True, kw_only=True):
    """One task of a fan-out."""

    task_type: str
    params: dict[str, Any] = {}
    timeout_seconds: float | None = None
    max_retries: int = 3
    priority: int = 0


class DispatchParallel(msgspec.Struct, frozen=True, kw_only=True, tag="dispatch_parallel"):
    """Hand every branch to the workers at once; the job enters ``aggregate_into`` when all are in."""

    branches: tuple[Branch, ...]
    aggregate_into: str


class RunBlueprint(msgspec.Struct, frozen=True, kw_only=True, tag="run_blueprint"):
    """Start a child job of ``blueprint``; the job moves on by ``transitions[child outcome]``."""

    blueprint: str
    initial_data: dict[str, Any] = {}
    transitions: dict[str, str]


Action = TransitionTo | DispatchTask | AwaitApproval | Sleep | DispatchParallel | RunBlueprint

MAX_BRANCHES = 10_000
"""The most branches one fan-out may have: every branch is a row, and the job's state lists them all."""


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
        case DispatchParallel(aggregate_into=aggregate_into):
            return f"actions.dispatch_parallel(..., aggregate_into={aggregate_into!r})"
        case RunBlueprint(blueprint=blueprint):
            return f"actions.run_blueprint({blueprint!r}, ...)"


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
        branch = _branch(
            "actions.dispatch_task()",
            task_type=task_type,
            params=params,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            priority=priority,
        )
        _check_transitions("actions.dispatch_task()", transitions, "status names", "success")
        self._take(
            DispatchTask(
                task_type=branch.task_type,
                params=branch.params,
                transitions=dict(transitions),
                timeout_seconds=branch.timeout_seconds,
                max_retries=branch.max_retries,
                priority=branch.priority,
            )
        )

    def dispatch_parallel(self, tasks: list[dict[str, Any]], *, aggregate_into: str) -> None:
        """Fan out: hand every task to the workers at once, then fan in at ``aggregate_into``.

        Args:
            tasks: One dict per branch with ``task_type`` and optionally ``params``,
                ``timeout_seconds``, ``max_retries`` and ``priority`` (as for ``dispatch_task``).
            aggregate_into: The state the job enters once every branch is in; its handler
                (``@bp.aggregator_for(...)``) gets ``aggregation_results``: for each branch's
                task id, ``{"task_type", "status", "data"}`` or, for a branch that failed for
                good, ``{"task_type", "status": "failure", "error": {"code", "message"}}``.

        A branch's retryable errors are retried like a single task's; a branch that runs
        out of retries, or fails with an error no retry can fix, is handed to the
        aggregator as failed instead of quarantining the whole job.
        """
        where = "actions.dispatch_parallel()"
        if not isinstance(tasks, list | tuple) or not tasks:
            raise ActionError(f"{where} needs a non-empty list of tasks, got {tasks!r}")
        if len(tasks) > MAX_BRANCHES:
            raise ActionError(f"{where}: at most {MAX_BRANCHES} tasks per fan-out, got {len(tasks)}")
        branches = []
        for index, task in enumerate(tasks):
            if not isinstance(task, dict):
                raise ActionError(f"{where}: tasks[{index}] must be a dict with 'task_type', got {task!r}")
            unknown = set(task) - {"task_type", "params", "timeout_seconds", "max_retries", "priority"}
            if unknown:
                raise ActionError(f"{where}: tasks[{index}] has unknown keys {sorted(unknown)!r}")
            branches.append(_branch(f"{where}: tasks[{index}]", **task))
        if not isinstance(aggregate_into, str) or not aggregate_into:
            raise ActionError(f"{where} needs aggregate_into=<state>, got {aggregate_into!r}")
        self._take(DispatchParallel(branches=tuple(branches), aggregate_into=aggregate_into))

    def run_blueprint(
        self,
        blueprint: str,
        initial_data: dict[str, Any] | None = None,
        *,
        transitions: dict[str, str],
    ) -> None:
        """Start a child job of ``blueprint`` and wait for it to end.

        Args:
            blueprint: The child blueprint's name, registered on the same engine.
            initial_data: The child's initial data.
            transitions: The next state for each way the child ends: ``"success"``
                (finished), ``"failure"`` (failed), and optionally ``"cancelled"``
                (else a cancelled child counts as ``"failure"``). A finished child's
                result, when it is an object, is merged into ``state_history``.
        """
        where = "actions.run_blueprint()"
        if not isinstance(blueprint, str) or not blueprint:
            raise ActionError(f"{where} needs a blueprint name, got {blueprint!r}")
        if initial_data is not None and not isinstance(initial_data, dict):
            raise ActionError(f"{where}: initial_data must be a dict, got {type(initial_data).__name__}")
        _check_transitions(where, transitions, "outcomes", "success")
        unknown = set(transitions) - {"success", "failure", "cancelled"}
        if unknown:
            raise ActionError(
                f"{where}: transitions may name 'success', 'failure' and 'cancelled', not {sorted(unknown)!r}"
            )
        self._take(
            RunBlueprint(
                blueprint=blueprint, initial_data=dict(initial_data or {}), transitions=dict(transitions)
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
        _check_transitions("actions.await_human_approval()", transitions, "decisions", "approved")
        check_timeout("actions.await_human_approval()", timeout_seconds)
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


def check_timeout(where: str, timeout_seconds: object) -> None:
    """Refuse a timeout that is not positive seconds (None: no timeout)."""
    if timeout_seconds is not None and (
        not isinstance(timeout_seconds, int | float)
        or isinstance(timeout_seconds, bool)
        or not 0 < timeout_seconds <= _MAX_SECONDS
    ):
        raise ActionError(
            f"{where}: timeout_seconds must be positive seconds, at most {_MAX_SECONDS}, "
            f"got {timeout_seconds!r}"
        )


def _check_transitions(where: str, transitions: object, keys: str, example: str) -> None:
    if not isinstance(transitions, dict) or not transitions:
        raise ActionError(f"{where} needs transitions, e.g. {{{example!r}: 'next_state'}}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in transitions.items()):
        raise ActionError(f"{where}: transitions must map {keys} to states: {transitions!r}")


def _branch(
    where: str,
    *,
    task_type: object = None,
    params: object = None,
    timeout_seconds: object = None,
    max_retries: object = 3,
    priority: object = 0,
) -> Branch:
    """One task's options, checked: what dispatch_task and each fan-out branch share."""
    if not isinstance(task_type, str) or not task_type:
        raise ActionError(f"{where} needs a task type, got {task_type!r}")
    if params is not None and not isinstance(params, dict):
        raise ActionError(f"{where}: params must be a dict, got {type(params).__name__}")
    check_timeout(where, timeout_seconds)
    if not _is_int(max_retries) or not 0 <= max_retries <= _MAX_RETRIES:  # type: ignore[operator]
        raise ActionError(
            f"{where}: max_retries must be an int from 0 to {_MAX_RETRIES}, got {max_retries!r}"
        )
    if not _is_int(priority) or not -_INT32 <= priority < _INT32:  # type: ignore[operator]
        raise ActionError(f"{where}: priority must be a 32-bit int, got {priority!r}")
    return Branch(
        task_type=task_type,
        params=dict(params or {}),
        # A float, as the event decodes it: the live row and a refold of the log must be the same bytes.
        timeout_seconds=None if timeout_seconds is None else float(timeout_seconds),  # type: ignore[arg-type]
        max_retries=max_retries,  # type: ignore[arg-type]
        priority=priority,  # type: ignore[arg-type]
    )
