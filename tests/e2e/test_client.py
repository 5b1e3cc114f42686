"""``chronik.Client`` and ``chronik.AsyncClient`` against a real server over HTTP.

Each call of the client API once, sync and async: create with an idempotency key, wait (long
polls, counted), result, pages, history, events, cancel, retry, decide, and the exceptions each
error answer becomes. The README's quick start runs as printed, and TLS options reach httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import msgspec
import pytest
import trustme
import uvicorn

from chronik import AsyncClient, Blueprint, ChronikClientError, Client
from chronik.api.app import create_app
from chronik.client import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobFailedError,
    JobView,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnprocessableError,
    WaitTimeoutError,
)
from chronik.client._calls import ssl_context
from chronik.core.state import JobStatus
from docs.examples.quickstart import bp as quickstart
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, ROOT, WORKER_TOKEN, Orchestrator, free_port, work_blueprint

pytestmark = pytest.mark.e2e

WORKER = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "w1"}


def approval_blueprint() -> Blueprint:
    """A job that waits for a person: ``approved`` finishes it, ``rejected`` fails it."""
    bp = Blueprint("approval")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.await_human_approval("ship it?", transitions={"approved": "shipped", "rejected": "dropped"})

    @bp.handler_for("shipped", is_end=True)
    async def shipped(state_history: dict[str, Any]) -> None:
        state_history["shipped"] = {"ok": True}

    @bp.handler_for("dropped", is_end=True, is_failure=True)
    async def dropped() -> None: ...

    return bp


class CountingTransport(httpx.AsyncBaseTransport):
    """Every request the client sends, kept."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def server(start_orchestrator: Any) -> Orchestrator:
    orchestrator: Orchestrator = await start_orchestrator(work_blueprint(), approval_blueprint(), quickstart)
    return orchestrator


@pytest.fixture
async def client(server: Orchestrator) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, token=CLIENT_TOKEN) as opened:
        yield opened


async def take_task(url: str) -> dict[str, Any]:
    """Register as worker ``w1`` and take the next ``work`` task (the worker protocol, by hand)."""
    async with httpx.AsyncClient(base_url=url, headers=WORKER, timeout=20) as http:
        registered = await http.post(
            "/_worker/workers/register", json={"worker_id": "w1", "task_types": ["work"]}
        )
        assert registered.status_code == 200, registered.text
        response = await http.get("/_worker/workers/w1/tasks/next?timeout=5&available_skills=work")
        assert response.status_code == 200, response.text
        return dict(response.json())


async def report(url: str, task: dict[str, Any], **result: Any) -> None:
    async with httpx.AsyncClient(base_url=url, headers=WORKER, timeout=20) as http:
        response = await http.post("/_worker/tasks/result", json={"task_id": task["task_id"], **result})
        assert response.status_code == 200, response.text


async def status_is(client: AsyncClient, job_id: Any, status: str) -> bool:
    return (await client.get(job_id)).status == status


async def test_create_once_per_key_then_one_long_poll_covers_a_job_of_seconds(server: Orchestrator) -> None:
    transport = CountingTransport()
    async with AsyncClient(server.url, token=CLIENT_TOKEN, transport=transport) as client:
        job = await client.create("work", {"n": 21}, idempotency_key="order-21")
        again = await client.create("work", {"n": 21}, idempotency_key="order-21")
        assert again.job_id == job.job_id
        with pytest.raises(UnprocessableError) as reused:
            await client.create("work", {"n": 22}, idempotency_key="order-21")
        assert (reused.value.code, reused.value.status) == ("IDEMPOTENCY_KEY_REUSED", 422)
        assert transport.requests[0].headers["Idempotency-Key"] == "order-21"
        assert transport.requests[0].headers["X-Client-Token"] == CLIENT_TOKEN

        before = len(transport.requests)
        started = time.monotonic()
        waiting = asyncio.create_task(job.wait(timeout=30))
        await asyncio.sleep(3)  # the job waits for a worker for three seconds, and so does the client
        assert not waiting.done()
        await report(server.url, await take_task(server.url), status="success", data={"answer": 42})
        done = await asyncio.wait_for(waiting, timeout=10)
        assert time.monotonic() - started >= 3
        assert done.status == JobStatus.FINISHED and done.job_id == job.job_id
        asked = transport.requests[before:]
        assert len(asked) == 1, [str(r.url) for r in asked]  # one long poll, no polling
        assert asked[0].url.params["wait"] == "30.000"

        assert isinstance(await job.get(), JobView)
        assert await job.result() is None  # the work blueprint's end state stores no result
        history = await job.history()
        assert [entry.version for entry in history] == list(range(1, len(history) + 1))
        assert history[0].type == "JobCreated" and history[-1].type == "JobFinished"
        assert history[0].data["initial_data"] == {"n": 21}
        page = await job.history(after_version=1, limit=2)
        assert [entry.version for entry in page] == [2, 3]
        first = await client.get(job.job_id, as_of_version=1)
        assert first.version == 1 and first.status != JobStatus.FINISHED


