"""The harness's own blueprint and worker: a job with a fan-out, a timer and (sometimes) an approval.

``chaos`` fans out two ``work`` tasks, gathers them, sleeps a second on a durable
timer, then finishes, or first waits for a person's decision when ``initial_data``
asks for one (the load generator gives it). Each task takes a few hundred
milliseconds, so a worker killed under load is killed mid-task.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from chronik import Blueprint, Worker
from chronik.core.actions import Actions

__all__ = ["APPROVAL_TIMEOUT", "blueprints", "worker"]

APPROVAL_TIMEOUT = 300.0
"""How long a job waits for its decision: past it, the job is stuck (the load generator decides sooner)."""

chaos = Blueprint("chaos", api_endpoint="chaos", description="Fan-out, timer and approval under faults.")


@chaos.handler_for("start", is_start=True)
async def start(initial_data: dict[str, Any], actions: Actions) -> None:
    """Fan out two tasks."""
    n = int(initial_data.get("n", 0))
    actions.dispatch_parallel(
        [{"task_type": "work", "params": {"n": n, "branch": branch}, "max_retries": 5} for branch in (1, 2)],
        aggregate_into="gathered",
    )


@chaos.aggregator_for("gathered")
async def gathered(
    aggregation_results: dict[str, Any], state_history: dict[str, Any], actions: Actions
) -> None:
    """Fan in, then wait on a durable timer."""
    state_history["branches"] = sorted(str(r.get("status")) for r in aggregation_results.values())
    actions.sleep(1.0, then="decide")


@chaos.handler_for("decide")
async def decide(initial_data: dict[str, Any], actions: Actions) -> None:
    """Ask a person when the job says so, else finish."""
    if initial_data.get("approval"):
        actions.await_human_approval(
            "chaos: approve?", transitions={"approved": "done"}, timeout_seconds=APPROVAL_TIMEOUT
        )
    else:
        actions.transition_to("done")


@chaos.handler_for("done", is_end=True)
async def done(state_history: dict[str, Any]) -> None:
    """The end."""
    state_history["done"] = True


blueprints = [chaos]

worker = Worker(worker_type="chaos", capacity=8)


@worker.task("work")
async def work(params: dict[str, Any]) -> dict[str, Any]:
    """A few hundred milliseconds of 'work'."""
    await asyncio.sleep(random.uniform(0.1, 0.4))
    return {"n": params.get("n"), "branch": params.get("branch")}
