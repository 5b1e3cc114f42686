"""Two orchestrator instances on one database, a worker on each: 500 jobs, no attempt claimed twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from chronik.adapters.postgres.jobs import refold_differences
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, work_blueprint

pytestmark = pytest.mark.e2e

JOBS = 500


async def test_500_jobs_two_instances_one_watcher(
    start_orchestrator: Any, spawn_worker: Any, tmp_path: Path
) -> None:
    first = await start_orchestrator(work_blueprint(), instance_id="one", task_lease_seconds=10.0)
    second = await start_orchestrator(work_blueprint(), instance_id="two", task_lease_seconds=10.0)
    logs = [tmp_path / "claims-a.log", tmp_path / "claims-b.log"]
    spawn_worker(first.url, WORKER_ID="worker-a", CLAIM_LOG=str(logs[0]), WORKER_CAPACITY="16")
    spawn_worker(second.url, WORKER_ID="worker-b", CLAIM_LOG=str(logs[1]), WORKER_CAPACITY="16")

    watcher_samples: list[int] = []

    async def sample_watchers() -> None:
        while True:
            watcher_samples.append(sum(o.engine.instance.watcher.active for o in (first, second)))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_watchers())
    headers = {"X-Client-Token": CLIENT_TOKEN}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:

        async def create(i: int) -> None:
            url = (first, second)[i % 2].url
            response = await client.post(f"{url}/api/v1/jobs/work", json={"initial_data": {"n": i}})
            assert response.status_code == 202

        for chunk in range(0, JOBS, 50):
            await asyncio.gather(*(create(i) for i in range(chunk, chunk + 50)))

    async def all_finished() -> bool:
        async with first.engine.database.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'finished'") == JOBS)

    await wait_for(all_finished, within=120)
    sampler.cancel()

    # Every attempt reached exactly one worker, and each worker took part.
    claims = [line for log in logs for line in log.read_text().split()]
    assert len(claims) == len(set(claims)) == JOBS
    per_worker = [len(log.read_text().split()) for log in logs]
    assert all(count > 0 for count in per_worker), per_worker
    async with first.engine.database.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data->>'task_id' AS task, data->>'attempt' AS attempt, count(*) AS n FROM events "
            "WHERE type = 'TaskCompleted' GROUP BY 1, 2"
        )
        assert len(rows) == JOBS and {r["n"] for r in rows} == {1}
        assert (
            await conn.fetchval("SELECT count(*) FROM events WHERE type IN ('TaskLost', 'TaskFailed')") == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
        instances = Counter(
            r["i"]
            for r in await conn.fetch("SELECT meta->>'instance' AS i FROM events WHERE type = 'JobFinished'")
        )
        assert set(instances) == {"one", "two"}, instances
        # Folding each job's stream again gives exactly its projection row.
        for row in await conn.fetch("SELECT job_id FROM jobs"):
            assert await refold_differences(conn, row["job_id"]) == {}

    # Exactly one watcher at every moment sampled; when it stops, the other instance takes over.
    assert watcher_samples and set(watcher_samples) == {1}, Counter(watcher_samples)
    active, standby = (first, second) if first.engine.instance.watcher.active else (second, first)
    await active.engine.stop()

    async def taken_over() -> bool:
        return bool(standby.engine.instance.watcher.active)

    await wait_for(taken_over, within=10)
