"""The benchmark's flow on chronik: start -> one worker task -> finished."""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint, Worker

flow = Blueprint("flow", api_endpoint="flow")


@flow.handler_for("start", is_start=True)
async def start(initial_data: dict[str, Any], actions: Actions) -> None:
    actions.dispatch_task("echo", {"n": initial_data.get("n", 0)}, transitions={"success": "finished"})


@flow.handler_for("finished", is_end=True)
async def finished(state_history: dict[str, Any]) -> None:
    state_history["finished"] = {"n": state_history.get("n")}


blueprints = [flow]

worker = Worker(capacity=16, heartbeat_interval=10.0)


@worker.task("echo")
async def echo(params: dict[str, Any]) -> dict[str, Any]:
    return {"n": params["n"]}
