"""The job page: header, state graph, timeline and its pages, as-of panel, attempts, actions, replay."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from litestar import Litestar

from chronik import Blueprint
from chronik.api.app import create_app
from chronik.core.events import ErrorInfo, TaskFailed, TaskResultIgnored
from chronik.core.wire import RegisterBody, ReportedResult, TaskRef
from chronik.engine import Engine
from tests.conftest import wait_for

CLIENTS = """\
[billing]
token = "billing-token-0123456789"
[other]
token = "other-token-0123456789"
[auditor]
token = "auditor-token-0123456789"
role = "admin"
"""
BILLING = "billing-token-0123456789"
OTHER = "other-token-0123456789"
SVG = "{http://www.w3.org/2000/svg}"

# What the "waits" handler offers can change between a run and its replay (test_replay_*).
DECISION: dict[str, str] = {}


def orders() -> Blueprint:
    bp = Blueprint("orders", api_endpoint="orders")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_task("charge", {"amount": 5}, transitions={"success": "review", "failure": "failed"})

    @bp.handler_for("review")
    async def review(actions: Any) -> None:
        actions.await_human_approval("Ship it?", transitions={"approve": "done", "reject": "failed"})

    @bp.handler_for("done", is_end=True)
    async def done(state_history: dict[str, Any]) -> None:
        state_history["done"] = {"shipped": True}

    @bp.handler_for("failed", is_end=True, is_failure=True)
    async def failed() -> None: ...

    return bp


def waits() -> Blueprint:
    bp = Blueprint("waits", api_endpoint="waits")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.await_human_approval("ok?", transitions={DECISION.get("name", "yes"): "end"})

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    return bp


@pytest.fixture
async def console(make_engine: Any, tmp_path: Path) -> AsyncIterator[tuple[Engine, Litestar]]:
    config = tmp_path / "clients.toml"
    config.write_text(CLIENTS)
    engine = await make_engine(orders(), waits())
    await engine.workers.register(RegisterBody(worker_id="w1", task_types=["charge"], capacity=4))
    app = create_app(engine, client_token=None, clients_config_path=str(config), manage_engine=False)
    yield engine, app


@asynccontextmanager
async def signed_in(app: Litestar, token: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser signed in with ``token``, and its session's CSRF token.

    The app runs in the test's own event loop, on the engine the test started (an
    ``AsyncTestClient`` would run it in a loop of its own, where the test could not reach the
    engine to play the worker or grow a job's log).
    """
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        signed = await client.post("/console/login", data={"token": token}, follow_redirects=False)
        assert signed.status_code == 303
        home = await client.get("/console")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
        assert csrf is not None
        yield client, csrf.group(1)


async def answer(
    engine: Engine, *, status: str = "success", data: Any = None, error: ErrorInfo | None = None
) -> None:
    """Worker w1 takes the next charge task and answers it."""
    task = await engine.workers.next_task("w1", ["charge"], 5.0)
    assert task is not None
    await engine.workers.submit_result(
        ReportedResult(ref=TaskRef.parse(task.task_id), worker_id="w1", status=status, data=data, error=error)
    )


async def status_is(engine: Engine, job_id: UUID, status: str) -> Any:
    async def check() -> Any:
        job = await engine.get_job(job_id)
        return job if job.status == status else None

    return await wait_for(check)


def graph_of(html: str) -> ET.Element:
    found = re.search(r"<svg .*?</svg>", html, re.DOTALL)
    assert found is not None, "no inline SVG on the page"
    return ET.fromstring(found.group(0))


def events_on(html: str) -> list[int]:
    return [
        int(v) for v in re.findall(r'<details class="event[^"]*" id="event-\d+" data-version="(\d+)"', html)
    ]


