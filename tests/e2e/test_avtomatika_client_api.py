"""Avtomatika's client API as chronik serves it, over real HTTP: its create fields, the transition
cap, invalid input, ``?fields=``, the public approval link and ``ENABLE_CLIENT_API=false``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from chronik import Blueprint
from chronik.core.state import JobStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": "test-token"}
WORKER = {"X-Worker-Token": "worker-token", "X-Worker-ID": "w1"}


def blueprints() -> list[Blueprint]:
    loop = Blueprint("loop", api_endpoint="loop")  # ping -> pong -> ping -> ... forever

    @loop.handler_for("ping", is_start=True)
    async def ping(actions: Any) -> None:
        actions.transition_to("pong")

    @loop.handler_for("pong")
    async def pong(actions: Any) -> None:
        actions.transition_to("ping")

    work = Blueprint("work", api_endpoint="work")

    @work.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task(
            initial_data.get("task", "work"), {}, transitions={"success": "ask", "failure": "cleanup"}
        )

    @work.handler_for("ask")
    async def ask(actions: Any) -> None:
        actions.await_human_approval("ok?", transitions={"yes": "done", "no": "cleanup"})

    @work.handler_for("done", is_end=True)
    async def done() -> None: ...

    @work.handler_for("cleanup", is_end=True)  # a plain end, not a failure state
    async def cleanup(state_history: dict[str, Any]) -> None:
        state_history["cleaned"] = True

    return [loop, work]


@pytest.fixture
async def api(start_orchestrator: Any) -> AsyncIterator[httpx.AsyncClient]:
    orchestrator = await start_orchestrator(*blueprints(), global_worker_token="worker-token")
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=10) as client:
        registered = await client.post(
            "/_worker/workers/register", json={"worker_id": "w1", "task_types": ["work"]}, headers=WORKER
        )
        assert registered.status_code == 200, registered.text
        yield client


async def create(api: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> str:
    response = await api.post(f"/api/v1/jobs/{endpoint}", json=body, headers=CLIENT)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def ended(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job once it has ended (or waits for a person), by long waits, not polling."""
    for _ in range(12):  # a wait ends early when the job ends, not when it starts waiting for a person
        job: dict[str, Any] = (await api.get(f"/api/v1/jobs/{job_id}?wait=1", headers=CLIENT)).json()
        if job["status"] in ("finished", "failed", "cancelled", "quarantined", "waiting_for_human"):
            return job
    raise AssertionError(f"job {job_id} did not end: {job}")


async def answer_task(api: httpx.AsyncClient, **result: Any) -> None:
    polled = await api.get("/_worker/workers/w1/tasks/next?timeout=5&available_skills=work", headers=WORKER)
    assert polled.status_code == 200, polled.text
    answered = await api.post(
        "/_worker/tasks/result", json={"task_id": polled.json()["task_id"], **result}, headers=WORKER
    )
    assert answered.status_code == 200, answered.text


