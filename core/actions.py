"""The actions a handler takes: exactly one per run, recorded, never executed here.

A handler receives an ``Actions`` object and calls one of its methods; the call
only records the intent. The decider turns the recorded action into events
after the handler has returned, so nothing a handler does is half-applied.
"""

from __future__ import annotations

import msgspec

from .errors import ActionError

__all__ = ["Action", "Actions", "TransitionTo", "describe_action"]


class TransitionTo(msgspec.Struct, frozen=True, tag="transition_to"):
    """Move the job to ``state``."""

    state: str


Action = TransitionTo


def describe_action(action: Action) -> str:
    """The action as the call that made it, for error messages."""
    return f"actions.transition_to({action.state!r})"


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

    def _take(self, action: Action) -> None:
        if self._taken is not None:
            raise ActionError(
                f"the handler of state {self._state!r} called {describe_action(action)} after "
                f"{describe_action(self._taken)}; a handler takes exactly one action per run"
            )
        self._taken = action