async def test_the_page_shows_header_graph_timeline_and_escapes_job_data(console: Any) -> None:
    engine, app = console
    hostile = "<script>alert('initial')</script>"
    job = await engine.create_job(
        "orders", {"note": hostile}, actor="billing", metadata={"team": "<b>ops</b>"}
    )
    await answer(engine, data={"receipt": "<img src=x onerror=alert(1)><script>alert('worker')</script>"})
    job = await status_is(engine, job.job_id, "waiting_for_human")
    async with signed_in(app, BILLING) as (client, _csrf):
        page = await client.get(f"/console/jobs/{job.job_id}")
        assert page.status_code == 200
        html = page.text
        # The header: status, state, blueprint, client, version.
        assert (
            "waiting for human" in html and ">review<" in html and ">orders<" in html and ">billing<" in html
        )
        assert f"<dd>{job.version} " in html and "Ship it?" in html
        # Job data is text, never markup: neither the client's nor the worker's.
        assert "<script>alert(" not in html and "<img src=x" not in html and "<b>ops</b>" not in html
        assert "&lt;script&gt;alert(&#39;initial&#39;)&lt;/script&gt;" in html
        assert "&lt;script&gt;alert(&#39;worker&#39;)&lt;/script&gt;" in html
        # The graph: every state, the path taken highlighted, the current state marked.
        svg = graph_of(html)
        nodes = {
            g.get("data-state"): (g.get("class") or "").split()
            for g in svg.iter(f"{SVG}g")
            if g.get("data-state")
        }
        assert set(nodes) == {"start", "review", "done", "failed"}
        assert "current" in nodes["review"] and "visited" in nodes["start"] and "visited" not in nodes["done"]
        assert [name for name, classes in nodes.items() if "current" in classes] == ["review"]
        edges = {
            (g.get("data-from"), g.get("data-to")): (g.get("class") or "").split()
            for g in svg.iter(f"{SVG}g")
            if g.get("data-from")
        }
        assert "taken" in edges["start", "review"] and "taken" not in edges["review", "done"]
        # The timeline: every event of this short job, newest first, each with its data and meta.
        assert events_on(html) == list(range(job.version, 0, -1))
        assert "TaskCompleted" in html and "&#34;instance&#34;: &#34;test&#34;" in html
        # The header follows the job while it has not ended.
        assert 'hx-trigger="every 2s"' in html
        # The poll answers 204 while nothing happened, the header and what changed after a change.
        same = await client.get(
            f"/console/jobs/{job.job_id}/head", params={"seen": job.version, "status": job.status}
        )
        assert same.status_code == 204
        behind = {
            "seen": job.version - 1,
            "status": "running",
            "follow": 1,
            "top": job.version - 1,
            "failures": 0,
        }
        moved = await client.get(
            f"/console/jobs/{job.job_id}/head", params=behind, headers={"HX-Request": "true"}
        )
        assert (
            moved.status_code == 200 and "<html" not in moved.text and 'hx-trigger="every 2s"' in moved.text
        )
        assert 'hx-swap-oob="afterbegin:#timeline-rows"' in moved.text and events_on(moved.text) == [
            job.version
        ]
        assert 'id="job-graph" class="panel job-graph" hx-swap-oob="true"' in moved.text
        assert 'id="job-actions" class="panel job-actions" hx-swap-oob="true"' in moved.text  # a new status


