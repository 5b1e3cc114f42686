"""Conditions: pick a state's handler by the job's data, declared beside the handler.

Orders of 100 or more to Germany or Austria ship express, orders without an
address are held, every other order ships standard. Run it with the cookbook
(docs/blueprints.md, "Running the recipes") and ``POST /api/v1/jobs/shipping``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

bp = Blueprint("shipping", api_endpoint="shipping")

EXPRESS = "initial_data.order.total >= 100 and initial_data.order.country in ('DE', 'AT')"


@bp.handler_for("route", is_start=True)
async def standard(state_history: dict[str, Any], actions: Actions) -> None:
    state_history["service"] = "standard"
    actions.transition_to("book")


@bp.handler_for("route").when("not initial_data.order.address")
async def no_address(actions: Actions) -> None:
    actions.transition_to("held")


@bp.handler_for("route").when(EXPRESS)
async def express(state_history: dict[str, Any], actions: Actions) -> None:
    state_history["service"] = "express"
    actions.transition_to("book")


@bp.handler_for("book")
async def book(order: dict[str, Any], service: str, actions: Actions) -> None:
    actions.dispatch_task(
        "book_shipment", {"order_id": order["id"], "service": service}, transitions={"success": "shipped"}
    )


@bp.handler_for("shipped", is_end=True)
async def shipped(service: str, tracking: str, state_history: dict[str, Any]) -> None:
    state_history["shipped"] = {"service": service, "tracking": tracking}


@bp.handler_for("held", is_end=True, is_failure=True)
async def held(state_history: dict[str, Any]) -> None:
    state_history["held"] = {"reason": "the order has no address"}
