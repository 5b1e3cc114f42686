"""Tenancy over real HTTP: a job is its creator's; another client meets a 404 on every route.

Three clients from one ``clients.toml`` (in Avtomatika's format, with its free-form fields):
``billing`` and ``ops`` are tenants, ``auditor`` has ``role = "admin"`` and sees both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from chronik import Blueprint
from chronik.core.state import JobStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CLIENTS = """\
[billing]
token = "billing-token-0123456789"
plan = "pro"
languages = ["en", "de"]   # Avtomatika's free-form client parameters load unchanged
priority_support = true

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


def review_blueprint() -> Blueprint:
    """A task, then a person's decision."""
    bp = Blueprint("review", api_endpoint="review")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("work", {}, transitions={"success": "decide", "failure": "rejected"})

    @bp.handler_for("decide")
    async def decide(actions: Any) -> None:
        actions.await_human_approval("ship it?", transitions={"yes": "done", "no": "rejected"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("rejected", is_end=True, is_failure=True)
    async def rejected() -> None: ...

    return bp


@pytest.fixture
async def api(start_orchestrator: Any, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    clients = tmp_path / "clients.toml"
    clients.write_text(CLIENTS)
    orchestrator = await start_orchestrator(
        review_blueprint(), clients_config_path=str(clients), global_worker_token="worker-token"
    )
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=10) as client:
        response = await client.post(
            "/_worker/workers/register", json={"worker_id": "w1", "task_types": ["work"]}, headers=WORKER
        )
        assert response.status_code == 200, response.text
        yield client


async def create(api: httpx.AsyncClient, who: dict[str, str]) -> str:
    response = await api.post("/api/v1/jobs/review", json={"initial_data": {"secret": 1}}, headers=who)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def answer_task(api: httpx.AsyncClient, **result: Any) -> None:
    """Take the next task as worker w1 and answer it."""
    polled = await api.get("/_worker/workers/w1/tasks/next?timeout=5&available_skills=work", headers=WORKER)
    assert polled.status_code == 200, polled.text
    body = {"task_id": polled.json()["task_id"], **result}
    answered = await api.post("/_worker/tasks/result", json=body, headers=WORKER)
    assert answered.status_code == 200, answered.text


async def status_of(api: httpx.AsyncClient, job_id: str, who: dict[str, str]) -> str:
    return str((await api.get(f"/api/v1/jobs/{job_id}", headers=who)).json()["status"])


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "JOB_NOT_FOUND"


async def test_another_clients_job_is_not_found_on_every_route(api: httpx.AsyncClient) -> None:
    quarantined = await create(api, BILLING)
    await answer_task(api, status="failure", error={"code": "PERMANENT_ERROR", "message": "bad"})
    await wait_for(lambda: _is(api, quarantined, BILLING, JobStatus.QUARANTINED))
    waiting = await create(api, BILLING)
    await answer_task(api, status="success", data={})
    await wait_for(lambda: _is(api, waiting, BILLING, JobStatus.WAITING_FOR_HUMAN))
    theirs = await create(api, OPS)

    for job_id in (quarantined, waiting):
        for response in (
            await api.get(f"/api/v1/jobs/{job_id}", headers=OPS),
            await api.get(f"/api/v1/jobs/{job_id}?wait=5", headers=OPS),  # at once, not after 5 s
            await api.get(f"/api/v1/jobs/{job_id}?as_of_version=1", headers=OPS),
            await api.get(f"/api/v1/jobs/{job_id}?fields=status", headers=OPS),
            await api.get(f"/api/v1/jobs/{job_id}/history", headers=OPS),
            await api.get(f"/api/v1/jobs/{job_id}/events", headers=OPS),
            await api.get(f"/api/v1/jobs/{job_id}/webhooks", headers=OPS),
            await api.post(f"/api/v1/jobs/{job_id}/cancel", json={"reason": "mine now"}, headers=OPS),
            await api.post(f"/api/v1/jobs/{job_id}/retry", headers=OPS),
            await api.post(f"/api/v1/jobs/{job_id}/approval", json={"decision": "yes"}, headers=OPS),
            await api.post(f"/api/v1/jobs/{job_id}/fork", json={"from_version": 1}, headers=OPS),
        ):
            assert_not_found(response)
    # Exactly the answer an unknown id gets: nothing tells a guesser that the job exists.
    unknown = await api.get(f"/api/v1/jobs/{UUID(int=7)}", headers=OPS)
    mine = await api.get(f"/api/v1/jobs/{quarantined}", headers=OPS)
    assert unknown.json()["error"]["message"].replace(str(UUID(int=7)), "ID") == mine.json()["error"][
        "message"
    ].replace(quarantined, "ID")

    # Lists hold only the caller's jobs; the admin's hold everyone's.
    assert await listed(api, "/api/v1/jobs", OPS) == {theirs}
    assert await listed(api, "/api/v1/jobs", BILLING) == {quarantined, waiting}
    assert await listed(api, "/api/v1/jobs", AUDITOR) == {quarantined, waiting, theirs}
    assert await listed(api, "/api/v1/jobs/quarantined", OPS) == set()
    assert await listed(api, "/api/v1/jobs/quarantined", BILLING) == {quarantined}
    assert await listed(api, "/api/v1/jobs/quarantined", AUDITOR) == {quarantined}
    # A filter cannot widen what a client sees, nor can a batch act beyond it.
    assert await listed(api, "/api/v1/jobs?status=quarantined", OPS) == set()
    assert await listed(api, f"/api/v1/jobs?id_prefix={quarantined[:24]}&data.secret=1", OPS) == set()
    assert await listed(api, f"/api/v1/jobs?id_prefix={quarantined[:24]}&data.secret=1", BILLING) == {
        quarantined
    }
    for who, cancellable, retryable in ((OPS, 1, 0), (BILLING, 2, 1), (AUDITOR, 3, 1)):
        for action, count in (("cancel", cancellable), ("retry", retryable)):
            preview = await api.post(f"/api/v1/jobs/batch/{action}", json={"dry_run": True}, headers=who)
            assert preview.json()["count"] == count, (action, preview.text)
    retried = await api.post("/api/v1/jobs/batch/retry", json={"dry_run": False}, headers=OPS)
    assert retried.json()["count"] == 0

    # Nothing the other client tried changed the jobs; their owner acts on them as before.
    assert await status_of(api, quarantined, BILLING) == JobStatus.QUARANTINED
    history = (await api.get(f"/api/v1/jobs/{waiting}/history", headers=BILLING)).json()
    assert history[0]["data"]["client"] == "billing"
    assert all(event["meta"].get("actor") != "ops" for event in history)
    assert (await api.post(f"/api/v1/jobs/{quarantined}/retry", headers=BILLING)).status_code == 200
    approved = await api.post(f"/api/v1/jobs/{waiting}/approval", json={"decision": "yes"}, headers=BILLING)
    assert approved.status_code == 200, approved.text
    await wait_for(lambda: _is(api, waiting, BILLING, JobStatus.FINISHED))
    assert (await api.get(f"/api/v1/jobs/{waiting}/events", headers=BILLING)).status_code == 200

    # The admin reads and acts on any client's job.
    assert (await api.get(f"/api/v1/jobs/{theirs}/history", headers=AUDITOR)).status_code == 200
    cancelled = await api.post(f"/api/v1/jobs/{theirs}/cancel", json={"reason": "audit"}, headers=AUDITOR)
    assert cancelled.status_code == 200, cancelled.text
    assert await status_of(api, theirs, OPS) == JobStatus.CANCELLED


async def test_reloading_workers_is_for_admins(api: httpx.AsyncClient) -> None:
    refused = await api.post("/api/v1/admin/reload-workers", headers=BILLING)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    assert (await api.post("/api/v1/admin/reload-workers", headers=AUDITOR)).status_code == 200


async def test_idempotency_keys_are_each_clients_own(api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = await api.post("/api/v1/jobs/review", json={"initial_data": {}}, headers={**BILLING, **key})
    again = await api.post("/api/v1/jobs/review", json={"initial_data": {}}, headers={**BILLING, **key})
    other = await api.post("/api/v1/jobs/review", json={"initial_data": {}}, headers={**OPS, **key})
    assert first.json()["job_id"] == again.json()["job_id"] != other.json()["job_id"]
    assert_not_found(await api.get(f"/api/v1/jobs/{first.json()['job_id']}", headers=OPS))


async def _is(api: httpx.AsyncClient, job_id: str, who: dict[str, str], status: str) -> bool:
    return await status_of(api, job_id, who) == status


async def listed(api: httpx.AsyncClient, path: str, who: dict[str, str]) -> set[str]:
    response = await api.get(path, headers=who)
    assert response.status_code == 200, response.text
    body = response.json()
    jobs = body["jobs"] if isinstance(body, dict) else body
    return {job["id"] for job in jobs}