async def test_a_wait_that_runs_out_raises_with_the_job_after_one_request_per_long_poll(
    server: Orchestrator,
) -> None:
    transport = CountingTransport()
    async with AsyncClient(server.url, token=CLIENT_TOKEN, transport=transport, long_poll=1) as client:
        job = await client.create("approval")
        await wait_for(lambda: status_is(client, job.job_id, JobStatus.WAITING_FOR_HUMAN))
        before = len(transport.requests)
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as timed_out:
            await job.wait(timeout=2.5)
        elapsed = time.monotonic() - started
        assert 2.4 <= elapsed < 5, elapsed
        assert isinstance(timed_out.value, TimeoutError) and timed_out.value.code == "WAIT_TIMEOUT"
        seen = timed_out.value.job
        assert seen.status == JobStatus.WAITING_FOR_HUMAN
        assert seen.approval is not None and seen.approval.decisions == ("approved", "rejected")
        waits = [float(r.url.params["wait"]) for r in transport.requests[before:]]
        assert waits[:2] == [1.0, 1.0] and len(waits) == 3, waits  # one request per long poll
        assert 0 < waits[2] < 1.0  # the last one cut to the deadline

        with pytest.raises(WaitTimeoutError):  # no time at all: the state now, in one plain read
            await job.wait(timeout=0)
        assert "wait" not in transport.requests[-1].url.params


async def test_decide_on_an_approval_and_the_answers_when_it_cannot(client: AsyncClient) -> None:
    job = await client.create("approval")
    await wait_for(lambda: status_is(client, job.job_id, JobStatus.WAITING_FOR_HUMAN))
    with pytest.raises(UnprocessableError) as invalid:
        await job.decide("maybe")
    assert invalid.value.code == "INVALID_DECISION" and "maybe" in invalid.value.message
    await job.decide("approved", "looks fine")
    assert await job.result(timeout=10) == {"ok": True}
    given = [entry for entry in await job.history() if entry.type == "ApprovalGiven"]
    assert len(given) == 1
    assert given[0].data["decision"] == "approved" and given[0].data["comment"] == "looks fine"
    with pytest.raises(ConflictError) as late:
        await job.decide("approved")
    assert (late.value.code, late.value.status) == ("JOB_NOT_AWAITING_APPROVAL", 409)

    # A fork from the version where it waited for the decision waits for one again.
    waited_at = next(entry.version for entry in await job.history() if entry.type == "ApprovalRequested")
    forked = await job.fork(waited_at)
    await wait_for(lambda: status_is(client, forked.job_id, JobStatus.WAITING_FOR_HUMAN))
    view = await forked.get()
    assert view.forked_from is not None and (view.forked_from.job_id, view.forked_from.version) == (
        job.job_id,
        waited_at,
    )
    assert (await job.get()).forks == (forked.job_id,)

    rejected = await client.create("approval")
    await wait_for(lambda: status_is(client, rejected.job_id, JobStatus.WAITING_FOR_HUMAN))
    await client.decide(rejected.job_id, "rejected")
    with pytest.raises(JobFailedError) as failed:
        await rejected.result(timeout=10)
    assert failed.value.job.status == JobStatus.FAILED and failed.value.status is None


