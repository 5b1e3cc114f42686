"""Child jobs: an order runs the payment blueprint as a job of its own, and goes on by its outcome.

Run it with the cookbook (docs/blueprints.md) and ``POST /api/v1/jobs/fulfilment``;
``payment`` jobs can also be created on their own at ``POST /api/v1/jobs/payment``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

payment = Blueprint("payment")


@payment.handler_for("charge", is_start=True)
async def charge(order_id: str, amount: float, actions: Actions) -> None:
    actions.dispatch_task(
        "charge_card",
        {"order_id": order_id, "amount": amount},
        transitions={"success": "charged", "failure": "declined"},
    )


@payment.handler_for("charged", is_end=True)
async def charged(charge_id: str, state_history: dict[str, Any]) -> None:
    state_history["charged"] = {"charge_id": charge_id}


@payment.handler_for("declined", is_end=True, is_failure=True)
async def card_declined(state_history: dict[str, Any]) -> None:
    state_history["declined"] = {"reason": "the card was declined"}


fulfilment = Blueprint("fulfilment", api_endpoint="fulfilment")


@fulfilment.handler_for("pay", is_start=True)
async def pay(order_id: str, amount: float, actions: Actions) -> None:
    actions.run_blueprint(
        "payment",
        {"order_id": order_id, "amount": amount},
        transitions={"success": "ship", "failure": "payment_failed"},
    )


@fulfilment.handler_for("ship")
async def ship(order_id: str, actions: Actions) -> None:
    actions.dispatch_task(
        "book_shipment", {"order_id": order_id, "service": "standard"}, transitions={"success": "done"}
    )


@fulfilment.handler_for("done", is_end=True)
async def done(charge_id: str, tracking: str, state_history: dict[str, Any]) -> None:
    state_history["done"] = {"charge_id": charge_id, "tracking": tracking}


@fulfilment.handler_for("payment_failed", is_end=True, is_failure=True)
async def payment_failed(state_history: dict[str, Any]) -> None:
    state_history["payment_failed"] = {"shipped": False}


blueprints = [fulfilment, payment]
