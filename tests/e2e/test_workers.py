"""Workers as separate processes over real HTTP: results, retries, quarantine, leases, auth."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, WORKER_TOKEN, work_blueprint

pytestmark = pytest.mark.e2e

HEADERS = {"X-Client-Token": CLIENT_TOKEN}


async def create(url: str, blueprint: str, data: dict[str, Any]) -> str:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        response = await client.post(f"/api/v1/jobs/{blueprint}", json={"initial_data": data})
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])


async def job(url: str, job_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        return dict((await client.get(f"/api/v1/jobs/{job_id}")).json())


async def history(url: str, job_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        return list((await client.get(f"/api/v1/jobs/{job_id}/history")).json())


async def settled(url: str, job_id: str, *statuses: str, within: float = 30) -> dict[str, Any]:
    wanted = statuses or ("finished", "failed", "cancelled", "quarantined")

    async def check() -> Any:
        current = await job(url, job_id)
        return current if current["status"] in wanted else None

    return dict(await wait_for(check, within=within))


async def test_a_job_runs_through_a_worker_process(start_orchestrator: Any, spawn_worker: Any) -> None:
    orchestrator = await start_orchestrator(work_blueprint())
    spawn_worker(orchestrator.url, TASK_SLEEP="1")
    job_id = await create(orchestrator.url, "work", {"n": 21, "progress": True})

    async def progressing() -> Any:
        current = await job(orchestrator.url, job_id)
        return current if current["progress"] else None

    running = await wait_for(progressing, within=20)
    assert running["status"] == "waiting_for_worker"
    assert running["progress"]["progress"] == 50
    assert running["progress"]["message"] == "halfway"
    assert running["task"]["task_type"] == "work"
    done = await settled(orchestrator.url, job_id)
    assert done["status"] == "finished"
    assert done["state_history"]["answer"] == 42
    types = [e["type"] for e in await history(orchestrator.url, job_id)]
    assert types == ["JobCreated", "TaskDispatched", "TaskCompleted", "StateEntered", "JobFinished"]


async def test_custom_status_and_unhandled_status(start_orchestrator: Any, spawn_worker: Any) -> None:
    orchestrator = await start_orchestrator(work_blueprint())
    spawn_worker(orchestrator.url)
    review = await create(orchestrator.url, "work", {"status": "needs_review"})
    unknown = await create(orchestrator.url, "work", {"status": "shrug"})
    assert (await settled(orchestrator.url, review))["current_state"] == "review"
    failed = await settled(orchestrator.url, unknown)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "UNHANDLED_TASK_STATUS"
    assert "'shrug'" in failed["error"]["message"]


@pytest.mark.parametrize(
    "code", ["TRANSIENT_ERROR", "RESOURCE_EXHAUSTED_ERROR", "TIMEOUT_ERROR", "INTERNAL_ERROR"]
)
async def test_retryable_codes_back_off_then_quarantine(
    start_orchestrator: Any, spawn_worker: Any, code: str
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(max_retries=3))
    spawn_worker(orchestrator.url)
    job_id = await create(orchestrator.url, "work", {"fail_attempts": [1, 2, 3, 4], "fail_with": code})
    quarantined = await settled(orchestrator.url, job_id)
    assert quarantined["status"] == "quarantined"
    assert quarantined["error"]["code"] == code
    events = await history(orchestrator.url, job_id)
    assert [e["type"] for e in events].count("TaskFailed") == 4
    delays = [e["data"]["delay_seconds"] for e in events if e["type"] == "TaskRetryScheduled"]
    assert len(delays) == 3
    assert delays == sorted(delays) and delays[0] < delays[-1], delays
    assert [e["data"]["attempt"] for e in events if e["type"] == "TaskRetryScheduled"] == [2, 3, 4]


@pytest.mark.parametrize("code", ["PERMANENT_ERROR", "SECURITY_ERROR", "DEPENDENCY_ERROR"])
async def test_permanent_codes_quarantine_at_once_and_an_admin_can_retry(
    start_orchestrator: Any, spawn_worker: Any, code: str
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(max_retries=3))
    spawn_worker(orchestrator.url)
    job_id = await create(orchestrator.url, "work", {"fail_attempts": [1], "fail_with": code, "n": 5})
    quarantined = await settled(orchestrator.url, job_id)
    assert quarantined["status"] == "quarantined"
    assert [e["type"] for e in await history(orchestrator.url, job_id)][-2:] == [
        "TaskFailed",
        "JobQuarantined",
    ]
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=HEADERS) as client:
        retried = await client.post(f"/api/v1/jobs/{job_id}/retry")
        assert retried.status_code == 200, retried.text
    finished = await settled(orchestrator.url, job_id, "finished")
    assert finished["state_history"]["answer"] == 10
    types = [e["type"] for e in await history(orchestrator.url, job_id)]
    assert "JobRetried" in types and types[-1] == "JobFinished"
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=HEADERS) as client:
        again = await client.post(f"/api/v1/jobs/{job_id}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_NOT_RETRYABLE"


async def test_invalid_input_fails_the_job(start_orchestrator: Any, spawn_worker: Any) -> None:
    with_failure_path = work_blueprint("work")
    orchestrator = await start_orchestrator(with_failure_path)
    spawn_worker(orchestrator.url)
    job_id = await create(
        orchestrator.url, "work", {"fail_attempts": [1], "fail_with": "INVALID_INPUT_ERROR"}
    )
    failed = await settled(orchestrator.url, job_id)
    # The blueprint gave a "failure" transition, to a failure end state: the job fails there, without retries.
    assert failed["status"] == "failed" and failed["current_state"] == "failed"
    types = [e["type"] for e in await history(orchestrator.url, job_id)]
    assert "TaskRetryScheduled" not in types


async def test_kill_9_worker_tasks_are_re_leased_and_none_is_lost(
    start_orchestrator: Any, spawn_worker: Any, tmp_path: Path
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(max_retries=3), task_lease_seconds=2.0)
    doomed = spawn_worker(orchestrator.url, WORKER_ID="doomed", TASK_SLEEP="60", HEARTBEAT_INTERVAL="0.5")
    job_ids = [await create(orchestrator.url, "work", {"n": i}) for i in range(8)]

    async def holding() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            held = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE status = 'leased' AND worker_id = 'doomed'"
            )
        return bool(held >= 8)

    await wait_for(holding, within=20)
    await asyncio.sleep(2.5)  # heartbeats keep the leases alive past their first expiry
    assert await holding()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    spawn_worker(orchestrator.url, WORKER_ID="rescuer")
    for job_id in job_ids:
        assert (await settled(orchestrator.url, job_id, within=40))["status"] == "finished"
    for job_id in job_ids:
        events = await history(orchestrator.url, job_id)
        types = Counter(e["type"] for e in events)
        assert types["JobFinished"] == 1 and types["TaskCompleted"] == 1, types
        lost = [e["data"] for e in events if e["type"] == "TaskLost"]
        # The dead worker's attempts ran out their leases; a poll it left in flight may even have
        # taken one more attempt before the orchestrator saw it hang up. The rescuer did the next one.
        assert lost and all((d["worker_id"], d["reason"]) == ("doomed", "lease_expired") for d in lost), lost
        completed = next(e["data"] for e in events if e["type"] == "TaskCompleted")
        assert (completed["worker_id"], completed["attempt"]) == ("rescuer", lost[-1]["attempt"] + 1)


async def test_timeout_is_a_timeout_error(start_orchestrator: Any, spawn_worker: Any) -> None:
    orchestrator = await start_orchestrator(work_blueprint(max_retries=0, timeout_seconds=1))
    spawn_worker(orchestrator.url, TASK_SLEEP="5")
    job_id = await create(orchestrator.url, "work", {})
    quarantined = await settled(orchestrator.url, job_id, within=30)
    assert quarantined["status"] == "quarantined"
    assert quarantined["error"]["code"] == "TIMEOUT_ERROR"
    lost = [e for e in await history(orchestrator.url, job_id) if e["type"] == "TaskLost"]
    assert lost[0]["data"]["reason"] == "timed_out"


async def test_cancel_tells_the_worker_and_ignores_its_late_result(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(work_blueprint())
    spawn_worker(orchestrator.url, TASK_SLEEP="30", HEARTBEAT_INTERVAL="0.3")
    job_id = await create(orchestrator.url, "work", {})

    async def leased() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'leased'"))

    await wait_for(leased, within=20)
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=HEADERS) as client:
        assert (await client.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 200

    async def gone() -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            return not await conn.fetchval("SELECT count(*) FROM tasks")

    await wait_for(gone, within=20)  # the worker was told, stopped, and its "cancelled" result was answered
    assert [e["type"] for e in await history(orchestrator.url, job_id)] == [
        "JobCreated", "TaskDispatched", "JobCancelled",
    ]  # fmt: skip


async def test_wrong_token_and_foreign_results_are_refused(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(work_blueprint())
    job_id = await create(orchestrator.url, "work", {})
    wrong = {"X-Worker-Token": "not-the-token", "X-Worker-ID": "intruder"}
    right = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "honest"}
    async with httpx.AsyncClient(base_url=orchestrator.url) as client:
        poll = await client.get(
            "/_worker/workers/intruder/tasks/next?timeout=1&available_skills=work", headers=wrong
        )
        assert poll.status_code == 401 and poll.json()["error"]["code"] == "UNAUTHORIZED"
        missing = await client.get("/_worker/workers/intruder/tasks/next?timeout=1&available_skills=work")
        assert missing.status_code == 401
        # The task is still queued for an honest worker, which gets it.
        task = await client.get(
            "/_worker/workers/honest/tasks/next?timeout=5&available_skills=work", headers=right
        )
        assert task.status_code == 200
        payload = task.json()
        assert payload["job_id"] == job_id and payload["type"] == "work"
        assert isinstance(payload["timestamp"], int) and payload["params"] == {}
        # Someone else's result for it, and results for unknown tasks, change nothing.
        other = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "other"}
        foreign = await client.post(
            "/_worker/tasks/result", headers=other, json={"task_id": payload["task_id"], "job_id": job_id}
        )
        assert foreign.status_code == 409 and foreign.json()["error"]["code"] == "TASK_NOT_HELD"
        unknown = await client.post(
            "/_worker/tasks/result", headers=right, json={"task_id": f"{UUID(int=7)}:1", "job_id": job_id}
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "TASK_NOT_FOUND"
        garbage = await client.post("/_worker/tasks/result", headers=right, json={"task_id": "nope"})
        assert garbage.status_code == 400
        assert (await job(orchestrator.url, job_id))["status"] == "waiting_for_worker"
        # The holder's result is accepted once; its repeats are answered, not refused.
        body = {"task_id": payload["task_id"], "job_id": job_id, "data": {"answer": 1}}
        first = await client.post("/_worker/tasks/result", headers=right, json=body)
        assert first.json() == {"status": "accepted"}
        for _ in range(2):
            repeat = await client.post("/_worker/tasks/result", headers=right, json=body)
            assert repeat.status_code == 200 and repeat.json()["status"] == "ignored"
        heartbeat = await client.patch(
            "/_worker/workers/ghost", headers={**right, "X-Worker-ID": "ghost"}, json={}
        )
        assert heartbeat.status_code == 404 and "not found" in heartbeat.text.lower()
    finished = await settled(orchestrator.url, job_id)
    assert finished["status"] == "finished"
    types = [e["type"] for e in await history(orchestrator.url, job_id)]
    assert types.count("TaskCompleted") == 1


async def test_per_worker_tokens_and_signatures(start_orchestrator: Any, tmp_path: Path) -> None:
    config = tmp_path / "workers.toml"
    config.write_text('[signer]\ntoken = "signer-secret"\n')
    orchestrator = await start_orchestrator(work_blueprint(), workers_config_path=str(config))
    headers = {"X-Worker-Token": "signer-secret", "X-Worker-ID": "signer"}
    from chronik.core.signing import sign

    body: dict[str, Any] = {"worker_id": "signer", "task_types": ["work"], "timestamp": 1}
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=headers) as client:
        unsigned = await client.post("/_worker/workers/register", json=body)
        assert unsigned.status_code == 403 and "must be signed" in unsigned.json()["error"]["message"]
        forged = {**body, "security": {"signature": "0" * 64, "signer_id": "signer"}}
        bad = await client.post("/_worker/workers/register", json=forged)
        assert bad.status_code == 403 and "signature does not match" in bad.json()["error"]["message"]
        signed = {**body, "security": {"signature": sign(body, "signer-secret"), "signer_id": "signer"}}
        good = await client.post("/_worker/workers/register", json=signed)
        assert good.status_code == 200 and good.json()["status"] == "registered"
        # The global token does not open a worker id that has its own token.
        global_token = await client.post(
            "/_worker/workers/register", json=signed, headers={"X-Worker-Token": WORKER_TOKEN}
        )
        assert global_token.status_code == 401
        # A reload picks up a changed file; a broken one is refused and the old tokens stay.
        config.write_text("[signer]\ntoken = 5\n")
        admin = {"X-Client-Token": CLIENT_TOKEN}
        refused = await client.post("/api/v1/admin/reload-workers", headers=admin)
        assert refused.status_code == 422
        assert "[signer]: field 'token' must be a non-empty string" in refused.json()["error"]["message"]
        assert (await client.post("/_worker/workers/register", json=signed)).status_code == 200
        config.write_text('[signer]\ntoken = "rotated"\n')
        assert (await client.post("/api/v1/admin/reload-workers", headers=admin)).status_code == 200
        assert (await client.post("/_worker/workers/register", json=signed)).status_code == 401


async def test_sigterm_finishes_in_flight_tasks_and_a_second_one_exits_at_once(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(work_blueprint())

    async def leased_by(worker_id: str) -> bool:
        async with orchestrator.engine.database.pool.acquire() as conn:
            count = await conn.fetchval("SELECT count(*) FROM tasks WHERE worker_id = $1", worker_id)
        return bool(count)

    polite = spawn_worker(orchestrator.url, WORKER_ID="polite", TASK_SLEEP="2")
    first = await create(orchestrator.url, "work", {"n": 1})
    await wait_for(lambda: leased_by("polite"), within=20)
    polite.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(polite.wait, 20) == 0
    assert (await settled(orchestrator.url, first))["status"] == "finished"  # it finished before exiting

    hasty = spawn_worker(orchestrator.url, WORKER_ID="hasty", TASK_SLEEP="30")
    second = await create(orchestrator.url, "work", {"n": 2})
    await wait_for(lambda: leased_by("hasty"), within=20)
    hasty.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    hasty.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(hasty.wait, 5) == 1
    spawn_worker(orchestrator.url, WORKER_ID="heir")
    done = await settled(orchestrator.url, second, within=30)
    assert done["status"] == "finished"
    lost = [e["data"] for e in await history(orchestrator.url, second) if e["type"] == "TaskLost"]
    assert lost and lost[0]["worker_id"] == "hasty"