async def test_cancel_then_a_second_cancel_is_a_conflict(client: AsyncClient) -> None:
    job = await client.create("approval")
    await job.cancel("no longer needed")
    with pytest.raises(JobFailedError) as ended:
        await job.result(timeout=10)
    assert ended.value.job.status == JobStatus.CANCELLED
    assert ended.value.job.error is not None and "no longer needed" in ended.value.job.error.message
    with pytest.raises(ConflictError) as again:
        await job.cancel()
    assert (again.value.code, again.value.status) == ("JOB_NOT_CANCELLABLE", 409)


async def test_retry_a_quarantined_job_run_by_a_real_worker(
    client: AsyncClient, server: Orchestrator, spawn_worker: Any
) -> None:
    spawn_worker(server.url)
    job = await client.create("work", {"n": 2, "fail_attempts": [1], "fail_with": "PERMANENT_ERROR"})
    quarantined = await job.wait(timeout=30)
    assert quarantined.status == JobStatus.QUARANTINED
    with pytest.raises(JobFailedError) as failed:
        await job.result(timeout=5)
    assert quarantined.error is not None and failed.value.code == quarantined.error.code
    assert failed.value.job.status == JobStatus.QUARANTINED
    await job.retry()
    assert (await job.wait(timeout=30)).status == JobStatus.FINISHED
    assert "JobRetried" in [entry.type for entry in await job.history()]
    with pytest.raises(ConflictError) as again:
        await job.retry()
    assert again.value.code == "JOB_NOT_RETRYABLE"


async def test_pages_of_jobs_and_an_iterator_over_all_of_them(client: AsyncClient) -> None:
    created = [(await client.create("work", {"n": n})).job_id for n in range(7)]
    await client.create("approval")
    pages = []
    cursor = None
    while True:
        page = await client.list_jobs(blueprint="work", limit=3, cursor=cursor)
        pages.append([job.job_id for job in page.jobs])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [job_id for page in pages for job_id in page] == created[::-1]  # newest first
    every = [job.job_id async for job in client.iter_jobs(blueprint="work", page_size=3)]
    assert every == created[::-1]
    waiting = await client.list_jobs(status=JobStatus.WAITING_FOR_WORKER, limit=500)
    assert {job.job_id for job in waiting.jobs} <= set(created)
    newest = (await client.get(created[-1])).created_at
    since = [job.job_id async for job in client.iter_jobs(blueprint="work", created_after=newest)]
    assert since == [created[-1]]  # created_after is inclusive, created_before is not
    before = (await client.list_jobs(blueprint="work", created_before=newest)).jobs
    assert [job.job_id for job in before] == created[-2::-1]


async def test_events_follow_a_job_to_its_end_and_resume_after_a_version(
    client: AsyncClient, server: Orchestrator
) -> None:
    job = await client.create("work", {"n": 1})
    seen: list[str] = []
    first = asyncio.Event()

    async def follow() -> None:
        async for entry in job.events():
            seen.append(entry.type)
            first.set()

    following = asyncio.create_task(follow())
    await asyncio.wait_for(first.wait(), timeout=5)
    await report(server.url, await take_task(server.url), status="success", data={})
    await asyncio.wait_for(following, timeout=10)  # ends by itself after JobFinished
    history = await job.history()
    assert seen == [entry.type for entry in history] and seen[-1] == "JobFinished"
    resumed = [entry.version async for entry in client.events(job.job_id, after_version=2)]
    assert resumed == list(range(3, len(history) + 1))
    assert [entry async for entry in job.events(after_version=len(history))] == []  # 204: nothing more


