"""The worker budgets under the default settings: they stop waste (empty polls, refusals, bad tokens,
heartbeat floods) with 429 and Retry-After, and never refuse a request that does work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest

from chronik import Blueprint
from chronik.settings import Settings
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

DEFAULTS = Settings()
TOKEN = "limits-worker-token"
WORKER = {"X-Worker-Token": TOKEN, "X-Worker-ID": "w1"}
SPIN = "/_worker/workers/w1/tasks/next?timeout=0&available_skills=work"


def task_blueprint() -> Blueprint:
    bp = Blueprint("t")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("work", {}, transitions={"success": "done"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


@pytest.fixture
async def setup(start_orchestrator: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An orchestrator with chronik's default worker budgets (the tests' own turn them off)."""
    orchestrator = await start_orchestrator(
        task_blueprint(),
        global_worker_token=TOKEN,
        worker_rate_heartbeats=DEFAULTS.worker_rate_heartbeats,
        worker_rate_polls=DEFAULTS.worker_rate_polls,
        worker_rate_other=DEFAULTS.worker_rate_other,
    )
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=10) as client:
        yield orchestrator.engine, client


async def until_refused(
    send: Callable[[], Awaitable[httpx.Response]], budget: int
) -> tuple[int, httpx.Response]:
    """Send until a 429; how many were answered before it, and the 429.

    Windows are fixed minutes: if one ends during the burst, the count starts again, so
    a burst twice the budget always meets the limit.
    """
    answered = 0
    for _ in range(2 * budget + 2):
        response = await send()
        if response.status_code == 429:
            return answered, response
        answered += 1
    raise AssertionError(f"no 429 after {answered} requests (budget {budget})")


