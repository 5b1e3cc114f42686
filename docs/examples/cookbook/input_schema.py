"""Input schemas: a blueprint declares the shape of ``initial_data``; a create that does not fit is refused.

Run it with the cookbook (docs/blueprints.md) and ``POST /api/v1/jobs/restock``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from chronik import Actions, Blueprint


class Line(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    qty: Annotated[int, msgspec.Meta(ge=1)]


class Restock(msgspec.Struct, forbid_unknown_fields=True):
    warehouse: str
    lines: list[Line]
    note: str = ""


bp = Blueprint("restock", api_endpoint="restock", input_schema=Restock)


@bp.handler_for("count", is_start=True)
async def count(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Actions) -> None:
    order = msgspec.convert(initial_data, Restock)  # it fits: the job was checked when it was created
    state_history["units"] = sum(line.qty for line in order.lines)
    actions.transition_to("stocked")


@bp.handler_for("stocked", is_end=True)
async def stocked(warehouse: str, units: int, state_history: dict[str, Any]) -> None:
    state_history["stocked"] = {"warehouse": warehouse, "units": units}