async def test_error_answers_become_exceptions_with_code_message_and_status(
    client: AsyncClient, server: Orchestrator, start_orchestrator: Any
) -> None:
    with pytest.raises(NotFoundError) as unknown:
        await client.get(uuid4())
    assert (unknown.value.code, unknown.value.status) == ("JOB_NOT_FOUND", 404)
    assert str(unknown.value).startswith("JOB_NOT_FOUND: ") and str(unknown.value).endswith("(HTTP 404)")
    with pytest.raises(NotFoundError) as no_blueprint:
        await client.create("nope")
    assert no_blueprint.value.code == "BLUEPRINT_NOT_FOUND"
    with pytest.raises(BadRequestError) as bad:
        await client.list_jobs(limit=0)
    assert (bad.value.code, bad.value.status) == ("INVALID_INPUT_ERROR", 400) and "limit" in bad.value.message
    with pytest.raises(ValueError):  # not a job id: refused before any request
        await client.get("../admin")
    async with AsyncClient(server.url, token="wrong") as stranger:
        with pytest.raises(AuthenticationError) as refused:
            await stranger.list_jobs()
    assert (refused.value.code, refused.value.status) == ("UNAUTHORIZED", 401)
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", token=CLIENT_TOKEN) as nowhere:
        with pytest.raises(NetworkError) as unreachable:
            await nowhere.list_jobs()
    assert unreachable.value.status is None and isinstance(unreachable.value.__cause__, httpx.ConnectError)
    assert all(isinstance(e.value, ChronikClientError) for e in (unknown, bad, refused, unreachable))

    limited = await start_orchestrator(work_blueprint(), client_rate_limit=2)
    async with AsyncClient(limited.url, token=CLIENT_TOKEN) as hasty:
        with pytest.raises(RateLimitedError) as flood:
            for _ in range(20):
                await hasty.list_jobs()
    assert flood.value.status == 429 and flood.value.code == "RATE_LIMITED"
    assert flood.value.retry_after is not None and flood.value.retry_after > 0


def sync_scenario(url: str) -> dict[str, Any]:
    """The sync client end to end, from a thread (the server runs on the test's event loop)."""
    found: dict[str, Any] = {}
    with Client(url, token=CLIENT_TOKEN) as client:
        job = client.create("orders", {"quantity": 4}, idempotency_key="sync-4")
        assert client.create("orders", {"quantity": 4}, idempotency_key="sync-4").job_id == job.job_id
        found["result"] = job.result(timeout=30)
        found["events"] = [entry.type for entry in job.events()]
        found["history"] = [entry.type for entry in client.history(job.job_id)]
        bad = client.create("orders", {"quantity": 0})
        try:
            bad.result(timeout=30)
        except JobFailedError as exc:
            found["failed"] = (exc.job.status, exc.job.current_state)
        for _ in range(4):
            client.create("orders", {"quantity": 1})
        found["pages"] = [len(page) for page in _pages(client)]
        found["all"] = len(list(client.iter_jobs(blueprint="orders", page_size=2)))
        approval = client.create("approval")
        approval.cancel("from a thread")
        found["cancelled"] = client.wait(approval.job_id, timeout=10).status
        try:
            approval.cancel()
        except ConflictError as exc:
            found["conflict"] = (exc.code, exc.status)
        try:
            client.job(uuid4()).get()
        except NotFoundError as exc:
            found["not_found"] = exc.code
    return found


def _pages(client: Client) -> list[tuple[JobView, ...]]:
    pages: list[tuple[JobView, ...]] = []
    cursor = None
    while True:
        page = client.list_jobs(blueprint="orders", limit=2, cursor=cursor)
        pages.append(page.jobs)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_the_sync_client_does_the_same(server: Orchestrator) -> None:
    found = await asyncio.to_thread(sync_scenario, server.url)
    assert found["result"] == {"total": 10.0}
    assert (
        found["events"] == found["history"] == ["JobCreated", "StateEntered", "StateEntered", "JobFinished"]
    )
    assert found["failed"] == (JobStatus.FAILED, "rejected")
    assert found["pages"] == [2, 2, 2] and found["all"] == 6
    assert found["cancelled"] == JobStatus.CANCELLED
    assert found["conflict"] == ("JOB_NOT_CANCELLABLE", 409)
    assert found["not_found"] == "JOB_NOT_FOUND"


def readme_client_code() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks: list[str] = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    [code] = [block for block in blocks if "from chronik import Client" in block]
    return code


