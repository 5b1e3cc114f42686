"""The bundled demo that ``chronik dev`` serves when no APP is given: blueprints and a worker.

``demo`` greets someone: it composes a greeting, hands it to a worker task that
shouts it (``chronik dev`` starts that worker as a separate process), and ends
with both. ``review`` routes by amount and shows a failure end state.
"""

from __future__ import annotations

from typing import Any

from chronik.core.actions import Actions
from chronik.core.blueprint import Blueprint

from .worker import TaskError, Worker

__all__ = ["blueprints", "demo", "review", "worker"]

demo = Blueprint("demo", api_endpoint="demo", description="Greets someone, with a worker's help.")


@demo.handler_for("start", is_start=True)
async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Actions) -> None:
    """Compose a greeting from ``initial_data.name`` and hand it to a worker."""
    name = str(initial_data.get("name", "world"))
    greeting = f"Hello, {name}!"
    state_history["greeting"] = greeting
    actions.dispatch_task(
        "shout",
        {"name": name, "text": greeting},
        transitions={"success": "finished", "failure": "failed"},
        timeout_seconds=30,
        max_retries=2,
    )


@demo.handler_for("finished", is_end=True)
async def finished(greeting: str, shouted: str, state_history: dict[str, Any]) -> None:
    """Record the result; ``shouted`` came back from the worker."""
    state_history["finished"] = {"greeting": greeting, "shouted": shouted}


@demo.handler_for("failed", is_end=True, is_failure=True)
async def failed(state_history: dict[str, Any]) -> None:
    """The worker could not shout (an empty name, say)."""
    state_history["failed"] = {"reason": "the worker refused the input"}


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
"""What ``chronik dev`` serves by default (``chronik.demo:blueprints``)."""

worker = Worker(worker_type="chronik-demo", capacity=8)
"""What ``chronik dev`` runs as its worker process (``chronik.demo:worker``)."""


@worker.task("shout")
async def shout(params: dict[str, Any], progress: Any) -> dict[str, Any]:
    """Upper-case ``params.text``, reporting progress on the way."""
    if not str(params.get("name", "")).strip():
        raise TaskError("there is no name to shout", code="INVALID_INPUT_ERROR")
    await progress(50, "shouting")
    return {"shouted": str(params["text"]).upper()}
