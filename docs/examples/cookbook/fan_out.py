"""Fan-out and fan-in: one thumbnail task per image, all at once, then one step that collects them.

Run it with the cookbook (docs/blueprints.md) and ``POST /api/v1/jobs/thumbnails``
with ``{"initial_data": {"images": ["a.jpg", "b.png"]}}``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

bp = Blueprint("thumbnails", api_endpoint="thumbnails")


@bp.handler_for("resize", is_start=True)
async def resize(images: list[str], actions: Actions) -> None:
    actions.dispatch_parallel(
        tasks=[
            {"task_type": "make_thumbnail", "params": {"image": image, "size": 256}, "max_retries": 2}
            for image in images
        ],
        aggregate_into="collect",
    )


@bp.aggregator_for("collect")
async def collect(
    aggregation_results: dict[str, Any], state_history: dict[str, Any], actions: Actions
) -> None:
    outcomes = aggregation_results.values()
    thumbnails = sorted(o["data"]["thumbnail"] for o in outcomes if o["status"] == "success")
    errors = sorted(o["error"]["message"] for o in outcomes if o["status"] == "failure")
    state_history["gallery"] = {"thumbnails": thumbnails, "errors": errors}
    if thumbnails:
        actions.transition_to("done")
    else:
        actions.transition_to("nothing_to_show")


@bp.handler_for("done", is_end=True)
async def done(gallery: dict[str, Any], state_history: dict[str, Any]) -> None:
    state_history["done"] = gallery


@bp.handler_for("nothing_to_show", is_end=True, is_failure=True)
async def nothing_to_show(gallery: dict[str, Any], state_history: dict[str, Any]) -> None:
    state_history["nothing_to_show"] = gallery
