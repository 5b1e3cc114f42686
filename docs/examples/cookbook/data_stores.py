"""Data stores: handlers share a catalogue object, injected by name, to price an order before charging.

Run it with the cookbook (docs/blueprints.md) and ``POST /api/v1/jobs/checkout``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint


class Catalogue:
    """Prices by SKU. A real one would query a database or an HTTP API, and cache."""

    def __init__(self, prices: dict[str, float]) -> None:
        self._prices = prices

    def price(self, sku: str) -> float | None:
        return self._prices.get(sku)


bp = Blueprint(
    "checkout",
    api_endpoint="checkout",
    data_stores={"catalogue": Catalogue({"mug": 12.0, "poster": 25.0, "tote": 18.5})},
)


@bp.handler_for("price", is_start=True)
async def price(
    items: dict[str, int], data_stores: Any, state_history: dict[str, Any], actions: Actions
) -> None:
    prices = {sku: data_stores.catalogue.price(sku) for sku in items}
    unknown = sorted(sku for sku, each in prices.items() if each is None)
    if unknown:
        state_history["rejected"] = {"unknown_items": unknown}
        actions.transition_to("rejected")
    else:
        state_history["total"] = round(sum(prices[sku] * count for sku, count in items.items()), 2)
        actions.transition_to("charge")


@bp.handler_for("charge")
async def charge(order_id: str, total: float, actions: Actions) -> None:
    actions.dispatch_task(
        "charge_card", {"order_id": order_id, "amount": total}, transitions={"success": "paid"}
    )


@bp.handler_for("paid", is_end=True)
async def paid(total: float, charge_id: str, state_history: dict[str, Any]) -> None:
    state_history["paid"] = {"total": total, "charge_id": charge_id}


@bp.handler_for("rejected", is_end=True, is_failure=True)
async def rejected() -> None: ...
