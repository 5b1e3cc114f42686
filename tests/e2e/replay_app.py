"""Two versions of one blueprint, for ``chronik jobs replay --blueprint``: v2 changes a decision."""

from __future__ import annotations

from typing import Any

from chronik import Blueprint


def orders(threshold: int) -> Blueprint:
    """Orders above ``threshold`` wait for a person; the others ship at once."""
    bp = Blueprint("orders")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        state_history["checked"] = True
        if initial_data["total"] > threshold:
            actions.await_human_approval("big order", transitions={"approved": "ship", "rejected": "drop"})
        else:
            actions.transition_to("ship")

    @bp.handler_for("ship", is_end=True)
    async def ship(state_history: dict[str, Any]) -> None:
        state_history["ship"] = {"shipped": True}

    @bp.handler_for("drop", is_end=True, is_failure=True)
    async def drop() -> None: ...

    return bp


v1 = [orders(threshold=100)]
v2 = [orders(threshold=10)]
