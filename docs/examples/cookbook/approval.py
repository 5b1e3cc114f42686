"""Human approval: small refunds go through, large ones wait for a person, with a deadline.

Run it with the cookbook (docs/blueprints.md) and ``POST /api/v1/jobs/refunds``;
decide with ``POST /api/v1/jobs/{id}/approval``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

bp = Blueprint("refunds", api_endpoint="refunds")

TWO_DAYS = 2 * 24 * 3600


@bp.handler_for("review", is_start=True)
async def small_refund(actions: Actions) -> None:
    actions.transition_to("refund")


@bp.handler_for("review").when("initial_data.amount > 50")
async def ask_support(order_id: str, amount: float, initial_data: dict[str, Any], actions: Actions) -> None:
    actions.await_human_approval(
        f"Refund {amount:.2f} EUR for order {order_id}?",
        transitions={"approved": "refund", "rejected": "declined", "timeout": "escalated"},
        timeout_seconds=initial_data.get("decide_within_seconds", TWO_DAYS),
    )


@bp.handler_for("refund")
async def refund(order_id: str, amount: float, actions: Actions) -> None:
    actions.dispatch_task(
        "refund_payment", {"order_id": order_id, "amount": amount}, transitions={"success": "refunded"}
    )


@bp.handler_for("refunded", is_end=True)
async def refunded(refund_id: str, state_history: dict[str, Any]) -> None:
    state_history["refunded"] = {"refund_id": refund_id}


@bp.handler_for("declined", is_end=True)
async def declined(state_history: dict[str, Any]) -> None:
    state_history["declined"] = {"refunded": False}


@bp.handler_for("escalated", is_end=True, is_failure=True)
async def escalated(state_history: dict[str, Any]) -> None:
    state_history["escalated"] = {"reason": "nobody decided in time; a supervisor takes over"}
