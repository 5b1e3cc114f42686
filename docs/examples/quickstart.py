"""The README's quick start: an order that is checked, priced and confirmed.

Run it with ``chronik dev docs.examples.quickstart:bp`` from the repository root.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

bp = Blueprint("orders", api_endpoint="orders")


@bp.handler_for("validate", is_start=True)
async def validate(initial_data: dict[str, Any], actions: Actions) -> None:
    if initial_data.get("quantity", 0) > 0:
        actions.transition_to("price")
    else:
        actions.transition_to("rejected")


@bp.handler_for("price")
async def price(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Actions) -> None:
    state_history["total"] = initial_data["quantity"] * 2.5
    actions.transition_to("confirmed")


@bp.handler_for("confirmed", is_end=True)
async def confirmed(total: float, state_history: dict[str, Any]) -> None:
    state_history["confirmed"] = {"total": total}


@bp.handler_for("rejected", is_end=True, is_failure=True)
async def rejected(state_history: dict[str, Any]) -> None:
    state_history["rejected"] = {"reason": "quantity must be positive"}
