"""A network cut between a worker and the orchestrator (issue 16, scenario 7).

The first worker reaches the orchestrator through ``chaos.proxy.Proxy``; the test cuts the
proxy while that worker holds a task. Its lease (2 s) runs out, the task runs again on a
second worker with a direct line, and the job ends once. When the cut is restored, the
first worker's result (its SDK kept retrying it) arrives late: it is recorded as
``TaskResultIgnored`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import httpx
import pytest

from chaos.proxy import Proxy
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, Orchestrator, spawn_worker, start_orchestrator, work_blueprint

__all__ = ["spawn_worker", "start_orchestrator"]  # fixtures, used by name

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": CLIENT_TOKEN}


@pytest.fixture
async def orchestrator(start_orchestrator: Any) -> Orchestrator:
    """One orchestrator whose task leases last 2 s, and whose watcher looks every 0.3 s."""
    started: Orchestrator = await start_orchestrator(
        work_blueprint(), task_lease_seconds=2.0, watcher_interval=0.3, retry_base_seconds=0.2
    )
    return started


@pytest.fixture
async def proxy(orchestrator: Orchestrator) -> AsyncIterator[Proxy]:
    """A proxy in front of the orchestrator's HTTP port: the first worker's only way to it."""
    port = urlsplit(orchestrator.url).port
    assert port is not None
    proxy = Proxy("127.0.0.1", 0, "127.0.0.1", port)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def task_row(database_url: str, job_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(
            "SELECT attempt, worker_id, status FROM tasks WHERE job_id = $1", UUID(job_id)
        )
    finally:
        await conn.close()


async def events_of(database_url: str, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT version, type, data::text FROM events WHERE job_id = $1 ORDER BY version", UUID(job_id)
        )
        return [(row["version"], row["type"], json.loads(row["data"])) for row in rows]
    finally:
        await conn.close()


async def test_a_cut_worker_loses_its_lease_the_task_reruns_and_its_late_result_is_ignored(
    orchestrator: Orchestrator, proxy: Proxy, spawn_worker: Any, database_url: str
) -> None:
    # w1 finishes its attempt 1.5 s in, during the cut; w2's attempt takes 6 s, long enough for
    # w1's retried result to land while the job still waits on attempt 2 (the SDK retries a
    # result after 0.5, 1, 2, 4 and 8 s).
    spawn_worker(f"http://127.0.0.1:{proxy.port}", WORKER_ID="w1", TASK_SLEEP="1.5", HEARTBEAT_INTERVAL="0.5")
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=15) as api:
        created = await api.post("/api/v1/jobs/work", json={"initial_data": {"n": 21}}, headers=CLIENT)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]

        async def held_by(worker: str, attempt: int) -> bool:
            row = await task_row(database_url, job_id)
            return row is not None and (row["worker_id"], row["attempt"], row["status"]) == (
                worker,
                attempt,
                "leased",
            )

        await wait_for(lambda: held_by("w1", 1), within=20)
        proxy.cut()
        cut_at = asyncio.get_running_loop().time()
        spawn_worker(orchestrator.url, WORKER_ID="w2", TASK_SLEEP="6", HEARTBEAT_INTERVAL="0.5")
        await wait_for(lambda: held_by("w2", 2), within=20)
        rerun_after = asyncio.get_running_loop().time() - cut_at
        proxy.restore()

        async def ignored() -> list[dict[str, Any]]:
            return [
                data for _, kind, data in await events_of(database_url, job_id) if kind == "TaskResultIgnored"
            ]

        late = await wait_for(ignored, within=20)
        assert (await api.get(f"/api/v1/jobs/{job_id}", headers=CLIENT)).json()[
            "status"
        ] == "waiting_for_worker"

        async def ended() -> dict[str, Any] | None:
            job = (await api.get(f"/api/v1/jobs/{job_id}", headers=CLIENT)).json()
            return job if job["status"] in ("finished", "failed", "cancelled") else None

        job = await wait_for(ended, within=20)
    assert 2.0 <= rerun_after < 10, rerun_after
    assert job["status"] == "finished"
    assert job["state_history"] == {"answer": 42, "worker": "w2"}
    assert [(e["worker_id"], e["attempt"]) for e in late] == [("w1", 1)], late
    log = await events_of(database_url, job_id)
    assert [version for version, _, _ in log] == list(range(1, len(log) + 1)), log
    kinds = [kind for _, kind, _ in log]
    assert kinds.count("JobFinished") == 1, kinds
    lost = [(d["worker_id"], d["attempt"], d["reason"]) for _, k, d in log if k == "TaskLost"]
    assert lost == [("w1", 1, "lease_expired")], log
    completed = [(d["worker_id"], d["attempt"]) for _, k, d in log if k == "TaskCompleted"]
    assert completed == [("w2", 2)], log
    # Ignored before the job moved on: nothing after it but attempt 2's result and the end.
    assert kinds[kinds.index("TaskResultIgnored") + 1 :] == ["TaskCompleted", "StateEntered", "JobFinished"]