async def test_as_of_panel_shows_state_then_and_what_changed(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("orders", {"n": 1}, actor="billing")
    await answer(engine, data={"receipt": "r-1"})
    job = await status_is(engine, job.job_id, "waiting_for_human")
    history = await engine.job_history(job.job_id)
    moved = next(r.version for r in history if r.type == "StateEntered")
    async with signed_in(app, BILLING) as (client, _csrf):
        panel = await client.get(f"/console/jobs/{job.job_id}/as-of/{moved}", headers={"HX-Request": "true"})
        assert panel.status_code == 200 and "<html" not in panel.text
        assert f"As of version {moved}" in panel.text and ">review<" in panel.text
        diff = re.search(r'<tr class="change-added">\s*<td class="mono">receipt</td>', panel.text)
        assert diff is not None, panel.text
        assert "r-1" in panel.text and "— was " in panel.text  # the status and state it left
        # Without HTMX the same panel is a page of its own.
        whole = await client.get(f"/console/jobs/{job.job_id}/as-of/{moved}")
        assert whole.status_code == 200 and "<html" in whole.text and "receipt" in whole.text
        # Version 1: everything the job started with is "added" against nothing.
        first = await client.get(f"/console/jobs/{job.job_id}/as-of/1", headers={"HX-Request": "true"})
        assert "No key changed." in first.text  # state_history starts empty
        out_of_range = await client.get(f"/console/jobs/{job.job_id}/as-of/{job.version + 5}")
        assert out_of_range.status_code == 400 and "<html" in out_of_range.text


async def test_decide_with_a_comment_then_the_job_moves_on(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("orders", {}, actor="billing")
    await answer(engine, data={})
    job = await status_is(engine, job.job_id, "waiting_for_human")
    async with signed_in(app, BILLING) as (client, csrf):
        page = await client.get(f"/console/jobs/{job.job_id}")
        assert (
            'name="decision" value="approve"' in page.text and 'name="decision" value="reject"' in page.text
        )
        refused = await client.post(
            f"/console/jobs/{job.job_id}/approval", data={"csrf_token": csrf, "decision": "maybe"}
        )
        assert refused.status_code == 422 and "is not one job" in refused.text and "<html" in refused.text
        forged = await client.post(f"/console/jobs/{job.job_id}/approval", data={"decision": "approve"})
        assert forged.status_code == 403
        done = await client.post(
            f"/console/jobs/{job.job_id}/approval",
            data={"csrf_token": csrf, "decision": "approve", "comment": "looks <fine>"},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == f"/console/jobs/{job.job_id}"
        finished = await status_is(engine, job.job_id, "finished")
        given = [r for r in await engine.job_history(job.job_id) if r.type == "ApprovalGiven"]
        assert given[0].event.comment == "looks <fine>" and given[0].event.actor == "billing"  # type: ignore[union-attr]
        page = await client.get(f"/console/jobs/{job.job_id}")
        assert "finished" in page.text and 'hx-trigger="every 2s"' not in page.text  # no polling once ended
        assert "decided &#39;approve&#39;: looks &lt;fine&gt;" in page.text
        svg = graph_of(page.text)
        current = [g.get("data-state") for g in svg.iter(f"{SVG}g") if "current" in (g.get("class") or "")]
        assert current == ["done"] and finished.current_state == "done"


async def test_cancel_retry_and_the_htmx_answer(console: Any) -> None:
    engine, app = console
    stuck = await engine.create_job("orders", {}, actor="billing")
    await answer(engine, status="failure", error=ErrorInfo(code="PERMANENT_ERROR", message="card <declined>"))
    stuck = await status_is(engine, stuck.job_id, "quarantined")
    async with signed_in(app, BILLING) as (client, csrf):
        page = await client.get(f"/console/jobs/{stuck.job_id}")
        assert "Retry the task" in page.text and "card &lt;declined&gt;" in page.text
        attempts = await client.get(f"/console/jobs/{stuck.job_id}/attempts", headers={"HX-Request": "true"})
        assert "PERMANENT_ERROR" in attempts.text and ">w1<" in attempts.text and "failed" in attempts.text
        retried = await client.post(
            f"/console/jobs/{stuck.job_id}/retry", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert retried.status_code == 303
        again = await engine.get_job(stuck.job_id)
        assert again.status == "waiting_for_worker" and again.task is not None and again.task.attempt == 2
        attempts = await client.get(f"/console/jobs/{stuck.job_id}/attempts", headers={"HX-Request": "true"})
        assert attempts.text.count('<tr class="outcome-') == 2 and "queued" in attempts.text

        # From HTMX, an action answers the header, with the new events and actions out of band.
        timeline = await client.get(f"/console/jobs/{stuck.job_id}")
        top = max(events_on(timeline.text))
        cancelled = await client.post(
            f"/console/jobs/{stuck.job_id}/cancel",
            data={
                "csrf_token": csrf, "reason": "not <needed>", "seen": str(again.version),
                "status": again.status, "follow": "1", "top": str(top), "failures": "0",
            },
            headers={"HX-Request": "true"},
        )  # fmt: skip
        assert cancelled.status_code == 200 and "<html" not in cancelled.text
        assert 'id="job-head"' in cancelled.text and 'hx-trigger="every 2s"' not in cancelled.text
        assert 'id="job-actions" class="panel job-actions" hx-swap-oob="true"' in cancelled.text
        assert 'hx-swap-oob="afterbegin:#timeline-rows"' in cancelled.text
        ended = await engine.get_job(stuck.job_id)
        assert ended.status == "cancelled"
        assert events_on(cancelled.text) == list(range(ended.version, top, -1))  # only the new ones
        assert "cancelled: not &lt;needed&gt;" in cancelled.text
        # Cancelling again is refused, and said so above the actions (a 200, so that htmx swaps it).
        twice = await client.post(
            f"/console/jobs/{stuck.job_id}/cancel",
            data={"csrf_token": csrf, "seen": str(ended.version), "status": ended.status},
            headers={"HX-Request": "true"},
        )
        assert twice.status_code == 200 and 'role="alert"' in twice.text
        plain = await client.post(f"/console/jobs/{stuck.job_id}/cancel", data={"csrf_token": csrf})
        assert plain.status_code == 409 and "<html" in plain.text


async def test_another_clients_job_is_a_404_page(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("orders", {}, actor="billing")
    async with signed_in(app, OTHER) as (client, csrf):
        for path in ("", "/timeline", "/attempts", "/as-of/1", "/replay", "/head?seen=0"):
            found = await client.get(f"/console/jobs/{job.job_id}{path}")
            assert found.status_code == 404, path
            assert found.headers["content-type"].startswith("text/html"), path
            assert "<html" in found.text and "Not found" in found.text and "JOB_NOT_FOUND" in found.text
        unknown = await client.get(f"/console/jobs/{uuid4()}")
        assert unknown.status_code == 404 and "Not found" in unknown.text
        assert (await client.get("/console/jobs/not-a-uuid")).status_code == 404
        for action in ("cancel", "retry", "fork", "approval"):
            refused = await client.post(
                f"/console/jobs/{job.job_id}/{action}", data={"csrf_token": csrf, "from_version": "1"}
            )
            assert refused.status_code == 404, action
        assert (await engine.get_job(job.job_id)).status != "cancelled"
    async with signed_in(app, "auditor-token-0123456789") as (client, _csrf):
        assert (await client.get(f"/console/jobs/{job.job_id}")).status_code == 200  # an admin sees all


async def test_fork_from_version_two_links_both_ways(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("orders", {"order": 7}, actor="billing")
    await answer(engine, data={"receipt": "r-7"})
    job = await status_is(engine, job.job_id, "waiting_for_human")
    async with signed_in(app, BILLING) as (client, csrf):
        forked = await client.post(
            f"/console/jobs/{job.job_id}/fork",
            data={"csrf_token": csrf, "from_version": "2"},
            follow_redirects=False,
        )
        assert forked.status_code == 303
        target = forked.headers["location"]
        new_id = UUID(target.rsplit("/", 1)[1])
        new = await client.get(target)
        assert new.status_code == 200 and "Forked from" in new.text
        assert f'href="/console/jobs/{job.job_id}"' in new.text and "at version 2" in new.text
        source = await client.get(f"/console/jobs/{job.job_id}")
        assert "Forks" in source.text and f'href="/console/jobs/{new_id}"' in source.text
        assert "JobForked" in source.text
        # From HTMX, the browser is sent to the new job's page.
        again = await client.post(
            f"/console/jobs/{job.job_id}/fork",
            data={"csrf_token": csrf, "from_version": "1"},
            headers={"HX-Request": "true"},
        )
        assert again.status_code == 200 and again.headers["HX-Redirect"].startswith("/console/jobs/")
        bad = await client.post(
            f"/console/jobs/{job.job_id}/fork", data={"csrf_token": csrf, "from_version": "999"}
        )
        assert bad.status_code == 400 and "from_version must be from 1" in bad.text
    state = await engine.get_job(new_id)
    assert (
        state.forked_from is not None
        and state.forked_from.job_id == job.job_id
        and state.forked_from.version == 2
    )


async def test_replay_shows_each_difference(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("waits", {}, actor="billing")
    job = await status_is(engine, job.job_id, "waiting_for_human")
    async with signed_in(app, BILLING) as (client, csrf):
        form = await client.get(f"/console/jobs/{job.job_id}/replay")
        assert form.status_code == 200 and "Run the replay" in form.text
        same = await client.post(f"/console/jobs/{job.job_id}/replay", data={"csrf_token": csrf})
        assert same.status_code == 200 and "decide as history did at all 1 handler run" in same.text
        DECISION["name"] = "<go>"  # today's handler offers another decision than history recorded
        try:
            differs = await client.post(f"/console/jobs/{job.job_id}/replay", data={"csrf_token": csrf})
        finally:
            DECISION.pop("name")
        assert "1 of 1 handler run would be decided differently today" in differs.text
        assert "At version <a" in differs.text and "&lt;go&gt;" in differs.text and "<go>" not in differs.text


async def seed_events(engine: Engine, job_id: UUID, total: int, *, batch: int = 2_000) -> None:
    """Grow a job's log to ``total`` events cheaply: big commits of events that change nothing it
    waits on (an ignored late result; every 1000th version a failed one), through the one unit of
    work, so that its ``jobs`` row stays the fold of its log."""
    state = await engine.get_job(job_id)
    now = datetime.now(UTC)
    while state.version < total:
        events: list[Any] = []
        for version in range(state.version + 1, min(total, state.version + batch) + 1):
            if version % 1000 == 0:
                error = ErrorInfo(code="TRANSIENT_ERROR", message=f"late failure {version}")
                events.append(TaskFailed(at=now, task_id=uuid4(), attempt=1, worker_id="w9", error=error))
            else:
                events.append(
                    TaskResultIgnored(
                        at=now, task_id=uuid4(), attempt=1, worker_id="w9", status="success", reason="late"
                    )
                )
        state = await engine.store.commit(state, events, meta={"instance": "seed"})


async def test_a_job_of_20000_events_renders_one_page(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("waits", {}, actor="billing")
    await status_is(engine, job.job_id, "waiting_for_human")
    await seed_events(engine, job.job_id, 20_000)
    async with signed_in(app, BILLING) as (client, _csrf):
        page = await client.get(f"/console/jobs/{job.job_id}")
        assert page.status_code == 200
        assert events_on(page.text) == list(range(20_000, 19_900, -1))  # one page, the newest
        assert "Versions 19901\N{EN DASH}20000 of 20000" in page.text
        # Older, then newer again (the fragments HTMX swaps in).
        older = await client.get(
            f"/console/jobs/{job.job_id}/timeline", params={"upto": 19_900}, headers={"HX-Request": "true"}
        )
        assert events_on(older.text) == list(range(19_900, 19_800, -1))
        assert "upto=19800" in older.text and f'href="/console/jobs/{job.job_id}"' in older.text
        oldest = await client.get(f"/console/jobs/{job.job_id}?upto=100")
        assert events_on(oldest.text) == list(range(100, 0, -1)) and "Older »" not in oldest.text
        # Failures only: the 20 failed results, newest first, one page.
        failures = await client.get(
            f"/console/jobs/{job.job_id}/timeline", params={"failures": 1}, headers={"HX-Request": "true"}
        )
        assert events_on(failures.text) == list(range(20_000, 0, -1000))
        assert "late failure 20000" in failures.text and "TaskResultIgnored" not in failures.text
        # The graph reads the job's moves, not its log.
        assert "current" in (graph_of(page.text).find(f".//{SVG}g[@data-state='start']").get("class") or "")  # type: ignore[union-attr]


async def test_filtered_pages_go_older_and_newer(console: Any) -> None:
    engine, app = console
    job = await engine.create_job("waits", {}, actor="billing")
    await status_is(engine, job.job_id, "waiting_for_human")
    await seed_events(engine, job.job_id, 250)  # no failure among them (those come every 1000th)
    state = await engine.get_job(job.job_id)
    now = datetime.now(UTC)
    failed = [
        TaskFailed(
            at=now, task_id=uuid4(), attempt=1, worker_id="w9", error=ErrorInfo(code="X", message=f"f{i}")
        )
        for i in range(230)
    ]
    await engine.store.commit(state, failed, meta={})
    async with signed_in(app, BILLING) as (client, _csrf):
        first = await client.get(f"/console/jobs/{job.job_id}?failures=1")
        versions = events_on(first.text)
        assert len(versions) == 100 and versions[0] == 480
        older = re.search(r'href="/console/jobs/[^"?]+\?upto=(\d+)&amp;failures=1"[^>]*>Older', first.text)
        assert older is not None and int(older.group(1)) == 380
        second = await client.get(f"/console/jobs/{job.job_id}?upto=380&failures=1")
        assert events_on(second.text) == list(range(380, 280, -1))
        newer = re.search(r'href="(/console/jobs/[^"]+)"[^>]*>« Newer', second.text)
        assert newer is not None and "upto" not in newer.group(1)  # the newer page is the newest
        third = await client.get(f"/console/jobs/{job.job_id}?upto=280&failures=1")
        assert events_on(third.text) == list(range(280, 250, -1)) and "Older »" not in third.text
        newer = re.search(r'href="(/console/jobs/[^"]+)"[^>]*>« Newer', third.text)
        assert newer is not None and "upto=380" in newer.group(1)