def assert_rate_limited(response: httpx.Response, wasted: str) -> None:
    assert response.json()["error"]["code"] == "RATE_LIMITED", response.text
    assert wasted in response.json()["error"]["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def waiting_job(engine: Any) -> Any:
    job = await engine.create_job("t")

    async def queued() -> bool:
        async with engine.database.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM tasks WHERE job_id = $1", job.job_id))

    await wait_for(queued)
    return job


async def counted(engine: Any) -> dict[str, int]:
    """What the rate-limit table holds, by key: a good request must leave no trace there."""
    async with engine.database.pool.acquire() as conn:
        rows = await conn.fetch("SELECT key, sum(hits)::int AS hits FROM rate_limit_counters GROUP BY key")
    return {row["key"]: row["hits"] for row in rows}


async def test_work_costs_no_count_and_empty_polls_spinning_get_429(setup: Any) -> None:
    engine, client = setup
    # A worker that gets tasks: polls, results, heartbeats at a steady pace. Nothing is counted.
    for _ in range(3):
        await waiting_job(engine)
        task = await client.get(SPIN.replace("timeout=0", "timeout=5"), headers=WORKER)
        assert task.status_code == 200, task.text
        result = await client.post(
            "/_worker/tasks/result", json={"task_id": task.json()["task_id"]}, headers=WORKER
        )
        assert result.json() == {"status": "accepted"}
    assert (await client.patch("/_worker/workers/w1", json={}, headers=WORKER)).status_code == 404
    assert await counted(engine) == {"worker:w1:other": 1}  # the heartbeat of an unregistered worker
    # Spinning on empty polls (timeout=0): answered 204 within the budget, then 429.
    answered, refused = await until_refused(
        lambda: client.get(SPIN, headers=WORKER), DEFAULTS.worker_rate_polls
    )
    assert 1 <= answered <= 2 * DEFAULTS.worker_rate_polls  # a window may end in the burst
    assert_rate_limited(refused, "empty polls")
    # The budget stops waste, not work: a poll that finds a task still gets it.
    job = await waiting_job(engine)
    task = await client.get(SPIN, headers=WORKER)
    assert task.status_code == 200 and task.json()["job_id"] == str(job.job_id)
    assert (await client.get(SPIN, headers=WORKER)).status_code == 429  # and the next empty one does not


async def test_a_flood_of_bad_results_gets_429_and_good_results_still_go_through(setup: Any) -> None:
    engine, client = setup
    await waiting_job(engine)
    task = (await client.get(SPIN, headers=WORKER)).json()

    def unknown_result() -> Awaitable[httpx.Response]:
        return client.post("/_worker/tasks/result", json={"task_id": f"{UUID(int=7)}:1"}, headers=WORKER)

    answered, refused = await until_refused(unknown_result, DEFAULTS.worker_rate_other)
    assert 1 <= answered <= 2 * DEFAULTS.worker_rate_other  # a window may end in the burst
    assert_rate_limited(refused, "refused requests")
    # Refused entries of a batch count as well, one each; the worker's good result is accepted.
    # A batch is settled before its refusals are counted: it is answered entry by entry (a 429
    # would make the worker send its settled results again), and the next waste gets the 429.
    batch = {"results": [{"task_id": "garbage"}, {"task_id": task["task_id"]}]}
    settled = await client.post("/_worker/tasks/results", json=batch, headers=WORKER)
    assert settled.status_code == 200
    assert [entry["status"] for entry in settled.json()["results"]] == ["refused", "accepted"]
    assert_rate_limited(await unknown_result(), "refused requests")
    again = await client.post("/_worker/tasks/result", json={"task_id": task["task_id"]}, headers=WORKER)
    assert again.status_code == 200 and again.json()["reason"] == "duplicate"  # the batch settled it
    # Another worker's budget is its own.
    other = {**WORKER, "X-Worker-ID": "w2"}
    unknown = await client.post("/_worker/tasks/result", json={"task_id": f"{UUID(int=7)}:1"}, headers=other)
    assert unknown.status_code == 404


async def test_repeated_auth_failures_get_429_per_worker_id_and_per_address(setup: Any) -> None:
    engine, client = setup
    budget = DEFAULTS.worker_rate_other
    guesser = {"X-Worker-Token": "a-guess", "X-Worker-ID": "w1", "X-Forwarded-For": "10.0.0.1"}
    answered, refused = await until_refused(lambda: client.get(SPIN, headers=guesser), budget)
    assert 1 <= answered <= 2 * budget  # a window may end in the burst
    assert_rate_limited(refused, "failed authentications")
    # From another address, guesses at w1's token are still refused 429: w1's own budget is spent...
    elsewhere = {**guesser, "X-Forwarded-For": "10.0.0.2"}
    assert (await client.get(SPIN, headers=elsewhere)).status_code == 429
    # ...while that address's guesses at another worker are plain 401s.
    other = {**elsewhere, "X-Worker-ID": "w2"}
    assert (await client.get(SPIN.replace("w1", "w2"), headers=other)).status_code == 401
    # One address guessing at many worker ids is stopped by the address's budget.
    rotating = iter(range(10_000))

    def next_id() -> Awaitable[httpx.Response]:
        worker = f"guess-{next(rotating)}"
        headers = {"X-Worker-Token": "a-guess", "X-Worker-ID": worker, "X-Forwarded-For": "10.0.0.3"}
        return client.get(SPIN.replace("w1", worker), headers=headers)

    answered, refused = await until_refused(next_id, budget)
    assert 1 <= answered <= 2 * budget  # a window may end in the burst
    assert_rate_limited(refused, "failed authentications")
    # A correct token is never refused for someone else's failures, from any address.
    for address in ("10.0.0.1", "10.0.0.3"):
        good = await client.get(SPIN, headers={**WORKER, "X-Forwarded-For": address})
        assert good.status_code == 204
    # The spent budgets are remembered: further guesses cost no statement.
    before = await counted(engine)
    for _ in range(5):
        assert (await client.get(SPIN, headers=guesser)).status_code == 429
    assert await counted(engine) == before


async def test_a_heartbeat_flood_gets_429_and_a_steady_beat_costs_nothing(setup: Any) -> None:
    engine, client = setup
    registered = await client.post(
        "/_worker/workers/register", json={"worker_id": "w1", "task_types": ["work"]}, headers=WORKER
    )
    assert registered.status_code == 200
    assert (await client.patch("/_worker/workers/w1", json={}, headers=WORKER)).status_code == 200
    assert await counted(engine) == {}

    def beat() -> Awaitable[httpx.Response]:
        return client.patch("/_worker/workers/w1", json={}, headers=WORKER)

    answered, refused = await until_refused(beat, DEFAULTS.worker_rate_heartbeats)
    assert 1 <= answered <= 2 * DEFAULTS.worker_rate_heartbeats  # a window may end in the burst
    assert_rate_limited(refused, "heartbeats sooner than 0.5 s")
