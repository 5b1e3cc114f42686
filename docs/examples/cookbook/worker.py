"""The cookbook's worker: every task the recipes of docs/blueprints.md dispatch.

Run it beside an orchestrator that serves the recipes::

    chronik worker docs.examples.cookbook.worker:worker --url http://127.0.0.1:8080

Each task stands in for a real service (a carrier, a payment provider, an image
library, a video encoder). ``latency`` in a task's params makes the stand-in
that slow, so that the timeout recipes have something to time out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chronik import TaskError, Worker

worker = Worker(capacity=10)


@worker.task("book_shipment")
async def book_shipment(params: dict[str, Any]) -> dict[str, Any]:
    return {"tracking": f"{params['service'].upper()}-{params['order_id']}"}


@worker.task("charge_card")
async def charge_card(params: dict[str, Any]) -> dict[str, Any]:
    if params["amount"] <= 0:
        # Retrying cannot fix this: the job follows its "failure" transition instead.
        raise TaskError(f"cannot charge {params['amount']}", code="INVALID_INPUT_ERROR")
    return {"charge_id": f"ch_{params['order_id']}"}


@worker.task("refund_payment")
async def refund_payment(params: dict[str, Any]) -> dict[str, Any]:
    return {"refund_id": f"re_{params['order_id']}"}


@worker.task("make_thumbnail")
async def make_thumbnail(params: dict[str, Any]) -> dict[str, Any]:
    image = params["image"]
    if not image.endswith((".jpg", ".png")):
        raise TaskError(f"{image} is not an image", code="INVALID_INPUT_ERROR")
    return {"thumbnail": f"{image.rsplit('.', 1)[0]}_{params['size']}.webp"}


@worker.task("carrier_quote")
async def carrier_quote(params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(params.get("latency", 0))
    return {"price": round(3.5 + 0.8 * params["weight_kg"], 2), "source": "carrier"}


@worker.task("print_label")
async def print_label(params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(params.get("latency", 0))
    return {"label": f"label-{params['order_id']}.pdf"}


@worker.task("send_email")
async def send_email(params: dict[str, Any]) -> dict[str, Any]:
    return {"last_email": params["template"]}


@worker.task("transcode")
async def transcode(params: dict[str, Any], progress: Any) -> dict[str, Any]:
    for segment in range(params["segments"]):
        # Each report learns whether the job was cancelled; if so, the worker stops this coroutine.
        await progress(100 * segment / params["segments"], f"segment {segment}")
        await asyncio.sleep(1)
    return {"encoded": params["video"].rsplit(".", 1)[0] + ".mp4"}
