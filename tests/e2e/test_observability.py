"""Readiness and Prometheus metrics, read over HTTP from a running instance."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from chronik.api.app import create_app
from chronik.core.events import ErrorInfo
from chronik.core.wire import RegisterBody, ReportedResult, TaskRef
from tests.conftest import wait_for
from tests.e2e.conftest import WORKER_TOKEN, work_blueprint

pytestmark = pytest.mark.e2e

TOKEN = {"X-Client-Token": "test-token"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_ready_and_metrics_follow_what_happened(start_orchestrator: Any) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), projection_interval=0.1)
    engine = orchestrator.engine
    async with httpx.AsyncClient(base_url=orchestrator.url) as client:
        ready = await client.get("/_public/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        jobs = [
            (await client.post("/api/v1/jobs/work", json={"initial_data": {"n": n}}, headers=TOKEN)).json()[
                "job_id"
            ]
            for n in range(3)
        ]

        async def all_queued() -> bool:
            scraped = samples((await client.get("/_public/metrics")).text)
            return scraped.get(("chronik_tasks_queued", (("task_type", "work"),))) == 3

        await wait_for(all_queued)
        await engine.workers.register(RegisterBody(worker_id="w1", task_types=["work"], capacity=3))
        for index in range(3):
            task = await engine.workers.next_task("w1", ["work"], 1.0)
            assert task is not None
            failure = ErrorInfo(code="INVALID_INPUT_ERROR", message="no") if index == 2 else None
            status = "failure" if failure else "success"
            await engine.workers.submit_result(
                ReportedResult(
                    ref=TaskRef.parse(task.task_id), worker_id="w1", status=status, data={}, error=failure
                )
            )

        async def ended() -> bool:
            return all([(await engine.get_job(job_id)).is_terminal for job_id in jobs])

        await wait_for(ended)
        response = await client.get("/_public/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        scraped = samples(response.text)
        assert scraped[("chronik_jobs_created_total", (("blueprint", "work"),))] == 3
        assert scraped[("chronik_jobs_ended_total", (("blueprint", "work"), ("status", "finished")))] == 2
        assert scraped[("chronik_jobs_ended_total", (("blueprint", "work"), ("status", "failed")))] == 1
        assert (
            scraped[("chronik_task_run_seconds_count", (("outcome", "completed"), ("task_type", "work")))]
            == 2
        )
        assert (
            scraped[("chronik_task_run_seconds_count", (("outcome", "failed"), ("task_type", "work")))] == 1
        )
        assert scraped[("chronik_step_seconds_count", (("blueprint", "work"),))] >= 3
        assert ("chronik_tasks_queued", (("task_type", "work"),)) not in scraped  # the queue is empty
        assert ("chronik_projection_lag_events", (("projection", "job_history"),)) in scraped


async def test_not_ready_before_the_engine_runs(make_engine: Any) -> None:
    engine = await make_engine(work_blueprint(), start=False)
    app = create_app(engine, client_token="test-token", manage_engine=False)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/_public/ready")
        assert response.status_code == 503
        assert response.json()["error"] == {"code": "NOT_READY", "message": "the engine has not started"}


async def test_rate_limits_answer_429_then_recover(start_orchestrator: Any, tmp_path: Any) -> None:
    clients = tmp_path / "clients.toml"
    clients.write_text(
        '[small]\ntoken = "small-client-token-123"\nrate_limit_per_minute = 3\n'
        '[capped]\ntoken = "capped-client-token-123"\nmonthly_attempts = 2\n'
    )
    orchestrator = await start_orchestrator(
        work_blueprint(), worker_rate_polls=2, clients_config_path=str(clients)
    )
    engine = orchestrator.engine
    worker = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "w-limited"}
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=worker) as client:
        polls = [
            (
                await client.get("/_worker/workers/w-limited/tasks/next?timeout=0&available_skills=work")
            ).status_code
            for _ in range(3)
        ]
        assert polls == [204, 204, 429]
        refused = await client.get("/_worker/workers/w-limited/tasks/next?timeout=0&available_skills=work")
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60
    # The window is a minute; a fresh one begins when the old one ends.
    async with engine.database.pool.acquire() as conn:
        await conn.execute("UPDATE rate_limit_counters SET window_start = window_start - interval '1 minute'")
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=worker) as client:
        again = await client.get("/_worker/workers/w-limited/tasks/next?timeout=0&available_skills=work")
        assert again.status_code == 204
    async with httpx.AsyncClient(base_url=orchestrator.url) as api:
        small = {"X-Client-Token": "small-client-token-123"}
        # A budget of 3 a minute: the 4th is refused, unless a minute's window ended during the
        # burst (a fixed window), when a fresh budget answers up to 3 more before the 429.
        codes = [(await api.get("/api/v1/jobs", headers=small)).status_code for _ in range(7)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:], codes
        capped = {"X-Client-Token": "capped-client-token-123"}
        made = [
            (await api.post("/api/v1/jobs/work", json={"initial_data": {}}, headers=capped)).status_code
            for _ in range(3)
        ]
        assert made == [202, 202, 429]
        over = await api.post("/api/v1/jobs/work", json={"initial_data": {}}, headers=capped)
        assert (
            over.json()["error"]["code"] == "QUOTA_EXCEEDED"
            and "monthly_attempts" in over.json()["error"]["message"]
        )
        scraped = samples((await api.get("/_public/metrics")).text)
        assert scraped[("chronik_rate_limited_total", (("kind", "worker_polls"),))] == 2
        assert scraped[("chronik_rate_limited_total", (("kind", "client"),))] == codes.count(429)
        assert scraped[("chronik_rate_limited_total", (("kind", "quota"),))] == 2
