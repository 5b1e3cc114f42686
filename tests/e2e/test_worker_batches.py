"""chronik's round-trip savers over real HTTP: several tasks per poll, results in batches (settled
as the single route settles them, a bad entry answered in its place), and the SDK using both, or
falling back to the single route against an orchestrator without them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn

from chronik import Blueprint, Worker
from chronik.api.app import create_app
from chronik.core.signing import sign
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, free_port

pytestmark = pytest.mark.e2e

TOKEN = "batch-worker-token"
WORKER = {"X-Worker-Token": TOKEN, "X-Worker-ID": "w1"}
POLL = "/_worker/workers/w1/tasks/next?timeout=2&available_skills=work"


def blueprints() -> tuple[Blueprint, Blueprint]:
    one = Blueprint("t")

    @one.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task("work", initial_data, transitions={"success": "done"}, max_retries=2)

    @one.handler_for("done", is_end=True)
    async def done() -> None: ...

    wide = Blueprint("wide")

    @wide.handler_for("start", is_start=True)
    async def fan_out(initial_data: dict[str, Any], actions: Any) -> None:
        branches = [
            {"task_type": "work", "params": {"i": i}, "max_retries": 2} for i in range(initial_data["n"])
        ]
        actions.dispatch_parallel(branches, aggregate_into="collect")

    @wide.aggregator_for("collect")
    async def collect(
        aggregation_results: dict[str, Any], state_history: dict[str, Any], actions: Any
    ) -> None:
        state_history["statuses"] = sorted(r["status"] for r in aggregation_results.values())
        actions.transition_to("joined")

    @wide.handler_for("joined", is_end=True)
    async def joined() -> None: ...

    return one, wide


@pytest.fixture
async def setup(start_orchestrator: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    orchestrator = await start_orchestrator(*blueprints(), global_worker_token=TOKEN, retry_base_seconds=0.05)
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=10) as client:
        yield orchestrator.engine, client


async def queued(engine: Any, count: int) -> None:
    async def enough() -> bool:
        async with engine.database.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'queued'") >= count)

    await wait_for(enough)


async def test_a_poll_takes_several_tasks_only_when_it_asks(setup: Any) -> None:
    engine, client = setup
    for i in range(5):
        await engine.create_job("t", {"i": i})
    await queued(engine, 5)
    three = await client.get(POLL + "&max_tasks=3", headers=WORKER)
    assert three.status_code == 200 and len(three.json()["tasks"]) == 3
    one = await client.get(POLL, headers=WORKER)  # no max_tasks: one task object, Avtomatika's shape
    assert one.status_code == 200 and set(one.json()) >= {"job_id", "task_id", "type", "params", "metadata"}
    rest = await client.get(POLL + "&max_tasks=10", headers=WORKER)  # fewer than asked: at once
    assert rest.status_code == 200 and len(rest.json()["tasks"]) == 1
    empty = await client.get(POLL.replace("timeout=2", "timeout=0") + "&max_tasks=10", headers=WORKER)
    assert empty.status_code == 204
    taken = [t["task_id"] for t in three.json()["tasks"] + rest.json()["tasks"]] + [one.json()["task_id"]]
    assert len(set(taken)) == 5
    zero = await client.get(POLL + "&max_tasks=0", headers=WORKER)
    assert zero.status_code == 400 and "max_tasks" in zero.json()["error"]["message"]


async def test_batch_results_answer_each_entry_in_place(setup: Any) -> None:
    engine, client = setup
    jobs = [await engine.create_job("t", {"i": i}) for i in range(2)]
    await queued(engine, 2)
    tasks = (await client.get(POLL + "&max_tasks=2", headers=WORKER)).json()["tasks"]
    mine = {t["job_id"]: t["task_id"] for t in tasks}
    await engine.create_job("t", {"i": 2})
    await queued(engine, 1)
    foreign = (await client.get(POLL.replace("w1", "w2"), headers={**WORKER, "X-Worker-ID": "w2"})).json()
    batch = {
        "results": [
            {"task_id": mine[str(jobs[0].job_id)], "data": {"n": 0}},
            {"task_id": f"{UUID(int=7)}:1"},
            {"status": "success"},
            {"task_id": foreign["task_id"]},
            {"task_id": mine[str(jobs[1].job_id)], "status": "failure", "error": {"code": "TRANSIENT_ERROR"}},
            {"task_id": mine[str(jobs[0].job_id)], "data": {"n": 0}},
        ]
    }
    answer = await client.post("/_worker/tasks/results", json=batch, headers=WORKER)
    assert answer.status_code == 200, answer.text
    entries = answer.json()["results"]
    assert [(e["status"], e.get("reason")) for e in entries] == [
        ("accepted", None),
        ("refused", "TASK_NOT_FOUND"),
        ("refused", "INVALID_INPUT_ERROR"),
        ("refused", "TASK_NOT_HELD"),
        ("accepted", None),
        ("ignored", "duplicate"),
    ]
    assert "results[2]" in entries[2]["message"]

    async def finished() -> bool:
        return bool((await engine.get_job(jobs[0].job_id)).status == "finished")

    await wait_for(finished)
    types = [r.type for r in await engine.job_history(jobs[1].job_id)]
    assert types[-2:] == ["TaskFailed", "TaskRetryScheduled"]
    # The batch as a whole: a bad message is refused, entries and all.
    for bad in ({"results": []}, {"results": "nope"}, []):
        refused = await client.post("/_worker/tasks/results", json=bad, headers=WORKER)
        assert refused.status_code == 400, refused.text


async def test_the_results_of_a_fan_out_settle_together(setup: Any) -> None:
    engine, client = setup
    job = await engine.create_job("wide", {"n": 6})
    await queued(engine, 6)
    tasks = (await client.get(POLL + "&max_tasks=10", headers=WORKER)).json()["tasks"]
    assert len(tasks) == 6
    failing = tasks[0]["task_id"]
    results = [{"task_id": t["task_id"], "data": {"i": t["params"]["i"]}} for t in tasks[1:]]
    results.append({"task_id": failing, "status": "failure", "error": {"code": "TRANSIENT_ERROR"}})
    answer = await client.post("/_worker/tasks/results", json={"results": results}, headers=WORKER)
    assert [e["status"] for e in answer.json()["results"]] == ["accepted"] * 6
    # One append for the batch: five completions and a failure with its retry, in the batch's order.
    history = await engine.job_history(job.job_id)
    appended = [r.type for r in history if r.version > 2]
    assert appended == ["TaskCompleted"] * 5 + ["TaskFailed", "TaskRetryScheduled"]
    assert len({r.recorded_at for r in history if r.version > 2}) == 1

    async def retried() -> Any:  # due in a moment; a retry that becomes due sends no notification
        polled = await client.get(POLL.replace("timeout=2", "timeout=0") + "&max_tasks=10", headers=WORKER)
        return polled.json()["tasks"] if polled.status_code == 200 else None

    retry = await wait_for(retried)
    assert [t["task_id"] for t in retry] == [failing.replace(":1", ":2")]
    last = await client.post(
        "/_worker/tasks/results", json={"results": [{"task_id": retry[0]["task_id"]}]}, headers=WORKER
    )
    assert last.json()["results"] == [{"status": "accepted"}]

    async def joined() -> Any:
        state = await engine.get_job(job.job_id)
        return state if state.status == "finished" else None

    assert (await wait_for(joined)).state_history["statuses"] == ["success"] * 6


async def test_one_bad_result_of_a_fan_out_costs_the_others_nothing(setup: Any) -> None:
    # Results of one job settle together; a value PostgreSQL refuses (a NUL character) in one of
    # them must not fail the group: the others are taken, and only that one is refused.
    engine, client = setup
    await engine.create_job("wide", {"n": 3})
    await queued(engine, 3)
    tasks = (await client.get(POLL + "&max_tasks=10", headers=WORKER)).json()["tasks"]
    assert len(tasks) == 3
    results = [{"task_id": t["task_id"], "data": {"i": t["params"]["i"]}} for t in tasks]
    results[1]["data"] = {"text": "nul \u0000 here"}
    answer = await client.post("/_worker/tasks/results", json={"results": results}, headers=WORKER)
    assert answer.status_code == 200
    statuses = [entry["status"] for entry in answer.json()["results"]]
    assert statuses == ["accepted", "refused", "accepted"], answer.json()


async def test_a_signed_batch_is_one_message(start_orchestrator: Any, tmp_path: Path) -> None:
    config = tmp_path / "workers.toml"
    config.write_text('[signer]\ntoken = "signer-secret"\n')
    orchestrator = await start_orchestrator(*blueprints(), workers_config_path=str(config))
    headers = {"X-Worker-Token": "signer-secret", "X-Worker-ID": "signer"}
    body: dict[str, Any] = {"results": [{"task_id": f"{UUID(int=7)}:1"}], "timestamp": 1}
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=headers) as client:
        unsigned = await client.post("/_worker/tasks/results", json=body)
        assert unsigned.status_code == 403 and "must be signed" in unsigned.text
        signed = {**body, "security": {"signature": sign(body, "signer-secret"), "signer_id": "signer"}}
        answer = await client.post("/_worker/tasks/results", json=signed)
        assert answer.status_code == 200 and answer.json()["results"][0]["reason"] == "TASK_NOT_FOUND"
        forged = {**signed, "results": [{"task_id": f"{UUID(int=8)}:1"}]}
        assert (await client.post("/_worker/tasks/results", json=forged)).status_code == 403


class Counting:
    """An orchestrator's app seen through a counter of worker requests by route; ``older`` hides
    chronik's extensions as an older orchestrator (or Avtomatika) would: ``/tasks/results`` is a
    404 and ``max_tasks`` is ignored."""

    def __init__(self, app: Any, *, older: bool = False) -> None:
        self.app = app
        self.older = older
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_worker/"):
            route = "poll" if scope["path"].endswith("/tasks/next") else scope["path"].rsplit("/", 1)[1]
            self.requests[route] += 1
            if self.older and route == "results":
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b'{"error": {"code": "NOT_FOUND"}}'})
                return
            if self.older:
                query = b"&".join(
                    p for p in scope["query_string"].split(b"&") if not p.startswith(b"max_tasks=")
                )
                scope = {**scope, "query_string": query}
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test owns signals
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def run_sdk_worker(make_engine: Any, *, older: bool, workers_toml: Path | None = None) -> Counter[str]:
    """40 jobs, queued before an in-process SDK worker (capacity 10) starts; its requests by route.

    With ``workers_toml`` the worker ``sdk`` has its own token there, so it signs every message.
    """
    engine = await make_engine(*blueprints(), global_worker_token=TOKEN, max_poll_seconds=2.0)
    config = str(workers_toml) if workers_toml else None
    app = Counting(
        create_app(
            engine,
            client_token=CLIENT_TOKEN,
            worker_token=TOKEN,
            workers_config_path=config,
            manage_engine=False,
        ),
        older=older,
    )
    jobs = [await engine.create_job("t", {"i": i}) for i in range(40)]
    await queued(engine, 40)
    async with serving(app) as url:
        token = "sdk-own-secret" if workers_toml else TOKEN
        worker = Worker("sdk", url=url, token=token, capacity=10, poll_timeout=2.0)

        @worker.task("work")
        async def work(params: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {"i": params["i"]}

        serving_worker = asyncio.create_task(worker.serve())

        async def finished() -> bool:
            states = [await engine.get_job(job.job_id) for job in jobs]
            return all(state.status == "finished" for state in states)

        await wait_for(finished, within=30)
        worker.stop()
        await asyncio.wait_for(serving_worker, timeout=10)
    return app.requests


@pytest.mark.parametrize("signed", [False, True])
async def test_the_sdk_takes_tasks_and_sends_results_in_batches(
    make_engine: Any, tmp_path: Path, signed: bool
) -> None:
    workers_toml = tmp_path / "workers.toml"
    workers_toml.write_text('[sdk]\ntoken = "sdk-own-secret"\n')
    requests = await run_sdk_worker(make_engine, older=False, workers_toml=workers_toml if signed else None)
    # One task per poll and one request per result would be 80 requests for 40 tasks.
    assert requests["results"] + requests["poll"] < 40, requests
    assert requests["result"] == 0


async def test_the_sdk_falls_back_to_one_result_per_request(make_engine: Any) -> None:
    requests = await run_sdk_worker(make_engine, older=True)
    assert requests["results"] == 1  # tried once, answered 404, never again
    assert requests["result"] == 40
