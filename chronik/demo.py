"""The bundled demo blueprints that ``chronik dev`` serves when no APP is given."""

from __future__ import annotations

from typing import Any

from chronik.core.actions import Actions
from chronik.core.blueprint import Blueprint

__all__ = ["blueprints", "demo", "review"]

demo = Blueprint("demo", api_endpoint="demo", description="Greets someone in three steps.")


@demo.handler_for("start", is_start=True)
async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Actions) -> None:
    """Compose a greeting from ``initial_data.name``."""
    state_history["greeting"] = f"Hello, {initial_data.get('name', 'world')}!"
    actions.transition_to("shout")


@demo.handler_for("shout")
async def shout(greeting: str, state_history: dict[str, Any], actions: Actions) -> None:
    """Shout the greeting; ``greeting`` is injected from ``state_history``."""
    state_history["shouted"] = greeting.upper()
    actions.transition_to("finished")


@demo.handler_for("finished", is_end=True)
async def finished(greeting: str, shouted: str, state_history: dict[str, Any]) -> None:
    """Record the job's result under the end state's name."""
    state_history["finished"] = {"greeting": greeting, "shouted": shouted}


review = Blueprint("review", api_endpoint="review", description="Approves small amounts, rejects large ones.")


@review.handler_for("check", is_start=True)
async def check(initial_data: dict[str, Any], actions: Actions) -> None:
    """Route by ``initial_data.amount``."""
    if float(initial_data.get("amount", 0)) <= 1000:
        actions.transition_to("approved")
    else:
        actions.transition_to("rejected")


@review.handler_for("approved", is_end=True)
async def approved(state_history: dict[str, Any]) -> None:
    """The job finishes."""
    state_history["approved"] = {"decision": "approved"}


@review.handler_for("rejected", is_end=True, is_failure=True)
async def rejected(state_history: dict[str, Any]) -> None:
    """The job fails: ``rejected`` is a failure state."""
    state_history["rejected"] = {"decision": "rejected", "reason": "amount over 1000"}


blueprints = [demo, review]
"""What ``chronik dev`` loads by default (``chronik.demo:blueprints``)."""
