"""Waiting without polling, over real HTTP: ``GET /jobs/{id}?wait=`` and the ``/events`` stream.

Both are woken by the instance's one LISTEN connection (``chronik_jobs``, migration 0013):
a wait answers as soon as the job stops, a stream follows each commit and closes after the
last event, and hundreds of waiting clients cost the database nothing while they wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from chronik import Blueprint
from chronik.core.state import JobStatus
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, WORKER_TOKEN, work_blueprint

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": CLIENT_TOKEN}
WORKER = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "w1"}


def approval_blueprint() -> Blueprint:
    """A job that does nothing until a person decides: it stays ``waiting_for_human``."""
    bp = Blueprint("approval")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.await_human_approval("ship it?", transitions={"approved": "done", "rejected": "done"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


@pytest.fixture
async def served(start_orchestrator: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    # The background loops at their production intervals: the idle cost measured below is theirs.
    orchestrator = await start_orchestrator(
        work_blueprint(),
        approval_blueprint(),
        poll_interval=5.0,
        watcher_interval=2.0,
        projection_interval=1.0,
    )
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(
        base_url=orchestrator.url, headers=CLIENT, timeout=40, limits=limits
    ) as client:
        yield orchestrator, client


async def create(client: httpx.AsyncClient, endpoint: str, **data: Any) -> str:
    response = await client.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": data})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def status_of(client: httpx.AsyncClient, job_id: str) -> str:
    return str((await client.get(f"/api/v1/jobs/{job_id}")).json()["status"])


async def take_task(client: httpx.AsyncClient) -> dict[str, Any]:
    """Register as worker ``w1`` and take the next ``work`` task."""
    registration = {"worker_id": "w1", "task_types": ["work"]}
    assert (
        await client.post("/_worker/workers/register", json=registration, headers=WORKER)
    ).status_code == 200
    response = await client.get(
        "/_worker/workers/w1/tasks/next?timeout=5&available_skills=work", headers=WORKER
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def report(client: httpx.AsyncClient, task: dict[str, Any], **result: Any) -> None:
    response = await client.post(
        "/_worker/tasks/result", json={"task_id": task["task_id"], **result}, headers=WORKER
    )
    assert response.status_code == 200 and response.json()["status"] == "accepted", response.text


async def read_stream(
    client: httpx.AsyncClient,
    job_id: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    seen: Callable[[dict[str, str]], None] = lambda _message: None,
) -> list[dict[str, str]]:
    """Every message of one ``/events`` stream (comments under ``":"``), read until the server ends it."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with client.stream(
        "GET", f"/api/v1/jobs/{job_id}/events", headers=headers, params=params
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line:
                field, _, value = line.partition(":")
                current[field] = value.removeprefix(" ")
            elif current:
                messages.append(current)
                seen(current)
                current = {}
    return messages


async def test_a_wait_answers_when_the_job_ends_not_at_its_deadline(served: Any) -> None:
    _orchestrator, client = served
    job_id = await create(client, "work", n=21)
    started = time.monotonic()
    waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job_id}", params={"wait": 30}))
    task = await take_task(client)
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the job waits for the worker, and so does the client
    await report(client, task, status="success", data={"answer": 42})
    reported = time.monotonic()
    response = await asyncio.wait_for(waiting, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "finished" and body["job_id"] == job_id
    assert time.monotonic() - reported < 5  # woken by the job's notification, far from the 30 s deadline
    assert time.monotonic() - started < 10
    # Same body as a plain GET, and an ended job answers at once.
    again = time.monotonic()
    assert (await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 30})).json() == (
        await client.get(f"/api/v1/jobs/{job_id}")
    ).json()
    assert time.monotonic() - again < 2


async def test_a_quarantined_job_ends_a_wait_and_a_person_to_decide_does_not(served: Any) -> None:
    _orchestrator, client = served
    job_id = await create(client, "work")
    task = await take_task(client)
    waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job_id}", params={"wait": 30}))
    await asyncio.sleep(0.2)
    await report(client, task, status="failure", error={"code": "PERMANENT_ERROR", "message": "cannot"})
    assert (await asyncio.wait_for(waiting, timeout=5)).json()["status"] == "quarantined"

    # A job waiting for a person has not ended: the wait runs to its deadline and shows it as it is.
    approval = await create(client, "approval")
    await wait_for(lambda: _has_status(client, approval, JobStatus.WAITING_FOR_HUMAN))
    started = time.monotonic()
    response = await client.get(f"/api/v1/jobs/{approval}", params={"wait": 1})
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.json()["status"] == "waiting_for_human"
    assert 0.9 <= elapsed < 5, elapsed


async def _has_status(client: httpx.AsyncClient, job_id: str, status: str) -> bool:
    return await status_of(client, job_id) == status


async def test_bad_waits_are_refused_with_the_limit_named(served: Any) -> None:
    _orchestrator, client = served
    job_id = await create(client, "approval")
    for wait in ("0", "-1", "61", "nan", "inf", "soon"):
        response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": wait})
        assert response.status_code == 400, (wait, response.text)
        assert response.json()["error"]["code"] == "INVALID_INPUT_ERROR"
        if wait != "soon":  # the framework refuses what is not a number, before the route
            assert "at most 60 seconds" in response.json()["error"]["message"]
    response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 5, "as_of_version": 1})
    assert response.status_code == 400 and "as_of" in response.json()["error"]["message"]
    unknown = await client.get(f"/api/v1/jobs/{uuid4()}", params={"wait": 5})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "JOB_NOT_FOUND"