async def test_a_create_body_with_every_avtomatika_field_is_accepted(api: httpx.AsyncClient) -> None:
    body = {
        "initial_data": {"task": "nobody-serves-this"},
        "webhook_url": None,
        "dispatch_timeout": 1,
        "result_timeout": 300,
        "max_transitions": 50,
        "metadata": {"order": "A-17", "source": "shop"},
        "security": {"classification": "internal"},
        "policy": {"region": "eu"},
    }
    job_id = await create(api, "work", body)
    job = (await api.get(f"/api/v1/jobs/{job_id}", headers=CLIENT)).json()
    assert job["metadata"] == {"order": "A-17", "source": "shop"}
    assert job["max_transitions"] == 50
    created_at = datetime.fromisoformat(job["created_at"])
    assert (datetime.fromisoformat(job["deadline_at"]) - created_at).total_seconds() == 300
    history = (await api.get(f"/api/v1/jobs/{job_id}/history", headers=CLIENT)).json()
    assert history[0]["data"]["security"] == {"classification": "internal"}
    assert history[0]["data"]["policy"] == {"region": "eu"}
    assert history[0]["data"]["dispatch_timeout"] == 1
    # No worker serves that task type: the job fails once its task has waited dispatch_timeout.
    job = await ended(api, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "DISPATCH_TIMEOUT", job
    assert [e["type"] for e in (await api.get(f"/api/v1/jobs/{job_id}/history", headers=CLIENT)).json()][
        -2:
    ] == ["TaskLost", "JobFailed"]


async def test_a_task_taken_in_time_is_not_failed_by_dispatch_timeout(api: httpx.AsyncClient) -> None:
    job_id = await create(api, "work", {"initial_data": {}, "dispatch_timeout": 1})
    await answer_task(api, status="success", data={})
    job = await ended(api, job_id)
    assert job["status"] == JobStatus.WAITING_FOR_HUMAN, job


async def test_a_cycling_blueprint_fails_past_max_transitions(api: httpx.AsyncClient) -> None:
    capped = await ended(api, await create(api, "loop", {"initial_data": {}, "max_transitions": 5}))
    assert capped["status"] == "failed" and capped["error"]["code"] == "MAX_TRANSITIONS_EXCEEDED", capped
    assert capped["transitions"] == 6 and capped["max_transitions"] == 5
    assert "max_transitions" in capped["error"]["message"]
    # The default cap is MAX_TRANSITIONS_PER_JOB, 100.
    default = await ended(api, await create(api, "loop", {"initial_data": {}}))
    assert default["error"]["code"] == "MAX_TRANSITIONS_EXCEEDED" and default["transitions"] == 101


async def test_invalid_input_down_a_failure_transition_to_a_plain_end_fails_the_job(
    api: httpx.AsyncClient,
) -> None:
    job_id = await create(api, "work", {"initial_data": {}})
    await answer_task(api, status="failure", error={"code": "INVALID_INPUT_ERROR", "message": "no such file"})
    job = await ended(api, job_id)
    # The blueprint's failure path ran (cleanup's handler), and the job still ended failed.
    assert job["status"] == "failed" and job["current_state"] == "cleanup", job
    assert job["error"]["code"] == "INVALID_INPUT_ERROR" and job["state_history"]["cleaned"] is True


async def test_fields_selects_what_a_job_view_holds(api: httpx.AsyncClient) -> None:
    job_id = await create(api, "loop", {"initial_data": {"big": "x" * 1000}, "max_transitions": 1})
    await ended(api, job_id)
    some = (await api.get(f"/api/v1/jobs/{job_id}?fields=status,current_state", headers=CLIENT)).json()
    assert some == {"id": job_id, "status": "failed", "current_state": "ping"}
    bad = await api.get(f"/api/v1/jobs/{job_id}?fields=status,secret_sauce", headers=CLIENT)
    assert bad.status_code == 400 and "secret_sauce" in bad.json()["error"]["message"]


async def test_the_public_approval_link_decides_without_a_client_token(api: httpx.AsyncClient) -> None:
    job_id = await create(api, "work", {"initial_data": {}})
    await answer_task(api, status="success", data={})
    job = await ended(api, job_id)
    link = job["approval"]["public_url"]
    assert link.startswith(f"/_public/webhooks/approval/{job_id}?token=")
    wrong = await api.post(f"/_public/webhooks/approval/{job_id}?token=guess", json={"decision": "yes"})
    missing = await api.post(f"/_public/webhooks/approval/{job_id}", json={"decision": "yes"})
    odd = await api.post(
        f"/_public/webhooks/approval/{job_id}", json={"decision": "yes", "token": "é" * 32}
    )  # not ASCII: refused like any wrong token, never a 500 that would tell the job exists
    for refused in (wrong, missing, odd):
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "JOB_NOT_FOUND"
    offered = await api.post(link, json={"decision": "maybe"})
    assert offered.status_code == 422, offered.text  # a decision the job does not offer
    decided = await api.post(link, json={"decision": "yes", "comment": "from the e-mail"})
    assert decided.status_code == 200, decided.text
    assert decided.json() == {"status": "approval_received", "job_id": job_id}
    assert (await ended(api, job_id))["status"] == "finished"
    history = (await api.get(f"/api/v1/jobs/{job_id}/history", headers=CLIENT)).json()
    given = next(e for e in history if e["type"] == "ApprovalGiven")
    assert given["data"]["actor"] == "approval-link" and given["data"]["comment"] == "from the e-mail"
    # The request is closed: its link decides nothing more.
    assert (await api.post(link, json={"decision": "no"})).status_code == 404


async def test_without_the_client_api_only_worker_and_public_routes_answer(start_orchestrator: Any) -> None:
    orchestrator = await start_orchestrator(*blueprints(), enable_client_api=False)
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=10) as client:
        assert (await client.get("/api/v1/jobs", headers=CLIENT)).status_code == 404
        assert (await client.post("/api/v1/jobs/loop", json={}, headers=CLIENT)).status_code == 404
        assert (await client.get("/_public/status")).status_code == 200
        registered = await client.post(
            "/_worker/workers/register",
            json={"worker_id": "w1", "task_types": ["work"]},
            headers={"X-Worker-Token": "e2e-worker-token", "X-Worker-ID": "w1"},
        )
        assert registered.status_code == 200, registered.text
        # Jobs still come from the embedding program (or schedules).
        job = await orchestrator.engine.create_job("loop", max_transitions=2)
        await wait_for(lambda: _failed(orchestrator.engine, job.job_id))


async def _failed(engine: Any, job_id: Any) -> bool:
    return bool((await engine.get_job(job_id)).status == JobStatus.FAILED)
