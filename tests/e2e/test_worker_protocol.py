"""The worker protocol's edges, over real HTTP and the real database: races, repeats, restarts, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from chronik import Blueprint
from chronik.core.state import JobStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": "test-token"}
WORKER = {"X-Worker-Token": "worker-token", "X-Worker-ID": "w1"}


def task_blueprint() -> Blueprint:
    bp = Blueprint("t")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("work", {}, transitions={"success": "done"}, max_retries=2)

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


@pytest.fixture
async def setup(start_orchestrator: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    orchestrator = await start_orchestrator(
        task_blueprint(), global_worker_token="worker-token", task_lease_seconds=1.0, watcher_interval=0.2,
        retry_base_seconds=0.05,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=10) as client:
        yield orchestrator.engine, client


async def waiting_job(engine: Any) -> Any:
    job = await engine.create_job("t")

    async def queued() -> bool:
        return (await engine.get_job(job.job_id)).status == JobStatus.WAITING_FOR_WORKER

    await wait_for(queued)
    return job


async def poll(client: httpx.AsyncClient, worker: str = "w1") -> dict[str, Any]:
    headers = {**WORKER, "X-Worker-ID": worker}
    response = await client.get(
        f"/_worker/workers/{worker}/tasks/next?timeout=2&available_skills=work", headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def register(client: httpx.AsyncClient, worker: str = "w1") -> None:
    headers = {**WORKER, "X-Worker-ID": worker}
    response = await client.post(
        "/_worker/workers/register", json={"worker_id": worker, "task_types": ["work"]}, headers=headers
    )
    assert response.status_code == 200, response.text


async def test_cancel_racing_a_claim_still_reaches_the_worker(setup: Any, pool: asyncpg.Pool) -> None:
    engine, client = setup
    await register(client)
    job = await waiting_job(engine)
    async with pool.acquire() as conn:
        claim = conn.transaction()
        await claim.start()
        claimed = await conn.fetch(
            "UPDATE tasks SET status = 'leased', worker_id = 'w1', claimed_at = now(), "
            "lease_expires_at = now() + interval '30 seconds' WHERE job_id = $1 RETURNING task_id, attempt",
            job.job_id,
        )
        cancelling = asyncio.create_task(engine.cancel_job(job.job_id))
        await asyncio.sleep(0.3)  # the cancel now waits on the claim's row lock
        await claim.commit()
        await cancelling
    heartbeat = await client.patch("/_worker/workers/w1", json={"current_tasks": []}, headers=WORKER)
    assert heartbeat.status_code == 200, heartbeat.text
    task = claimed[0]
    assert heartbeat.json()["cancel_task_ids"] == [f"{task['task_id']}:{task['attempt']}"]


async def test_repeats_are_duplicates_and_late_results_are_stale(setup: Any) -> None:
    engine, client = setup
    await register(client)
    job = await waiting_job(engine)
    task = await poll(client)
    failure = {
        "task_id": task["task_id"],
        "status": "failure",
        "error": {"code": "TRANSIENT_ERROR", "message": "x"},
    }
    assert (await client.post("/_worker/tasks/result", json=failure, headers=WORKER)).json() == {
        "status": "accepted"
    }
    for _ in range(2):
        repeat = (await client.post("/_worker/tasks/result", json=failure, headers=WORKER)).json()
        assert repeat["reason"] == "duplicate"
    types = [r.type for r in await engine.job_history(job.job_id)]
    assert types.count("TaskResultIgnored") == 0 and types.count("TaskFailed") == 1

    # Attempt 2 goes to w1, whose lease then runs out: its late result is recorded, not applied.
    second = await poll(client)
    assert second["task_id"].endswith(":2")

    async def lost() -> bool:
        return "TaskLost" in [r.type for r in await engine.job_history(job.job_id)]

    await wait_for(lost, within=10)
    late = (
        await client.post("/_worker/tasks/result", json={"task_id": second["task_id"]}, headers=WORKER)
    ).json()
    assert late["reason"] == "stale_task"
    assert [r.type for r in await engine.job_history(job.job_id)][-1] == "TaskResultIgnored"


async def test_a_restarted_worker_does_not_keep_its_old_leases(setup: Any) -> None:
    engine, client = setup
    await register(client)
    job = await waiting_job(engine)
    task = await poll(client)
    # Heartbeats that list the attempt keep it; a new life of w1 runs nothing, so its lease lapses.
    for _ in range(4):
        await asyncio.sleep(0.4)
        assert (
            await client.patch(
                "/_worker/workers/w1", json={"current_tasks": [task["task_id"]]}, headers=WORKER
            )
        ).status_code == 200
    assert "TaskLost" not in [r.type for r in await engine.job_history(job.job_id)]
    await register(client)

    async def lost() -> bool:
        await client.patch("/_worker/workers/w1", json={"current_tasks": []}, headers=WORKER)
        return "TaskLost" in [r.type for r in await engine.job_history(job.job_id)]

    await wait_for(lost, within=10)


async def test_a_worker_cancelling_its_task_cancels_the_job_and_repeats_are_answered(
    setup: Any, pool: asyncpg.Pool
) -> None:
    engine, client = setup
    await register(client)
    job = await waiting_job(engine)
    task = await poll(client)
    body = {"task_id": task["task_id"], "status": "cancelled"}
    assert (await client.post("/_worker/tasks/result", json=body, headers=WORKER)).json() == {
        "status": "accepted"
    }
    assert (await engine.get_job(job.job_id)).status == JobStatus.CANCELLED
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
    again = await client.post("/_worker/tasks/result", json=body, headers=WORKER)
    assert again.status_code == 200 and again.json()["reason"] == "duplicate"


TOO_BIG_ATTEMPT = b'{"task_id": "00000000-0000-0000-0000-000000000001:99999999999"}'
WORDY_PROGRESS = b'{"event_type": "progress", "target_task_id": "TASK", "payload": {"progress": "lots"}}'
HUGE_CAPACITY = b'{"worker_id": "w1", "capacity": 1099511627776}'
NUL_MESSAGE = b'{"event_type": "progress", "target_task_id": "TASK", ' + (
    b'"payload": {"progress": 5, "message": "a\\u0000b"}}'
)


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/_worker/tasks/result", TOO_BIG_ATTEMPT, "attempt"),
        ("/_worker/events", WORDY_PROGRESS, "progress"),
        ("/_worker/workers/register", HUGE_CAPACITY, "capacity"),
        ("/_worker/events", NUL_MESSAGE, "cannot be stored"),
    ],
)
async def test_bad_worker_input_is_a_4xx(setup: Any, path: str, body: bytes, fragment: str) -> None:
    engine, client = setup
    await register(client)
    await waiting_job(engine)
    task = await poll(client)
    raw = body.replace(b"TASK", task["task_id"].encode())
    response = await client.post(path, content=raw, headers={**WORKER, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert fragment in response.text


async def test_nul_in_client_input_is_a_4xx(setup: Any) -> None:
    _engine, client = setup
    response = await client.post(
        "/api/v1/jobs/t",
        content=b'{"initial_data": {"x": "a\\u0000b"}}',
        headers={**CLIENT, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_INPUT_ERROR"