async def test_the_stream_follows_every_event_then_ends_and_resumes_after_last_event_id(served: Any) -> None:
    _orchestrator, client = served
    job_id = await create(client, "work", n=2)
    first = asyncio.Event()
    stream = asyncio.create_task(read_stream(client, job_id, seen=lambda _message: first.set()))
    await asyncio.wait_for(first.wait(), timeout=5)  # streaming, and the job is not done yet
    task = await take_task(client)
    await report(client, task, status="success", data={"answer": 4})
    messages = await asyncio.wait_for(stream, timeout=10)  # the server ends it after the last event

    history = (await client.get(f"/api/v1/jobs/{job_id}/history")).json()
    assert [int(m["id"]) for m in messages] == [entry["version"] for entry in history]
    assert [int(m["id"]) for m in messages] == list(range(1, len(history) + 1))
    assert [m["event"] for m in messages] == [entry["type"] for entry in history]
    assert [json.loads(m["data"]) for m in messages] == history
    assert messages[0]["event"] == "JobCreated" and messages[-1]["event"] == "JobFinished"

    # Reconnecting resumes after the last id seen, without repeats; the header wins over the query.
    resumed = await read_stream(client, job_id, headers={"Last-Event-ID": "2"}, params={"after_version": 1})
    assert [int(m["id"]) for m in resumed] == list(range(3, len(history) + 1))
    by_query = await read_stream(client, job_id, params={"after_version": 2})
    assert by_query == resumed
    # Nothing after the end: 204, which tells an EventSource to stop reconnecting.
    done = await client.get(f"/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(len(history))})
    assert done.status_code == 204 and done.content == b""

    unknown = await client.get(f"/api/v1/jobs/{uuid4()}/events")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "JOB_NOT_FOUND"
    bad = await client.get(f"/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "two"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_INPUT_ERROR"


async def test_a_quiet_stream_sends_keep_alives_and_ends_with_the_job(served: Any) -> None:
    orchestrator, client = served
    watch = orchestrator.engine.instance.watch
    orchestrator.engine.instance.waits.heartbeat_seconds = 0.2
    job_id = await create(client, "approval")
    await wait_for(lambda: _has_status(client, job_id, JobStatus.WAITING_FOR_HUMAN))
    # A client that goes away leaves nothing behind.
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
        assert (await anext(response.aiter_lines())) == "id: 1"
        assert watch.watching == 1
    await wait_for(lambda: watch.watching == 0, within=5)

    kept_alive = asyncio.Event()

    def seen(message: dict[str, str]) -> None:
        if "" in message:  # a comment
            kept_alive.set()

    stream = asyncio.create_task(read_stream(client, job_id, seen=seen))
    await asyncio.wait_for(kept_alive.wait(), timeout=5)
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel", json={"reason": "enough"})).status_code == 200
    messages = await asyncio.wait_for(stream, timeout=5)
    assert {"": "keep-alive"} in messages  # a comment line, ": keep-alive"
    events = [m["event"] for m in messages if "event" in m]
    assert events[0] == "JobCreated" and events[-1] == "JobCancelled"


async def test_two_hundred_waiters_cost_no_queries_while_they_wait(served: Any, pool: asyncpg.Pool) -> None:
    orchestrator, client = served
    engine = orchestrator.engine
    job_id = await create(client, "approval")
    await wait_for(lambda: _has_status(client, job_id, JobStatus.WAITING_FOR_HUMAN))
    waiters = [
        asyncio.create_task(client.get(f"/api/v1/jobs/{job_id}", params={"wait": 20})) for _ in range(200)
    ]
    await wait_for(lambda: engine.instance.watch.watching == 200, within=15)
    # Each backend reports its counters at most once a second, and only when it next finishes a
    # transaction (or 10 s later): after a second, touch every pooled connection so the counts of
    # the waiters' first reads are in before the window opens, not inside it.
    await asyncio.sleep(1.1)
    await _touch_every_connection(engine)
    before = await _commits(pool)
    await asyncio.sleep(2.0)
    during = await _commits(pool) - before
    assert not any(waiter.done() for waiter in waiters)
    assert engine.instance.watch.watching == 200
    # The engine's own loops (executor, watcher, projections) and these two reads: no query per waiter.
    assert during < 40, f"{during} transactions in 2 s with 200 waiters"

    # One commit wakes them all, at once.
    cancelled = time.monotonic()
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel", json={"reason": "enough"})).status_code == 200
    answers = await asyncio.wait_for(asyncio.gather(*waiters), timeout=10)
    assert {answer.json()["status"] for answer in answers} == {"cancelled"}
    assert time.monotonic() - cancelled < 5
    assert engine.instance.watch.watching == 0


async def _touch_every_connection(engine: Any) -> None:
    async with contextlib.AsyncExitStack() as stack:
        size = engine.settings.pool_max_size
        held = [await stack.enter_async_context(engine.database.connection()) for _ in range(size)]
        for conn in held:
            await conn.execute("SELECT 1")


async def _commits(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        )


async def test_a_listener_that_reconnects_makes_every_waiter_read_again(
    served: Any, pool: asyncpg.Pool
) -> None:
    orchestrator, client = served
    job_id = await create(client, "approval")
    await wait_for(lambda: _has_status(client, job_id, JobStatus.WAITING_FOR_HUMAN))
    waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job_id}", params={"wait": 20}))
    await wait_for(lambda: orchestrator.engine.instance.watch.watching == 1)
    async with pool.acquire() as conn:
        # The job ends while the listener is gone: its notification is lost, the reconnection is not.
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert killed >= 1
    await orchestrator.engine.cancel_job(UUID(job_id), reason="while deaf")
    response = await asyncio.wait_for(waiting, timeout=10)
    assert response.json()["status"] == "cancelled"
