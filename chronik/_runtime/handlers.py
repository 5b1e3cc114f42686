"""Running one handler: inject its arguments, await it, and capture what it did.

The handler runs outside any database transaction. Whatever it does, the result
is a ``HandlerOutcome``; exceptions become data here, so the decider can record them.
"""

from __future__ import annotations

import copy
import inspect
import traceback
from typing import Any

import msgspec

from chronik.core.actions import Action, Actions, DispatchParallel, DispatchTask, RunBlueprint
from chronik.core.blueprint import Blueprint
from chronik.core.decide import HandlerOutcome, history_diff
from chronik.core.errors import ChronikError
from chronik.core.events import ErrorInfo
from chronik.core.injection import JobContext, build_arguments
from chronik.core.state import JobState

__all__ = ["run_handler"]


async def run_handler(blueprint: Blueprint, state: JobState, *, task_files: Any = None) -> HandlerOutcome:
    """Run the handler of the job's current state and return what it produced."""
    if state.current_state not in blueprint.states:
        return HandlerOutcome(state=state.current_state)
    # Handlers get copies: what they change in state_history is recorded as a diff,
    # never written into the state that the fold owns.
    history = copy.deepcopy(state.state_history)
    actions = Actions(state.current_state)
    context = JobContext(
        job_id=state.job_id,
        blueprint=state.blueprint,
        current_state=state.current_state,
        initial_data=copy.deepcopy(state.initial_data),
        state_history=history,
        actions=actions,
        data_stores=blueprint.data_stores,
        aggregation_results=copy.deepcopy(state.aggregation_results or {}),
        task_files=task_files,
    )
    roots = {"context": context, "initial_data": context.initial_data, "state_history": history}
    try:
        chosen = blueprint.handler_of(state.current_state, roots)
        assert chosen is not None
        handler, parameters = chosen
        result = handler(**build_arguments(parameters, context))
        if inspect.isawaitable(result):
            await result
    except ChronikError as exc:
        return _failed(state, ErrorInfo(code=exc.code, type=type(exc).__name__, message=exc.message))
    except Exception as exc:
        error = ErrorInfo(code="HANDLER_ERROR", type=type(exc).__name__, message=str(exc) or repr(exc))
        return _failed(state, error, traceback.format_exc())
    updates, removed = history_diff(state.state_history, history)
    action = actions.taken
    try:
        # A round trip through JSON makes the live state equal to what a reload from the log gives.
        updates = msgspec.json.decode(msgspec.json.encode(updates))
        action = _as_json(action)
    except (TypeError, msgspec.EncodeError) as exc:
        error = ErrorInfo(
            code="HANDLER_ERROR",
            type="TypeError",
            message=f"the handler of state {state.current_state!r} gave a value that is not JSON "
            f"(in state_history, task params or a child's initial_data): {exc}",
        )
        return _failed(state, error)
    return HandlerOutcome(state=state.current_state, action=action, updates=updates, removed=removed)


def _as_json(action: Action | None) -> Action | None:
    """The action with the data it hands on passed through JSON, as it will be stored."""
    match action:
        case DispatchTask():
            return msgspec.structs.replace(action, params=_round_trip(action.params))
        case DispatchParallel():
            branches = tuple(
                msgspec.structs.replace(branch, params=_round_trip(branch.params))
                for branch in action.branches
            )
            return msgspec.structs.replace(action, branches=branches)
        case RunBlueprint():
            return msgspec.structs.replace(action, initial_data=_round_trip(action.initial_data))
        case _:
            return action


def _round_trip(value: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(value))
    return decoded


def _failed(state: JobState, error: ErrorInfo, trace: str = "") -> HandlerOutcome:
    return HandlerOutcome(state=state.current_state, error=error, traceback=trace)
