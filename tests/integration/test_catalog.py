"""The catalog routes over a real engine and database: live workers, the dashboard per client, a
blueprint's graph; and the file routes' answers without S3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from chronik import Blueprint
from chronik.adapters.postgres.queries import QUERIES
from chronik.api.app import create_app
from chronik.demo import review
from tests.conftest import wait_for

CLIENTS = """\
[billing]
token = "billing-token-0123456789"

[ops]
token = "ops-token-0123456789abc"

[auditor]
token = "auditor-token-0123456789"
role = "admin"
"""
BILLING = {"X-Client-Token": "billing-token-0123456789"}
OPS = {"X-Client-Token": "ops-token-0123456789abc"}
AUDITOR = {"X-Client-Token": "auditor-token-0123456789"}
WORKER = {"X-Worker-Token": "worker-token", "X-Worker-ID": "w1"}


def work_blueprint() -> Blueprint:
    """One ``work`` task (no worker runs here, unless a test takes it), then the end."""
    bp = Blueprint("work", api_endpoint="work")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("work", {}, transitions={"success": "done", "failure": "failed"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("failed", is_end=True, is_failure=True)
    async def failed() -> None: ...

    return bp


@pytest.fixture
async def client(make_engine: Any, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    config = tmp_path / "clients.toml"
    config.write_text(CLIENTS)
    engine = await make_engine(work_blueprint(), review, start=False)
    app = create_app(engine, client_token=None, clients_config_path=str(config), worker_token="worker-token")
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def register(client: AsyncTestClient[Any], worker_id: str, **body: Any) -> None:
    headers = {**WORKER, "X-Worker-ID": worker_id}
    response = await client.post(
        "/_worker/workers/register", json={"worker_id": worker_id, **body}, headers=headers
    )
    assert response.status_code == 200, response.text


async def create(client: AsyncTestClient[Any], endpoint: str, who: dict[str, str], **data: Any) -> str:
    response = await client.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": data}, headers=who)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def status_of(client: AsyncTestClient[Any], job_id: str, who: dict[str, str]) -> str:
    return str((await client.get(f"/api/v1/jobs/{job_id}", headers=who)).json()["status"])


async def test_live_workers_are_listed_with_what_they_hold(client: AsyncTestClient[Any], pool: Any) -> None:
    assert (await client.get("/api/v1/workers", headers=BILLING)).json() == []
    await register(
        client,
        "w1",
        worker_type="gpu",
        supported_skills=[{"name": "work"}],
        capacity=2,
        capabilities={"gpu": "a100"},
        resources={"memory_gb": 16},
    )
    await register(client, "gone", task_types=["work"])
    async with pool.acquire() as conn:  # silent for longer than the task lease
        await conn.execute(
            "UPDATE workers SET last_heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'gone'"
        )
    job_id = await create(client, "work", BILLING, name="Ada")
    await wait_for(lambda: _is(client, job_id, BILLING, "waiting_for_worker"))
    taken = await client.get("/_worker/workers/w1/tasks/next?timeout=5&available_skills=work", headers=WORKER)
    assert taken.status_code == 200, taken.text

    # Any client sees every worker (workers are shared); the silent one is not live.
    for who in (OPS, BILLING, AUDITOR):
        listed = await client.get("/api/v1/workers", headers=who)
        assert listed.status_code == 200, listed.text
        assert [worker["worker_id"] for worker in listed.json()] == ["w1"]
    worker = listed.json()[0]
    assert worker["worker_type"] == "gpu"
    assert worker["supported_skills"] == [{"name": "work"}]
    assert worker["task_types"] == ["work"]
    assert (worker["capacity"], worker["running_tasks"]) == (2, 1)
    assert worker["capabilities"] == {"gpu": "a100"} and worker["resources"] == {"memory_gb": 16}
    assert worker["last_heartbeat_at"] >= worker["registered_at"]
    assert (await client.get("/api/v1/workers")).status_code == 401


async def test_the_dashboard_counts_the_callers_jobs_and_an_admin_sees_all(
    client: AsyncTestClient[Any],
) -> None:
    await register(client, "w1", task_types=["work"])
    waiting = [await create(client, "work", BILLING, name=name) for name in ("a", "b")]
    finished = await create(client, "review", BILLING, amount=5)
    failed = await create(client, "review", OPS, amount=5000)
    cancelled = await create(client, "work", OPS)
    assert (await client.post(f"/api/v1/jobs/{cancelled}/cancel", headers=OPS)).status_code == 200
    for job_id, who, status in [
        *((job_id, BILLING, "waiting_for_worker") for job_id in waiting),
        (finished, BILLING, "finished"),
        (failed, OPS, "failed"),
        (cancelled, OPS, "cancelled"),
    ]:
        await wait_for(partial(_is, client, job_id, who, status))

    async def jobs_of(who: dict[str, str]) -> dict[str, int]:
        response = await client.get("/api/v1/dashboard", headers=who)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["workers"] == {"total": 1}
        return {key: value for key, value in body["jobs"].items() if value}

    assert await jobs_of(BILLING) == {"queued": 2, "waiting_for_worker": 2, "finished": 1}
    assert await jobs_of(OPS) == {"failed": 1, "cancelled": 1}
    assert await jobs_of(AUDITOR) == {
        "queued": 2, "waiting_for_worker": 2, "finished": 1, "failed": 1, "cancelled": 1
    }  # fmt: skip
    # Every status is a key, zeros included, so a client's code can rely on them.
    everything = (await client.get("/api/v1/dashboard", headers=OPS)).json()["jobs"]
    assert set(everything) >= {"queued", "running", "waiting_for_worker", "quarantined", "finished"}
    # A task a worker took is no longer queued.
    assert (
        await client.get("/_worker/workers/w1/tasks/next?timeout=5&available_skills=work", headers=WORKER)
    ).status_code == 200
    assert (await jobs_of(BILLING))["queued"] == 1


async def test_a_blueprints_graph_is_dot_and_an_unknown_one_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/v1/blueprints/review/graph", headers=OPS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/vnd.graphviz")
    dot = response.text
    assert dot.startswith('digraph "review" {')
    assert '"check" [style=bold];' in dot and '"rejected" [shape=doublecircle, color=red];' in dot
    assert '"check" -> "approved";' in dot and '"check" -> "rejected";' in dot
    missing = await client.get("/api/v1/blueprints/nope/graph", headers=OPS)
    assert missing.status_code == 404, missing.text
    error = missing.json()["error"]
    assert (
        error["code"] == "BLUEPRINT_NOT_FOUND"
        and "'nope'" in error["message"]
        and "review, work" in error["message"]
    )


async def test_file_routes_without_s3_answer_501_after_the_ownership_check(
    client: AsyncTestClient[Any],
) -> None:
    job_id = await create(client, "work", BILLING)
    routes = [
        ("GET", f"/api/v1/jobs/{job_id}/files/upload?filename=a.txt"),
        ("PUT", f"/api/v1/jobs/{job_id}/files/content/a.txt"),
        ("GET", f"/api/v1/jobs/{job_id}/files/download/a.txt"),
    ]
    for method, url in routes:
        theirs = await client.request(method, url, headers=OPS, content=b"x" if method == "PUT" else None)
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "JOB_NOT_FOUND", theirs.text
        mine = await client.request(method, url, headers=BILLING, content=b"x" if method == "PUT" else None)
        assert mine.status_code == 501, mine.text
        error = mine.json()["error"]
        assert error["code"] == "FILES_NOT_CONFIGURED" and "S3_ENDPOINT" in error["message"]
    bad_id = await client.get("/api/v1/jobs/nope/files/download/a.txt", headers=BILLING)
    assert bad_id.status_code == 400 and bad_id.json()["error"]["code"] == "INVALID_INPUT_ERROR"


@pytest.mark.projection_damaged  # it writes jobs rows without events, to have enough of them cheaply
async def test_dashboard_and_worker_queries_read_their_indexes(pool: Any) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO jobs (job_id, blueprint, status, current_state, version, created_at, updated_at, "
            "finished_at, state) SELECT gen_random_uuid(), 'b', 'finished', 's', 1, now(), now(), "
            "now() - i * interval '1 minute', "
            "jsonb_build_object('client', 'c' || (i % 50)) FROM generate_series(1, 20000) AS i"
        )
        await conn.execute("ANALYZE jobs")
        await conn.execute("PREPARE counting AS " + QUERIES["count_client_jobs_by_status"].rstrip(";"))
        plans = []
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            live = "ARRAY['running', 'waiting_for_worker', 'waiting_for_human', 'quarantined']"
            rows = await conn.fetch(f"EXPLAIN EXECUTE counting(24, {live}, 'c7')")
            plans.append("\n".join(row[0] for row in rows))
        everyone = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN "
                + QUERIES["count_jobs_by_status"].replace("$1", "24").replace("$2", "ARRAY['running']")
            )
        )
        await conn.execute("SET enable_seqscan = off")  # an empty table is scanned otherwise
        workers = "\n".join(
            row[0] for row in await conn.fetch("EXPLAIN " + QUERIES["list_live_workers"].replace("$1", "60"))
        )
    for plan in plans:  # one client's counts read its ended jobs of the day, not all history
        assert "jobs_client_finished_idx" in plan and "Seq Scan" not in plan, plan
    assert "jobs_finished_idx" in everyone and "Seq Scan" not in everyone, everyone  # an admin's too
    assert "tasks_worker_idx" in workers, workers


async def _is(client: AsyncTestClient[Any], job_id: str, who: dict[str, str], status: str) -> bool:
    return await status_of(client, job_id, who) == status
