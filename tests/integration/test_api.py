"""The REST job API over a real engine and database: shapes, auth, and clear 4xx errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from chronik.adapters.postgres import jobs
from chronik.adapters.postgres.queries import QUERIES
from chronik.api.app import create_app
from chronik.core.errors import ConfigError
from chronik.core.records import JobFilter, id_range
from chronik.demo import blueprints
from tests.conftest import wait_for

TOKEN = {"X-Client-Token": "test-token"}


@pytest.fixture
async def client(make_engine: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    engine = await make_engine(*blueprints, start=False)
    async with AsyncTestClient(app=create_app(engine, client_token="test-token")) as test_client:
        yield test_client


def assert_error(response: Any, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]


async def test_create_follow_and_read_history(client: AsyncTestClient[Any]) -> None:
    created = await client.post("/api/v1/jobs/review", json={"initial_data": {"amount": 12}}, headers=TOKEN)
    assert created.status_code == 202
    body = created.json()
    assert body["status"] == "accepted"
    job_id = body["job_id"]

    async def finished() -> Any:
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
        return job if job["status"] == "finished" else None

    job = await wait_for(finished)
    assert job["id"] == job["job_id"] == job_id
    assert job["blueprint_name"] == "review"
    assert job["current_state"] == "approved"
    assert job["initial_data"] == {"amount": 12}
    assert job["result"] == {"decision": "approved"}
    assert job["version"] == 3
    assert job["created_at"] <= job["updated_at"] == job["finished_at"]
    assert job["task"] is None and job["progress"] is None

    history = (await client.get(f"/api/v1/jobs/{job_id}/history", headers=TOKEN)).json()
    assert [e["type"] for e in history] == ["JobCreated", "StateEntered", "JobFinished"]
    assert [e["version"] for e in history] == [1, 2, 3]
    assert history[1]["data"] == {
        "state": "approved",
        "from_state": "check",
        "updates": {},
        "removed": [],
        "state_deadline_at": None,
        "on_timeout": None,
        "error": None,
    }
    assert history[2]["data"] == {
        "state": "approved",
        "updates": {"approved": {"decision": "approved"}},
        "removed": [],
    }


async def test_failure_state_is_visible(client: AsyncTestClient[Any]) -> None:
    created = await client.post("/api/v1/jobs/review", json={"initial_data": {"amount": 5000}}, headers=TOKEN)
    job_id = created.json()["job_id"]

    async def ended() -> Any:
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
        return job if job["status"] != "running" else None

    job = await wait_for(ended)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "FAILURE_STATE"
    assert job["result"] == {"decision": "rejected", "reason": "amount over 1000"}


async def test_cancel(client: AsyncTestClient[Any]) -> None:
    job_id = (await client.post("/api/v1/jobs/demo", json={}, headers=TOKEN)).json()["job_id"]
    first = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=TOKEN)
    # No worker runs here, so the demo job waits on its task until the cancel withdraws it.
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "cancellation_request_accepted", "job_id": job_id}
    assert (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel", json={"reason": "twice"}, headers=TOKEN)
    assert_error(again, 409, "JOB_NOT_CANCELLABLE", "already ended")


async def test_client_token_is_required(client: AsyncTestClient[Any]) -> None:
    assert_error(await client.post("/api/v1/jobs/demo", json={}), 401, "UNAUTHORIZED", "X-Client-Token")
    wrong = await client.get(f"/api/v1/jobs/{uuid4()}", headers={"X-Client-Token": "nope"})
    assert_error(wrong, 401, "UNAUTHORIZED", "not hold a valid client token")
    assert (await client.get("/_public/status")).json() == {"status": "ok"}


async def test_bad_input_gets_4xx_with_a_code(client: AsyncTestClient[Any]) -> None:
    assert_error(
        await client.post("/api/v1/jobs/nope", json={}, headers=TOKEN), 404, "BLUEPRINT_NOT_FOUND", "'nope'"
    )
    assert_error(
        await client.post("/api/v1/jobs/demo", json={"initial_data": {}, "extra": 1}, headers=TOKEN),
        400,
        "INVALID_INPUT_ERROR",
        "extra",
    )
    assert_error(
        await client.post("/api/v1/jobs/demo", json={"initial_data": [1, 2]}, headers=TOKEN),
        400,
        "INVALID_INPUT_ERROR",
        "initial_data",
    )
    malformed = await client.post(
        "/api/v1/jobs/demo", content=b"{not json", headers={**TOKEN, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "INVALID_INPUT_ERROR"
    assert_error(
        await client.get("/api/v1/jobs/xyz", headers=TOKEN), 400, "INVALID_INPUT_ERROR", "not a UUID"
    )
    assert_error(await client.get(f"/api/v1/jobs/{uuid4()}", headers=TOKEN), 404, "JOB_NOT_FOUND", "no job")
    assert_error(
        await client.get(f"/api/v1/jobs/{uuid4()}/history", headers=TOKEN), 404, "JOB_NOT_FOUND", "no job"
    )
    assert_error(await client.post(f"/api/v1/jobs/{uuid4()}/cancel", headers=TOKEN), 404, "JOB_NOT_FOUND", "")
    assert_error(await client.get("/api/v1/nothing-here", headers=TOKEN), 404, "NOT_FOUND", "")


async def test_openapi_docs_are_public(client: AsyncTestClient[Any]) -> None:
    schema = (await client.get("/_public/docs/openapi.json")).json()
    assert "/api/v1/jobs/{api_endpoint}" in schema["paths"]
    assert (await client.get("/_public/docs")).status_code == 200


def test_app_refuses_to_start_without_a_client_token() -> None:
    with pytest.raises(ConfigError, match="CLIENT_TOKEN"):
        create_app(object(), client_token=None)  # type: ignore[arg-type]


async def test_time_travel_and_history_pages(client: AsyncTestClient[Any]) -> None:
    job_id = (
        await client.post("/api/v1/jobs/review", json={"initial_data": {"amount": 3}}, headers=TOKEN)
    ).json()["job_id"]

    async def ended() -> Any:
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
        return job if job["status"] == "finished" else None

    final = await wait_for(ended)
    history = (await client.get(f"/api/v1/jobs/{job_id}/history", headers=TOKEN)).json()
    # Every version's state is the fold of that prefix of the log.
    seen = []
    for entry in history:
        then = await client.get(f"/api/v1/jobs/{job_id}?as_of_version={entry['version']}", headers=TOKEN)
        assert then.status_code == 200, then.text
        seen.append((then.json()["version"], then.json()["status"], then.json()["current_state"]))
    assert seen == [(1, "running", "check"), (2, "running", "approved"), (3, "finished", "approved")]
    last = (await client.get(f"/api/v1/jobs/{job_id}?as_of_version=3", headers=TOKEN)).json()
    assert last == {**final, "progress": None}
    # as_of reads the clock the job's timestamps show: at its created_at, it existed.
    at_creation = await client.get(
        f"/api/v1/jobs/{job_id}", params={"as_of": final["created_at"]}, headers=TOKEN
    )
    assert at_creation.json()["version"] == 1
    at_end = await client.get(f"/api/v1/jobs/{job_id}", params={"as_of": final["updated_at"]}, headers=TOKEN)
    assert at_end.json()["version"] == 3
    between = await client.get(f"/api/v1/jobs/{job_id}", params={"as_of": history[1]["at"]}, headers=TOKEN)
    assert between.json()["version"] == 2
    too_far = await client.get(f"/api/v1/jobs/{job_id}?as_of_version=9", headers=TOKEN)
    assert too_far.status_code == 400 and "from 1 to 3" in too_far.json()["error"]["message"]
    before = await client.get(
        f"/api/v1/jobs/{job_id}", params={"as_of": "2000-01-01T00:00:00Z"}, headers=TOKEN
    )
    assert before.status_code == 404

    page = (await client.get(f"/api/v1/jobs/{job_id}/history?after_version=1&limit=1", headers=TOKEN)).json()
    assert [e["version"] for e in page] == [2]
    assert (await client.get(f"/api/v1/jobs/{job_id}/history?after_version=3", headers=TOKEN)).json() == []
    bad = await client.get(f"/api/v1/jobs/{job_id}/history?limit=0", headers=TOKEN)
    assert bad.status_code == 400


async def test_list_jobs_with_filters_and_keyset_pages(client: AsyncTestClient[Any]) -> None:
    created = []
    for amount in (1, 2000, 3, 4000, 5):
        response = await client.post(
            "/api/v1/jobs/review", json={"initial_data": {"amount": amount}}, headers=TOKEN
        )
        created.append(response.json()["job_id"])

    async def all_ended() -> bool:
        page = (await client.get("/api/v1/jobs?blueprint=review&limit=500", headers=TOKEN)).json()
        return len(page["jobs"]) == 5 and all(j["status"] in ("finished", "failed") for j in page["jobs"])

    await wait_for(all_ended)
    ids: list[str] = []
    cursor = None
    while True:
        params = {"blueprint": "review", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/jobs", params=params, headers=TOKEN)).json()
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == list(reversed(created))  # newest first, each once
    failed = (await client.get("/api/v1/jobs?status=failed", headers=TOKEN)).json()["jobs"]
    assert sorted(j["id"] for j in failed) == sorted([created[1], created[3]])
    rejected = (await client.get("/api/v1/jobs?state=rejected", headers=TOKEN)).json()["jobs"]
    assert len(rejected) == 2
    for bad in ("status=a%00b", "created_before=0001-01-01T00:00:00%2B01:00"):
        refused = await client.get(f"/api/v1/jobs?{bad}", headers=TOKEN)
        assert refused.status_code == 400, (bad, refused.text)
    later = (
        await client.get("/api/v1/jobs", params={"created_after": "2999-01-01T00:00:00Z"}, headers=TOKEN)
    ).json()
    assert later == {"jobs": [], "next_cursor": None}
    for bad in ("limit=0", "cursor=nonsense", "created_after=2026-01-01T00:00:00"):
        response = await client.get(f"/api/v1/jobs?{bad}", headers=TOKEN)
        assert response.status_code == 400, (bad, response.text)


@pytest.mark.projection_damaged  # it writes jobs rows without events, to have enough of them cheaply
async def test_listing_reads_the_created_index(pool: Any) -> None:
    # Enough rows for the planner to prefer the indexes: a page must not scan and sort the table,
    # whichever filter picks it, and a filter that picks few jobs reads its own index.
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO jobs (job_id, blueprint, status, current_state, version, created_at, updated_at, "
            "state) SELECT gen_random_uuid(), 'b' || (i % 5), "
            "CASE WHEN i % 200 = 0 THEN 'quarantined' ELSE 'finished' END, 's', 1, "
            "now() - i * interval '1 second', now(), jsonb_build_object('client', 'c' || (i % 50), "
            "'initial_data', jsonb_build_object('order', i, 'region', 'r' || (i % 7)), "
            "'metadata', jsonb_build_object('batch', 'm' || (i % 1000))) "
            "FROM generate_series(1, 20000) AS i"
        )
        await conn.execute("ANALYZE jobs")
        prefix = str(await conn.fetchval("SELECT job_id FROM jobs OFFSET 77 LIMIT 1"))[:4]
        low, high = id_range(prefix)
        cases = {
            "jobs_created_idx": {},
            "jobs_client_created_idx": {"client": "'c7'"},
            "jobs_status_created_idx": {"status": "'quarantined'"},
            "jobs_pkey": {"low": f"'{low}'", "high": f"'{high}'"},
            "jobs_initial_data_idx": {"data": """'{"order": 77}'"""},
            "jobs_metadata_idx": {"metadata": """'{"batch": "m7"}'"""},
        }
        await conn.execute("PREPARE listing AS " + QUERIES["list_jobs"].rstrip(";"))
        plans = {}
        for index, given in cases.items():
            # list_jobs's parameters in order, NULL but for the limit and the filter of the case.
            names = "blueprint status state after before at id limit client low high data metadata statuses"
            args = ", ".join(given.get(name, "51" if name == "limit" else "NULL") for name in names.split())
            rows = await conn.fetch(f"EXPLAIN EXECUTE listing({args})")
            plans[index] = "\n".join(row[0] for row in rows)
    for index, plan in plans.items():
        assert index in plan, plan
    for index in ("jobs_created_idx", "jobs_client_created_idx", "jobs_status_created_idx"):
        assert "Sort" not in plans[index], plans[index]  # read in the page's order, stopped at the page


@pytest.mark.projection_damaged  # as above
async def test_the_listing_keeps_its_plans_when_run_again_and_again(pool: Any) -> None:
    # asyncpg prepares each statement once per connection, and PostgreSQL may then swap the plans
    # made with the values for one made without them (after five runs): a generic plan, which could
    # never use the index of a filter it cannot see. auto_explain shows the plans really run.
    async with pool.acquire() as conn:
        # Rows whose state decodes as a job's: the adapter reads them as it reads real ones.
        await conn.execute(
            "INSERT INTO jobs (job_id, blueprint, status, current_state, version, created_at, updated_at, "
            "state) SELECT id, 'b', 'finished', 's', 1, t, t, jsonb_build_object('job_id', id, "
            "'blueprint', 'b', 'status', 'finished', 'current_state', 's', 'version', 1, 'created_at', t, "
            "'updated_at', t, 'client', 'c' || (i % 50), 'state_history', '{}'::jsonb, "
            "'initial_data', jsonb_build_object('order', i), 'metadata', jsonb_build_object('m', i)) "
            "FROM (SELECT gen_random_uuid() AS id, i, now() - i * interval '1 second' AS t "
            "FROM generate_series(1, 20000) AS i) AS made"
        )
        await conn.execute("ANALYZE jobs")
        try:
            await conn.execute("LOAD 'auto_explain'")
        except asyncpg.PostgresError:
            pytest.skip("this PostgreSQL has no auto_explain")
        await conn.execute("SET auto_explain.log_min_duration = 0")
        await conn.execute("SET auto_explain.log_level = 'notice'")
        notices: list[str] = []

        def heard(_conn: Any, message: Any) -> None:
            notices.append(message.message)

        conn.add_log_listener(heard)
        plain = JobFilter()
        for n in range(8):
            await jobs.list_states(conn, plain, limit=50, after=None)
            await jobs.list_states(conn, JobFilter(data={"order": 100 + n}), limit=50, after=None)
            await jobs.list_states(conn, JobFilter(metadata={"m": 200 + n}), limit=50, after=None)
            assert await jobs.count_jobs(conn, JobFilter(data={"order": 300 + n})) == 1
        conn.remove_log_listener(heard)
    plans = [text for text in notices if "Query Text" in text]
    assert len(plans) == 32, notices[:3]
    for plan in plans:
        assert "Seq Scan" not in plan, plan
    assert sum("jobs_initial_data_idx" in plan for plan in plans) == 16
    assert sum("jobs_metadata_idx" in plan for plan in plans) == 8


async def test_idempotency_key_returns_the_first_job(client: AsyncTestClient[Any]) -> None:
    async def create(key: str) -> str:
        headers = {**TOKEN, "Idempotency-Key": key}
        response = await client.post(
            "/api/v1/jobs/review", json={"initial_data": {"amount": 1}}, headers=headers
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    first = await asyncio.gather(*(create("order-7") for _ in range(5)))
    assert len(set(first)) == 1  # racing requests with one key made one job
    assert await create("order-8") != first[0]
    listed = (await client.get("/api/v1/jobs?blueprint=review", headers=TOKEN)).json()["jobs"]
    assert len(listed) == 2
    reused = await client.post(
        "/api/v1/jobs/review",
        json={"initial_data": {"amount": 2}},
        headers={**TOKEN, "Idempotency-Key": "order-7"},
    )
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    too_long = await client.post(
        "/api/v1/jobs/review", json={}, headers={**TOKEN, "Idempotency-Key": "k" * 300}
    )
    assert too_long.status_code == 400


async def test_human_approval(make_engine: Any) -> None:
    from chronik import Blueprint

    bp = Blueprint("refund")

    @bp.handler_for("ask", is_start=True)
    async def ask(initial_data: dict[str, Any], actions: Any) -> None:
        actions.await_human_approval(
            f"refund {initial_data['amount']}?", transitions={"approved": "pay", "rejected": "deny"}
        )

    @bp.handler_for("pay", is_end=True)
    async def pay() -> None: ...

    @bp.handler_for("deny", is_end=True, is_failure=True)
    async def deny() -> None: ...

    engine = await make_engine(bp, start=False)
    async with AsyncTestClient(app=create_app(engine, client_token="test-token")) as client:
        job_id = (
            await client.post("/api/v1/jobs/refund", json={"initial_data": {"amount": 9}}, headers=TOKEN)
        ).json()["job_id"]

        async def waiting() -> Any:
            job = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
            return job if job["status"] == "waiting_for_human" else None

        job = await wait_for(waiting)
        assert job["approval"]["message"] == "refund 9?"
        assert job["approval"]["decisions"] == ["approved", "rejected"]
        wrong = await client.post(
            f"/api/v1/jobs/{job_id}/approval", json={"decision": "maybe"}, headers=TOKEN
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "INVALID_DECISION"
        decided = await client.post(
            f"/api/v1/jobs/{job_id}/approval", json={"decision": "approved", "comment": "fine"}, headers=TOKEN
        )
        assert decided.json() == {"status": "approval_received", "job_id": job_id}

        async def paid() -> Any:
            job = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
            return job if job["status"] == "finished" else None

        assert (await wait_for(paid))["current_state"] == "pay"
        late = await client.post(
            f"/api/v1/jobs/{job_id}/approval", json={"decision": "approved"}, headers=TOKEN
        )
        assert late.status_code == 409 and late.json()["error"]["code"] == "JOB_NOT_AWAITING_APPROVAL"
        history = (await client.get(f"/api/v1/jobs/{job_id}/history", headers=TOKEN)).json()
        given = next(e for e in history if e["type"] == "ApprovalGiven")
        assert given["data"] == {"decision": "approved", "comment": "fine", "actor": "client"}
