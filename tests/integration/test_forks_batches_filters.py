"""The API side of the console: forks, batch actions, the list's new filters, and offline API docs."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from chronik import Blueprint
from chronik._runtime.batches import JobBatches
from chronik.api.app import create_app
from chronik.core.errors import JobNotCancellable
from chronik.core.records import JobFilter
from chronik.core.state import JobState
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
HOOK = "http://127.0.0.1:9/hook"  # nothing listens: deliveries fail, which is all the same here


def flow() -> Blueprint:
    """start (counts its runs) -> wait (a task) -> done."""
    bp = Blueprint("flow", api_endpoint="flow")

    @bp.handler_for("start", is_start=True)
    async def start(state_history: dict[str, Any], actions: Any) -> None:
        state_history["starts"] = state_history.get("starts", 0) + 1
        actions.transition_to("wait")

    @bp.handler_for("wait")
    async def wait(state_history: dict[str, Any], actions: Any) -> None:
        state_history["waits"] = state_history.get("waits", 0) + 1
        actions.dispatch_task("work", {}, transitions={"success": "done", "failure": "done"})

    @bp.handler_for("done", is_end=True)
    async def done(state_history: dict[str, Any]) -> None:
        state_history["done"] = {"starts": state_history["starts"], "waits": state_history["waits"]}

    return bp


@pytest.fixture
async def engine(make_engine: Any) -> Any:
    return await make_engine(flow(), start=False, webhook_secret="hook-secret-0123456789")


@pytest.fixture
async def client(engine: Any, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    config = tmp_path / "clients.toml"
    config.write_text(CLIENTS)
    app = create_app(engine, client_token=None, clients_config_path=str(config), worker_token="worker-token")
    async with AsyncTestClient(app=app) as test_client:
        registered = await test_client.post(
            "/_worker/workers/register", json={"worker_id": "w1", "task_types": ["work"]}, headers=WORKER
        )
        assert registered.status_code == 200, registered.text
        yield test_client


async def create(client: AsyncTestClient[Any], who: dict[str, str], **body: Any) -> str:
    response = await client.post("/api/v1/jobs/flow", json=body, headers=who)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["job_id"])
    await wait_for(lambda: status_is(client, job_id, who, "waiting_for_worker"))
    return job_id


async def answer(client: AsyncTestClient[Any], **result: Any) -> None:
    """Take the next task as w1 and answer it."""
    polled = await client.get(
        "/_worker/workers/w1/tasks/next?timeout=5&available_skills=work", headers=WORKER
    )
    assert polled.status_code == 200, polled.text
    answered = await client.post(
        "/_worker/tasks/result", json={"task_id": polled.json()["task_id"], **result}, headers=WORKER
    )
    assert answered.status_code == 200, answered.text


async def job(client: AsyncTestClient[Any], job_id: str, who: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}", headers=who)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def status_is(client: AsyncTestClient[Any], job_id: str, who: dict[str, str], status: str) -> bool:
    return (await job(client, job_id, who))["status"] == status


async def listed(client: AsyncTestClient[Any], query: str, who: dict[str, str]) -> set[str]:
    response = await client.get(f"/api/v1/jobs?{query}", headers=who)
    assert response.status_code == 200, response.text
    return {found["id"] for found in response.json()["jobs"]}


def assert_error(response: Any, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert fragment in response.json()["error"]["message"]


# -- forks ------------------------------------------------------------------------------------


async def test_a_fork_reruns_the_state_of_that_version_and_both_histories_say_so(
    client: AsyncTestClient[Any],
) -> None:
    source = await create(
        client, BILLING, initial_data={"order": 7}, metadata={"team": "red"}, webhook_url=HOOK
    )
    await answer(client, status="success", data={})
    await wait_for(lambda: status_is(client, source, BILLING, "finished"))
    ended = await job(client, source, BILLING)
    assert ended["result"] == {"starts": 1, "waits": 1} and ended["version"] == 6
    notices = (await client.get(f"/api/v1/jobs/{source}/webhooks", headers=BILLING)).json()

    # Version 2: the job had just entered "wait" (its handler not run yet): the fork runs it.
    forked = await client.post(f"/api/v1/jobs/{source}/fork", json={"from_version": 2}, headers=BILLING)
    assert forked.status_code == 202, forked.text
    new = forked.json()["job_id"]
    assert forked.json() == {
        "status": "accepted",
        "job_id": new,
        "forked_from": {"job_id": source, "version": 2},
    }
    await wait_for(lambda: status_is(client, new, BILLING, "waiting_for_worker"))
    copy = await job(client, new, BILLING)
    assert copy["forked_from"] == {"job_id": source, "version": 2} and copy["forks"] == []
    assert copy["current_state"] == "wait" and copy["state_history"] == {"starts": 1, "waits": 1}
    assert copy["initial_data"] == {"order": 7} and copy["metadata"] == {"team": "red"}
    assert copy["client"] == "billing" and copy["blueprint_name"] == "flow"

    # The source is as it was, but for the record of the fork; its webhook is not told again.
    after = await job(client, source, BILLING)
    assert after["forks"] == [new] and after["version"] == 7
    assert {key: after[key] for key in ("status", "updated_at", "finished_at", "result")} == {
        key: ended[key] for key in ("status", "updated_at", "finished_at", "result")
    }
    last = (await client.get(f"/api/v1/jobs/{source}/history", headers=BILLING)).json()[-1]
    assert last["type"] == "JobForked" and last["meta"]["actor"] == "billing"
    assert last["data"] == {"new_job_id": new, "from_version": 2, "actor": "billing"}
    assert (await client.get(f"/api/v1/jobs/{source}/webhooks", headers=BILLING)).json() == notices
    first = (await client.get(f"/api/v1/jobs/{new}/history", headers=BILLING)).json()[0]
    assert first["type"] == "JobCreated" and first["data"]["forked_from"] == {"job_id": source, "version": 2}
    assert first["data"]["webhook_url"] is None  # not taken over

    # The fork runs on by itself; the source's result does not change.
    await answer(client, status="success", data={})
    await wait_for(lambda: status_is(client, new, BILLING, "finished"))
    assert (await job(client, new, BILLING))["result"] == {"starts": 1, "waits": 1}
    assert (await job(client, source, BILLING))["version"] == 7

    # From version 1 (created, nothing run): everything runs again. An admin's fork is the owner's.
    again = await client.post(f"/api/v1/jobs/{source}/fork", json={"from_version": 1}, headers=AUDITOR)
    assert again.status_code == 202, again.text
    await wait_for(lambda: status_is(client, again.json()["job_id"], BILLING, "waiting_for_worker"))
    assert (await job(client, again.json()["job_id"], BILLING))["state_history"] == {"starts": 1, "waits": 1}
    assert (await job(client, source, AUDITOR))["forks"] == [new, again.json()["job_id"]]


async def test_a_fork_of_a_running_job_leaves_it_running(client: AsyncTestClient[Any]) -> None:
    source = await create(client, OPS)
    forked = await client.post(
        f"/api/v1/jobs/{source}/fork", json={"from_version": 3, "webhook_url": HOOK}, headers=OPS
    )
    assert forked.status_code == 202, forked.text
    new = forked.json()["job_id"]
    # Version 3 is the task's dispatch: the fork runs "wait" again and waits for its own task.
    await wait_for(lambda: status_is(client, new, OPS, "waiting_for_worker"))
    assert (await job(client, new, OPS))["state_history"] == {"starts": 1, "waits": 2}
    first = (await client.get(f"/api/v1/jobs/{new}/history", headers=OPS)).json()[0]
    assert first["data"]["webhook_url"] == HOOK
    source_job = await job(client, source, OPS)
    assert source_job["status"] == "waiting_for_worker" and source_job["task"] is not None
    # Both tasks are queued, and each answer reaches its own job.
    await answer(client, status="success", data={})
    await answer(client, status="success", data={})
    for job_id in (source, new):
        await wait_for(lambda job_id=job_id: status_is(client, job_id, OPS, "finished"))


async def test_a_fork_taken_while_a_handler_runs_does_not_drop_its_outcome(make_engine: Any) -> None:
    # The fork appends to the source's stream while its handler runs: the handler's outcome then
    # meets a newer version. The fork changed nothing but the record, so the outcome is committed
    # after it; dropped, it would leave the step leased for STEP_LEASE_SECONDS (300 s).
    started, release = asyncio.Event(), asyncio.Event()
    bp = Blueprint("slow")

    @bp.handler_for("start", is_start=True)
    async def start(state_history: dict[str, Any], actions: Any) -> None:
        state_history["runs"] = state_history.get("runs", 0) + 1
        started.set()
        await release.wait()
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    engine = await make_engine(bp)
    source = await engine.create_job("slow", actor="billing")
    await asyncio.wait_for(started.wait(), 10)
    fork = await engine.fork_job(source.job_id, 1, actor="billing")
    release.set()
    for job_id in (source.job_id, fork.job_id):
        await wait_for(lambda job_id=job_id: _status_is(engine, job_id, "finished"), within=5)
    history = [recorded.type for recorded in await engine.job_history(source.job_id)]
    assert history == ["JobCreated", "JobForked", "StateEntered", "JobFinished"]
    assert (await engine.get_job(source.job_id)).forks == (fork.job_id,)
    assert (await engine.get_job(fork.job_id)).state_history == {"runs": 1}


async def _status_is(engine: Any, job_id: UUID, status: str) -> bool:
    return bool((await engine.get_job(job_id)).status == status)


async def test_fork_errors(client: AsyncTestClient[Any]) -> None:
    source = await create(client, BILLING)
    fork = f"/api/v1/jobs/{source}/fork"
    for version in (0, 4, -1):
        assert_error(
            await client.post(fork, json={"from_version": version}, headers=BILLING),
            400,
            "INVALID_INPUT_ERROR",
            "from_version must be from 1 to 3",
        )
    assert_error(await client.post(fork, json={"from_version": 1}, headers=OPS), 404, "JOB_NOT_FOUND")
    unknown = f"/api/v1/jobs/{uuid4()}/fork"
    assert_error(await client.post(unknown, json={"from_version": 1}, headers=BILLING), 404, "JOB_NOT_FOUND")
    assert (
        await client.post("/api/v1/jobs/nope/fork", json={"from_version": 1}, headers=BILLING)
    ).status_code == 400
    assert (await client.post(fork, json={"from": 1}, headers=BILLING)).status_code == 400
    bad_hook = {"from_version": 1, "webhook_url": "ftp://x"}
    assert_error(
        await client.post(fork, json=bad_hook, headers=BILLING), 400, "INVALID_INPUT_ERROR", "webhook_url"
    )
    # Nothing of that was recorded.
    assert (await job(client, source, BILLING))["forks"] == []


# -- batch actions ----------------------------------------------------------------------------


async def test_batch_retry_and_cancel_act_on_the_callers_matching_jobs(client: AsyncTestClient[Any]) -> None:
    quarantined = []
    for n in range(2):
        quarantined.append(await create(client, BILLING, initial_data={"n": n}))
        await answer(client, status="failure", error={"code": "PERMANENT_ERROR", "message": "bad"})
        await wait_for(lambda job_id=quarantined[-1]: status_is(client, job_id, BILLING, "quarantined"))
    tagged = [await create(client, BILLING, initial_data={"batch": "x", "n": n}) for n in range(3)]
    theirs = await create(client, OPS, initial_data={"batch": "x"})

    retry, cancel = "/api/v1/jobs/batch/retry", "/api/v1/jobs/batch/cancel"
    preview = (await client.post(retry, json={}, headers=BILLING)).json()
    assert preview == {"dry_run": True, "count": 2, "first_ids": quarantined[::-1], "cap": 10000}
    assert (await client.post(retry, json={"filter": {}, "dry_run": True}, headers=OPS)).json()["count"] == 0
    everyone = (await client.post(cancel, json={"dry_run": True}, headers=AUDITOR)).json()
    assert everyone["count"] == 6 and len(everyone["first_ids"]) == 6
    mine = (await client.post(cancel, json={"filter": {"data": {"batch": "x"}}}, headers=BILLING)).json()
    assert mine["count"] == 3 and set(mine["first_ids"]) == set(tagged)

    done = await client.post(retry, json={"dry_run": False}, headers=BILLING)
    assert done.status_code == 200, done.text
    assert done.json() == {
        "dry_run": False,
        "count": 2,
        "done": 2,
        "skipped": [],
        "more": False,
        "cap": 10000,
    }
    for job_id in quarantined:
        assert (await job(client, job_id, BILLING))["status"] == "waiting_for_worker"

    body = {"filter": {"data": {"batch": "x"}}, "dry_run": False, "reason": "tidy up"}
    cancelled = (await client.post(cancel, json=body, headers=BILLING)).json()
    assert (cancelled["count"], cancelled["done"], cancelled["more"]) == (3, 3, False)
    for job_id in tagged:
        view = await job(client, job_id, BILLING)
        assert view["status"] == "cancelled" and view["error"]["message"] == "tidy up"
    assert (await job(client, theirs, OPS))["status"] == "waiting_for_worker"
    history = (await client.get(f"/api/v1/jobs/{tagged[0]}/history", headers=BILLING)).json()
    assert history[-1]["type"] == "JobCancelled" and history[-1]["data"]["actor"] == "billing"

    assert_error(
        await client.post(retry, json={"reason": "x"}, headers=BILLING), 400, "INVALID_INPUT_ERROR", "reason"
    )
    assert (await client.post(cancel, json={"filter": {"colour": "red"}}, headers=BILLING)).status_code == 400
    bad_prefix = {"filter": {"id_prefix": "xyz"}}
    assert_error(
        await client.post(cancel, json=bad_prefix, headers=BILLING), 400, "INVALID_INPUT_ERROR", "id_prefix"
    )


async def test_a_batch_skips_a_job_that_ended_meanwhile_and_stops_at_its_cap(make_engine: Any) -> None:
    engine = await make_engine(flow())
    made = [(await engine.create_job("flow", actor="billing")).job_id for _ in range(4)]
    for job_id in made:
        await wait_for(lambda job_id=job_id: _waiting(engine, job_id))
    jobs = engine.instance.jobs

    class Racing:
        """The job service, but the newest job is cancelled by someone else just before the batch acts."""

        async def cancel(self, job_id: UUID, **how: Any) -> JobState:
            if job_id == made[-1]:
                await jobs.cancel(job_id, reason="someone else")
            return await jobs.cancel(job_id, **how)

    batches = JobBatches(Racing(), engine.store, cap=3)  # type: ignore[arg-type]
    outcome = await batches.run("cancel", JobFilter(), actor="billing", owner="billing")
    assert (outcome.count, outcome.done, outcome.more) == (3, 2, True)
    (skip,) = outcome.skipped
    assert skip.job_id == made[-1] and skip.code == JobNotCancellable.code
    rest = await JobBatches(jobs, engine.store, cap=3).run(
        "cancel", JobFilter(), actor="ops", owner="billing"
    )
    assert (rest.count, rest.done, rest.skipped, rest.more) == (1, 1, [], False)
    assert [(await engine.get_job(job_id)).status for job_id in made] == ["cancelled"] * 4
    assert await engine.count_jobs(JobFilter(status="cancelled"), owner="billing") == 4
    assert await engine.count_jobs(JobFilter(status="cancelled"), owner="ops") == 0


async def _waiting(engine: Any, job_id: UUID) -> bool:
    return bool((await engine.get_job(job_id)).status == "waiting_for_worker")


# -- the list's filters -----------------------------------------------------------------------


async def test_the_list_filters_by_id_prefix_and_by_data_and_metadata(client: AsyncTestClient[Any]) -> None:
    seven = await create(client, BILLING, initial_data={"order": 7, "region": "eu"}, metadata={"team": "red"})
    eight = await create(client, BILLING, initial_data={"order": 8, "region": "us", "code": "7"})
    theirs = await create(client, OPS, initial_data={"order": 7})

    assert await listed(client, "data.order=7", BILLING) == {seven}
    assert await listed(client, "data.order=7", AUDITOR) == {seven, theirs}
    assert await listed(client, "data.order=7", OPS) == {theirs}
    assert await listed(client, "data.region=us", BILLING) == {eight}
    assert await listed(client, 'data.code="7"', BILLING) == {eight}  # the string, not the number
    assert await listed(client, "data.code=7", BILLING) == set()
    assert await listed(client, "data.order=7&data.region=us", BILLING) == set()  # both must hold
    assert await listed(client, "metadata.team=red", BILLING) == {seven}
    assert await listed(client, "metadata.team=red&status=waiting_for_worker&blueprint=flow", BILLING) == {
        seven
    }
    assert await listed(client, "metadata.team=blue", BILLING) == set()
    assert await listed(client, f"id_prefix={seven[:24]}", BILLING) == {seven}
    assert await listed(client, f"id_prefix={seven.upper()}", BILLING) == {seven}  # a whole id too
    assert await listed(client, f"id_prefix={theirs[:24]}", BILLING) == set()
    for bad in ("id_prefix=xyz", "id_prefix=", "data.=1", "data.a=1&data.a=2"):
        assert (await client.get(f"/api/v1/jobs?{bad}", headers=BILLING)).status_code == 400, bad
    page = (await client.get("/api/v1/jobs?data.order=7&limit=1", headers=AUDITOR)).json()
    assert len(page["jobs"]) == 1 and page["next_cursor"] is not None
    rest = await client.get(
        f"/api/v1/jobs?data.order=7&limit=1&cursor={page['next_cursor']}", headers=AUDITOR
    )
    assert {page["jobs"][0]["id"], rest.json()["jobs"][0]["id"]} == {seven, theirs}


# -- the API docs, offline ----------------------------------------------------------------------


async def test_the_api_docs_load_nothing_from_another_site(client: AsyncTestClient[Any]) -> None:
    page = await client.get("/_public/docs")
    assert page.status_code == 200, page.text
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page.text)
    urls = [url for tag in tags for url in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", tag)]
    assert len(urls) == 4, tags  # the style sheet, two scripts and the icon
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # this server's, no CDN's
        asset = await client.get(url)
        assert asset.status_code == 200 and asset.content, url
    assert (
        (await client.get("/_public/docs/assets/swagger-ui.css"))
        .headers["content-type"]
        .startswith("text/css")
    )
    assert (await client.get("/_public/docs/assets/nothing.js")).status_code == 404
    paths = (await client.get("/_public/docs/openapi.json")).json()["paths"]
    for path in ("/api/v1/jobs/{job_id}/fork", "/api/v1/jobs/batch/cancel", "/api/v1/jobs/batch/retry"):
        assert path in paths, sorted(paths)
    assert not any(path.startswith("/_public/docs/assets") for path in paths)


def test_swagger_ui_ships_in_the_package() -> None:
    folder = resources.files("chronik.api") / "static" / "swagger"
    names = {entry.name for entry in folder.iterdir()}
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "LICENSE"):
        assert name in names and (folder / name).read_bytes(), name
    # And a wheel takes them: package-data names every file.
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["chronik.api"]
    for name in names - {"__pycache__"}:
        assert any(fnmatch.fnmatch(f"static/swagger/{name}", pattern) for pattern in patterns), name
