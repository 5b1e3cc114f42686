"""The ambiguous commit (issue 16, scenario 3): the server committed, the caller saw its connection break.

Each test puts ``chaos.proxy.Proxy`` between a real engine and its database and drops the
connection of one commit once PostgreSQL has committed it, before its answer reaches chronik.
Whatever chronik does next (a 503, a retry, a step run again), the write must count once:
no event appended twice, no outcome lost, every ``jobs`` row equal to the fold of its log
(the ``database_url`` fixture checks that last one after every test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

from chaos.proxy import Proxy
from chronik import Blueprint
from chronik.engine import Engine
from tests.conftest import dsn, fast_settings, wait_for
from tests.e2e.conftest import CLIENT_TOKEN, spawn_worker, start_orchestrator, work_blueprint

__all__ = ["spawn_worker", "start_orchestrator"]  # fixtures, used by name

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": CLIENT_TOKEN}

COMMIT_JOB = "chronik_chain_v1("
"""A fragment of chronik's one commit statement (``commit_job``), and of no other."""


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[Proxy]:
    """A proxy in front of this test's database."""
    params = conninfo_to_dict(database_url)
    proxy = Proxy("127.0.0.1", 0, str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def make_engine(database_url: str, proxy: Proxy) -> AsyncIterator[Callable[..., Any]]:
    """As the shared ``make_engine``, but every engine reaches the database through ``proxy``."""
    params = conninfo_to_dict(database_url)
    url = dsn(
        host="127.0.0.1",
        port=proxy.port,
        user=str(params["user"]),
        dbname=str(params["dbname"]),
        password=None if params.get("password") is None else str(params["password"]),
    )
    started: list[Engine] = []

    async def make(*blueprints: Any, start: bool = True, **settings: Any) -> Engine:
        engine = Engine(url, blueprints=blueprints, settings=fast_settings(**settings))
        started.append(engine)
        if start:
            await engine.start()
        return engine

    yield make
    for engine in reversed(started):
        with contextlib.suppress(Exception):
            await engine.stop()


def quick() -> Blueprint:
    bp = Blueprint("quick", api_endpoint="quick")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def gated(entered: asyncio.Event, gate: asyncio.Event) -> Blueprint:
    """start (waits for ``gate``) -> middle -> done: the test arms the proxy while ``start`` waits."""
    bp = Blueprint("gated", api_endpoint="gated")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        entered.set()
        await gate.wait()
        actions.transition_to("middle")

    @bp.handler_for("middle")
    async def middle(actions: Any) -> None:
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


async def events_of(database_url: str, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The job's log as stored, read past the proxy: (version, type, data)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT version, type, data::text FROM events WHERE job_id = $1 ORDER BY version", UUID(job_id)
        )
        return [(row["version"], row["type"], json.loads(row["data"])) for row in rows]
    finally:
        await conn.close()


async def fetchval(database_url: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def finished(api: httpx.AsyncClient, job_id: str, *, within: float = 20) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = (await api.get(f"/api/v1/jobs/{job_id}", headers=CLIENT)).json()
        return job if job["status"] in ("finished", "failed", "cancelled") else None

    return dict(await wait_for(check, within=within))


def assert_one_log(log: list[tuple[int, str, dict[str, Any]]]) -> None:
    """Versions 1..n without a gap or a repeat, and one end."""
    assert [version for version, _, _ in log] == list(range(1, len(log) + 1)), log
    assert [kind for _, kind, _ in log].count("JobFinished") == 1, log


async def test_a_create_whose_commit_is_lost_answers_503_and_its_retry_finds_the_one_job(
    start_orchestrator: Any, proxy: Proxy, database_url: str
) -> None:
    orchestrator = await start_orchestrator(quick())
    headers = {**CLIENT, "Idempotency-Key": "ambiguous-1"}
    body = {"initial_data": {"n": 1}}
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=15) as api:
        # The create's transaction is the one that takes the key: its COMMIT is the one dropped.
        proxy.drop_after_commit(marker="INSERT INTO idempotency_keys")
        first = await api.post("/api/v1/jobs/quick", json=body, headers=headers)
        assert proxy.dropped == 1
        assert first.status_code == 503, first.text
        assert first.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
        assert int(first.headers["Retry-After"]) >= 1
        again = await api.post("/api/v1/jobs/quick", json=body, headers=headers)
        assert again.status_code in (200, 202), again.text
        job_id = again.json()["job_id"]
        await finished(api, job_id)
    assert await fetchval(database_url, "SELECT count(*) FROM jobs") == 1
    assert await fetchval(database_url, "SELECT job_id::text FROM jobs") == job_id
    assert_one_log(await events_of(database_url, job_id))


async def test_b_a_step_commit_that_is_lost_still_ends_the_job_once(
    start_orchestrator: Any, proxy: Proxy, database_url: str
) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()
    orchestrator = await start_orchestrator(gated(entered, gate))
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=15) as api:
        created = await api.post("/api/v1/jobs/gated", json={"initial_data": {}}, headers=CLIENT)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        await asyncio.wait_for(entered.wait(), 10)
        # The executor's commit of start's outcome is one statement: committed at its Sync.
        proxy.drop_after_commit(marker=COMMIT_JOB)
        gate.set()
        started = asyncio.get_running_loop().time()
        job = await finished(api, job_id, within=30)
        took = asyncio.get_running_loop().time() - started
    assert proxy.dropped == 1
    assert job["status"] == "finished"
    log = await events_of(database_url, job_id)
    assert_one_log(log)
    entered_states = [data["state"] for _, kind, data in log if kind == "StateEntered"]
    assert entered_states == ["middle", "done"], log
    assert took < 10, f"the job waited {took:.1f} s after its lost commit"


async def test_c_a_worker_result_whose_commit_is_lost_is_applied_once(
    start_orchestrator: Any, spawn_worker: Any, proxy: Proxy, database_url: str
) -> None:
    orchestrator = await start_orchestrator(work_blueprint())
    spawn_worker(orchestrator.url, TASK_SLEEP="1")
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=15) as api:
        created = await api.post("/api/v1/jobs/work", json={"initial_data": {"n": 21}}, headers=CLIENT)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]

        async def leased() -> bool:
            status = await fetchval(database_url, "SELECT status FROM tasks WHERE job_id = $1", UUID(job_id))
            return bool(status == "leased")

        await wait_for(leased, within=20)
        # The worker sleeps a second on its task: the next commit is its result's.
        proxy.drop_after_commit(marker=COMMIT_JOB)
        job = await finished(api, job_id, within=30)
    assert proxy.dropped == 1
    assert job["status"] == "finished"
    assert job["state_history"]["answer"] == 42
    log = await events_of(database_url, job_id)
    assert_one_log(log)
    completed = Counter(
        (data["task_id"], data["attempt"]) for _, kind, data in log if kind == "TaskCompleted"
    )
    assert list(completed.values()) == [1], log
    assert [kind for _, kind, _ in log].count("TaskDispatched") == 1, log
