"""Timeouts: a checkout that waits 2 seconds for a carrier's quote, then charges a flat rate.

The ``quote`` state falls back to ``flat_rate`` when the carrier is slow; the
``label`` state has no fallback, so a stuck printer fails the job with
``STATE_TIMEOUT``; and no parcel job may take longer than a minute (``JOB_TIMEOUT``),
or than the ``timeout_seconds`` its creator gives. Run it with the cookbook
(docs/blueprints.md) and ``POST /api/v1/jobs/parcels``; ``carrier_latency`` and
``printer_latency`` in the initial data make the stand-in services slow.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

bp = Blueprint("parcel", api_endpoint="parcels", timeout_seconds=60)


@bp.handler_for("quote", is_start=True, timeout_seconds=2, on_timeout="flat_rate")
async def quote(weight_kg: float, initial_data: dict[str, Any], actions: Actions) -> None:
    actions.dispatch_task(
        "carrier_quote",
        {"weight_kg": weight_kg, "latency": initial_data.get("carrier_latency", 0)},
        transitions={"success": "label"},
    )


@bp.handler_for("flat_rate")
async def flat_rate(state_history: dict[str, Any], actions: Actions) -> None:
    state_history.update(price=9.9, source="flat rate")
    actions.transition_to("label")


@bp.handler_for("label", timeout_seconds=2)
async def label(order_id: str, initial_data: dict[str, Any], actions: Actions) -> None:
    actions.dispatch_task(
        "print_label",
        {"order_id": order_id, "latency": initial_data.get("printer_latency", 0)},
        transitions={"success": "ready"},
    )


@bp.handler_for("ready", is_end=True)
async def ready(price: float, source: str, state_history: dict[str, Any]) -> None:
    state_history["ready"] = {"price": price, "source": source, "label": state_history["label"]}