async def test_the_readme_quick_start_runs_as_printed(
    server: Orchestrator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_URL", server.url)
    monkeypatch.setenv("CLIENT_TOKEN", CLIENT_TOKEN)
    code = compile(readme_client_code(), "README.md", "exec")
    await asyncio.to_thread(exec, code, {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "finished {'total': 10.0}" in printed
    assert "JobFinished" in printed


def test_the_client_views_have_every_field_the_server_sends() -> None:
    # The client mirrors the server's response Structs rather than importing them (they load the
    # runtime); a field added there must be added in chronik/client/_views.py too.
    from chronik.api import schemas
    from chronik.client import _views

    pairs = [(schemas.JobView, _views.JobView), (schemas.TaskView, _views.TaskView)]
    pairs += [(schemas.ApprovalView, _views.ApprovalView), (schemas.JobPage, _views.JobPage)]
    pairs += [(schemas.HistoryEntry, _views.HistoryEntry)]
    for server_side, client_side in pairs:
        missing = set(server_side.__struct_fields__) - set(client_side.__struct_fields__) - {"id"}
        assert not missing, f"chronik.client.{client_side.__name__} lacks {sorted(missing)}"


def test_importing_the_client_loads_no_server() -> None:
    heavy = ["asyncpg", "psycopg", "litestar", "uvicorn", "aiohttp", "minio", "structlog", "chronik.engine"]
    check = (
        "import sys\n"
        "from chronik import Client, AsyncClient, Blueprint\n"
        "import chronik.client\n"
        f"print(sorted(set({heavy!r}) & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@contextlib.asynccontextmanager
async def tls_server(
    server: Orchestrator, ca: trustme.CA, folder: Path, *, client_certificates: bool
) -> AsyncIterator[str]:
    """The same engine served over HTTPS on localhost, asking for client certificates if told."""
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    app = create_app(server.engine, client_token=CLIENT_TOKEN, manage_engine=False)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(folder / "server.pem"),
        ssl_ca_certs=str(folder / "ca.pem"),
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_certificates else ssl.CERT_NONE,
    )
    tls = uvicorn.Server(config)
    tls.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # the test owns signals
    task = asyncio.create_task(tls.serve())
    while not tls.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.02)
    try:
        yield f"https://localhost:{port}"
    finally:
        tls.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_tls_options_reach_httpx(server: Orchestrator, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.issue_cert("chronik-client").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    async with tls_server(server, ca, tmp_path, client_certificates=True) as url:
        async with AsyncClient(url, token=CLIENT_TOKEN, verify=str(tmp_path / "ca.pem")) as no_certificate:
            with pytest.raises(NetworkError):  # the server asks for a client certificate
                await no_certificate.list_jobs()
        async with AsyncClient(
            url, token=CLIENT_TOKEN, verify=str(tmp_path / "ca.pem"), cert=str(tmp_path / "client.pem")
        ) as mutual:
            assert (await mutual.list_jobs()).jobs == ()
        async with AsyncClient(url, token=CLIENT_TOKEN) as public_roots:
            with pytest.raises(NetworkError) as untrusted:  # our CA is not in the usual bundle
                await public_roots.list_jobs()
            assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.message
    assert ssl_context(True, None) is True and ssl_context(False, None) is False


def test_answers_that_come_back_early_do_not_make_a_busy_loop_and_odd_answers_are_errors() -> None:
    # A server that answers every wait at once (an instance shutting down, a proxy cutting it
    # short) without the job having ended: the client pauses instead of asking again at once.
    now = datetime.now(UTC)
    job_id = uuid4()
    running = JobView(
        job_id=job_id, blueprint_name="work", status="running", current_state="start",
        initial_data={}, state_history={}, version=1, created_at=now, updated_at=now,
    )  # fmt: skip
    asked: list[httpx.Request] = []

    def impatient(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, content=msgspec.json.encode(running))

    with Client("http://chronik.test", transport=httpx.MockTransport(impatient)) as client:
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError):
            client.wait(job_id, timeout=2.5)
        assert 2.4 <= time.monotonic() - started < 4
        assert 3 <= len(asked) <= 5, len(asked)  # about one a second, not thousands

    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/history"):
            return httpx.Response(200, text="<html>hello</html>")
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    with Client("http://chronik.test", transport=httpx.MockTransport(proxy)) as client:
        with pytest.raises(ServerError) as gateway:
            client.get(job_id)
        assert (gateway.value.code, gateway.value.status) == ("HTTP_502", 502)
        assert "Bad Gateway" in gateway.value.message
        with pytest.raises(ApiError) as odd:
            client.history(job_id)
        assert odd.value.code == "INVALID_RESPONSE" and odd.value.status == 200
