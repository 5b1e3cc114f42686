"""Blueprint features end to end: real HTTP, real worker processes, one PostgreSQL.

Fan-out/fan-in, child jobs, state and job deadlines, and cancellation of all of
them; then a restart of the orchestrator while jobs wait on each kind of thing.
"""

from __future__ import annotations

from datetime import datetime
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


async def test_branch_failures_retry_then_reach_the_aggregator(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    bp = Blueprint("mixed")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_parallel(
            tasks=[
                {"task_type": "work", "params": {"n": 1}},
                # Fails once with a retryable error, then succeeds on its retry.
                {"task_type": "work", "params": {"n": 2, "fail_attempts": [1]}, "max_retries": 2},
                # An error no retry can fix: the branch fails at once, the job does not.
                {
                    "task_type": "work",
                    "params": {"n": 3, "fail_attempts": [1], "fail_with": "INVALID_INPUT_ERROR"},
                },
                # Out of retries: failed with its last error.
                {"task_type": "work", "params": {"n": 4, "fail_attempts": [1, 2]}, "max_retries": 1},
            ],
            aggregate_into="judge",
        )

    @bp.aggregator_for("judge")
    async def judge(aggregation_results: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        ok = sorted(o["data"]["answer"] for o in aggregation_results.values() if o["status"] == "success")
        bad = sorted(o["error"]["code"] for o in aggregation_results.values() if o["status"] == "failure")
        state_history["judged"] = {"ok": ok, "failed": bad}
        actions.transition_to("partial" if bad else "complete")

    @bp.handler_for("complete", is_end=True)
    async def complete() -> None: ...

    @bp.handler_for("partial", is_end=True)
    async def partial(state_history: dict[str, Any]) -> None:
        state_history["partial"] = state_history["judged"]

    orchestrator = await start_orchestrator(bp)
    spawn_worker(orchestrator.url)
    job_id = await create(orchestrator.url, "mixed", {})
    done = await reaches(orchestrator.url, job_id)
    assert done["status"] == "finished" and done["current_state"] == "partial"
    assert done["result"] == {"ok": [2, 4], "failed": ["INVALID_INPUT_ERROR", "TRANSIENT_ERROR"]}
    types = await history(orchestrator.url, job_id)
    assert types.count("TaskRetryScheduled") == 2
    assert types.count("BranchFailed") == 2
    assert types.count("TaskCompleted") == 2


def child_blueprints() -> list[Blueprint]:
    """``parent`` runs a ``child`` job (one ``work`` task) and goes on by how the child ended."""
    parent = Blueprint("parent")

    @parent.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.run_blueprint(
            "child",
            {"params": initial_data},
            transitions={"success": "merged", "failure": "child_failed"},
        )

    @parent.handler_for("merged", is_end=True)
    async def merged(state_history: dict[str, Any]) -> None:
        state_history["merged"] = {"from_child": state_history["answer"]}

    @parent.handler_for("child_failed", is_end=True, is_failure=True)
    async def child_failed() -> None: ...

    child = Blueprint("child")

    @child.handler_for("start", is_start=True)
    async def child_start(params: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task(
            "work", params, transitions={"success": "done", "failure": "broken"}, max_retries=0
        )

    @child.handler_for("done", is_end=True)
    async def child_done(state_history: dict[str, Any]) -> None:
        state_history["done"] = {"answer": state_history["answer"]}

    @child.handler_for("broken", is_end=True, is_failure=True)
    async def broken() -> None: ...

    return [parent, child]


async def test_a_child_job_runs_and_the_parent_resumes_with_its_result(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(*child_blueprints())
    spawn_worker(orchestrator.url)
    good = await create(orchestrator.url, "parent", {"n": 21})
    bad = await create(orchestrator.url, "parent", {"fail_attempts": [1], "fail_with": "INVALID_INPUT_ERROR"})

    done = await reaches(orchestrator.url, good)
    assert done["status"] == "finished", done
    assert done["result"] == {"from_child": 42}
    (child_id,) = done["children"]
    child = await job(orchestrator.url, child_id)
    assert child["parent_job_id"] == good and child["status"] == "finished"
    assert await history(orchestrator.url, good) == [
        "JobCreated", "ChildStarted", "ChildEnded", "StateEntered", "JobFinished",
    ]  # fmt: skip

    failed = await reaches(orchestrator.url, bad)
    assert failed["status"] == "failed" and failed["current_state"] == "child_failed"
    assert (await job(orchestrator.url, failed["children"][0]))["status"] == "failed"


async def test_cancelling_a_parent_cancels_its_child_and_tells_the_worker(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(*child_blueprints())
    spawn_worker(orchestrator.url, HEARTBEAT_INTERVAL="0.3")
    parent_id = await create(orchestrator.url, "parent", {"sleep": 30})
    waiting = await reaches(orchestrator.url, parent_id, "waiting_for_child")
    child_id = waiting["child_job_id"]
    await reaches(orchestrator.url, child_id, "waiting_for_worker")

    async def leased() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'leased'"))

    await wait_for(leased, within=20)
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=HEADERS) as client:
        assert (await client.post(f"/api/v1/jobs/{parent_id}/cancel")).status_code == 200
    assert (await job(orchestrator.url, parent_id))["status"] == "cancelled"
    child = await job(orchestrator.url, child_id)
    assert child["status"] == "cancelled"
    assert child["error"]["message"].startswith(f"its parent job {parent_id}")

    async def gone() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            return not await conn.fetchval("SELECT count(*) FROM tasks")

    await wait_for(gone, within=20)  # the worker was told on a heartbeat and its answer was taken


def deadline_blueprint() -> Blueprint:
    """A slow task under a state timeout that leads to ``late``; a job timeout from the request."""
    bp = Blueprint("deadlines")

    @bp.handler_for("start", is_start=True, timeout_seconds=1.0, on_timeout="late")
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task("work", initial_data, transitions={"success": "quick"})

    @bp.handler_for("quick", is_end=True)
    async def quick() -> None: ...

    @bp.handler_for("late")
    async def late(actions: Any) -> None:
        actions.sleep(60, then="quick")

    return bp


async def test_state_and_job_deadlines_fire_durably(start_orchestrator: Any, spawn_worker: Any) -> None:
    orchestrator = await start_orchestrator(deadline_blueprint(), poll_interval=30.0)
    spawn_worker(orchestrator.url, HEARTBEAT_INTERVAL="0.3")

    async def worker_up() -> bool:  # the start state's 1 s deadline must not race the worker's start
        return bool(await orchestrator.engine.live_workers())

    await wait_for(worker_up, within=20)
    slow = await create(orchestrator.url, "deadlines", {"sleep": 30}, timeout_seconds=2.5)
    fast = await create(orchestrator.url, "deadlines", {})

    assert (await reaches(orchestrator.url, fast, within=10))["current_state"] == "quick"
    sleeping = await reaches(orchestrator.url, slow, "waiting_for_timer", within=10)
    assert sleeping["current_state"] == "late"  # the state's deadline moved it on after 1 s
    failed = await reaches(orchestrator.url, slow, "failed", within=10)
    assert failed["error"]["code"] == "JOB_TIMEOUT"  # and the job's own deadline ended it
    assert await history(orchestrator.url, slow) == [
        "JobCreated", "TaskDispatched", "TimedOut", "StateEntered", "TimerStarted", "TimedOut", "JobFailed",
    ]  # fmt: skip

    async def withdrawn() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            return not await conn.fetchval("SELECT count(*) FROM tasks")

    await wait_for(withdrawn, within=20)  # the abandoned task's worker was told to stop


async def test_cancelling_a_fan_out_withdraws_every_branch(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(fan_out_blueprint())
    spawn_worker(orchestrator.url, WORKER_CAPACITY="3", HEARTBEAT_INTERVAL="0.3")
    job_id = await create(orchestrator.url, "fan", {"branches": 20, "params": {"sleep": 30}})

    async def three_leased() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            # The worker takes no more than its capacity, however many polls it keeps open.
            return await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'leased'") == 3

    await wait_for(three_leased, within=20)
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=HEADERS) as client:
        assert (await client.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 200
    async with orchestrator.engine.database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE status <> 'cancelled'") == 0

    async def gone() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            return not await conn.fetchval("SELECT count(*) FROM tasks")

    await wait_for(gone, within=20)
    assert await history(orchestrator.url, job_id) == ["JobCreated", "ParallelDispatched", "JobCancelled"]


async def test_a_restart_loses_no_approval_timer_child_or_branch(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    approval = Blueprint("approval")

    @approval.handler_for("start", is_start=True)
    async def ask(actions: Any) -> None:
        actions.await_human_approval("ship it?", transitions={"approved": "shipped", "rejected": "shipped"})

    @approval.handler_for("shipped", is_end=True)
    async def shipped() -> None: ...

    timer = Blueprint("timer")

    @timer.handler_for("start", is_start=True)
    async def nap(actions: Any) -> None:
        actions.sleep(4, then="woke")

    @timer.handler_for("woke", is_end=True)
    async def woke() -> None: ...

    blueprints = [approval, timer, *child_blueprints(), fan_out_blueprint()]
    first = await start_orchestrator(*blueprints)
    jobs = {
        "approval": await create(first.url, "approval", {}),
        "timer": await create(first.url, "timer", {}),
        "parent": await create(first.url, "parent", {"n": 5}),
        "fan": await create(first.url, "fan", {"branches": 200}),
    }
    waits = {
        "approval": "waiting_for_human",
        "timer": "waiting_for_timer",
        "parent": "waiting_for_child",
        "fan": "waiting_for_worker",
    }
    for name, status in waits.items():
        await reaches(first.url, jobs[name], status)
    timer_fires_at = (await job(first.url, jobs["timer"]))["timer"]["fire_at"]

    # The only instance stops while every job waits; nothing of them lives in its memory.
    first.server.should_exit = True
    await first.task
    await first.engine.stop()

    second = await start_orchestrator(*blueprints)
    spawn_worker(second.url, WORKER_CAPACITY="20")
    async with httpx.AsyncClient(base_url=second.url, headers=HEADERS) as client:
        decision = await client.post(
            f"/api/v1/jobs/{jobs['approval']}/approval", json={"decision": "approved"}
        )
        assert decision.status_code == 200, decision.text
    ended = {name: await reaches(second.url, job_id, within=60) for name, job_id in jobs.items()}
    assert all(state["status"] == "finished" for state in ended.values()), ended
    assert ended["parent"]["result"] == {"from_child": 10}
    assert ended["fan"]["result"] == {"total": sum(2 * i for i in range(200)), "failed": []}
    assert datetime.fromisoformat(ended["timer"]["finished_at"]) >= datetime.fromisoformat(timer_fires_at)
    assert (await history(second.url, jobs["fan"])).count("TaskCompleted") == 200
