"""Blueprint features end to end: real HTTP, real worker processes, one PostgreSQL.

Fan-out/fan-in, child jobs, state and job deadlines, and cancellation of all of
them; then a restart of the orchestrator while jobs wait on each kind of thing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chronik import Blueprint
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN

pytestmark = pytest.mark.e2e

HEADERS = {"X-Client-Token": CLIENT_TOKEN}


async def create(url: str, endpoint: str, data: dict[str, Any], **body: Any) -> str:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        response = await client.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": data, **body})
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])


async def job(url: str, job_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        response = await client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())


async def history(url: str, job_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
        return [event["type"] for event in (await client.get(f"/api/v1/jobs/{job_id}/history")).json()]


async def reaches(url: str, job_id: str, *statuses: str, within: float = 30) -> dict[str, Any]:
    wanted = statuses or ("finished", "failed", "cancelled", "quarantined")

    async def check() -> Any:
        current = await job(url, job_id)
        return current if current["status"] in wanted else None

    return dict(await wait_for(check, within=within, interval=0.1))


def fan_out_blueprint(name: str = "fan") -> Blueprint:
    """start -> N ``work`` branches -> ``sum`` adds their answers -> done."""
    bp = Blueprint(name)

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        branches = [
            {"task_type": "work", "params": {"n": i, **initial_data.get("params", {})}, "max_retries": 1}
            for i in range(initial_data["branches"])
        ]
        actions.dispatch_parallel(tasks=branches, aggregate_into="sum")

    @bp.aggregator_for("sum")
    async def total(aggregation_results: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        outcomes = list(aggregation_results.values())
        state_history["total"] = sum(o["data"]["answer"] for o in outcomes if o["status"] == "success")
        state_history["failed"] = sorted(o["error"]["code"] for o in outcomes if o["status"] == "failure")
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done(state_history: dict[str, Any]) -> None:
        state_history["done"] = {"total": state_history["total"], "failed": state_history["failed"]}

    return bp


async def test_a_thousand_branches_fan_in_once(start_orchestrator: Any, spawn_worker: Any) -> None:
    orchestrator = await start_orchestrator(fan_out_blueprint())
    for index in range(2):
        spawn_worker(orchestrator.url, WORKER_ID=f"fan-{index}", WORKER_CAPACITY="50")
    job_id = await create(orchestrator.url, "fan", {"branches": 1000})
    done = await reaches(orchestrator.url, job_id, within=120)
    assert done["status"] == "finished", done
    assert done["result"] == {"total": sum(2 * i for i in range(1000)), "failed": []}
    types = await history(orchestrator.url, job_id)
    assert types.count("TaskCompleted") == 1000
    assert types.count("BranchesJoined") == 1
    assert types[:2] == ["JobCreated", "ParallelDispatched"]
    assert types[-3:] == ["BranchesJoined", "StateEntered", "JobFinished"]
