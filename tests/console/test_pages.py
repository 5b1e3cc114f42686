"""The console's pages: the job list and its filters, batch actions, overview, workers, schedules,
analytics; each client sees its own jobs, and hostile job data renders as text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from litestar.testing import AsyncTestClient

from chronik import Blueprint
from chronik.api.app import create_app
from tests.conftest import wait_for

CLIENTS = """\
[billing]
token = "billing-token-0123456789"
[shipping]
token = "shipping-token-0123456789"
[auditor]
token = "auditor-token-0123456789"
role = "admin"
"""

NIGHTLY = """\
[nightly]
blueprint = "waits"
input_data = {scope = "all"}
daily_at = "02:30"
"""
OFTEN = """
[often]
blueprint = "waits"
interval_seconds = 1
"""


def waits() -> Blueprint:
    bp = Blueprint("waits", api_endpoint="waits")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.await_human_approval("ok?", transitions={"yes": "done"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def crashes() -> Blueprint:
    bp = Blueprint("crashes", api_endpoint="crashes")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        if actions:  # always: the transition is only there to make the blueprint valid
            raise RuntimeError("boom")
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


class Console:
    """A signed-in browser: its client and the CSRF token of its session."""

    def __init__(self, client: AsyncTestClient[Any], csrf: str) -> None:
        self.http = client
        self.csrf = csrf


async def sign_in(client: AsyncTestClient[Any], token: str) -> Console:
    signed = await client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert signed.status_code == 303
    home = await client.get("/console")
    assert home.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert found is not None
    return Console(client, found.group(1))


async def make_app(make_engine: Any, folder: Path, schedules: str) -> Any:
    clients = folder / "clients.toml"
    clients.write_text(CLIENTS)
    schedules_file = folder / "schedules.toml"
    schedules_file.write_text(schedules)
    engine = await make_engine(waits(), crashes(), start=False, schedules_config_path=str(schedules_file))
    return create_app(
        engine, client_token=None, clients_config_path=str(clients), worker_token="worker-token-0123456789"
    )


@pytest.fixture
async def app(make_engine: Any, tmp_path: Path) -> Any:
    """The app, with a schedule that does not fire while a test runs."""
    return await make_app(make_engine, tmp_path, NIGHTLY)


@pytest.fixture
async def busy_app(make_engine: Any, tmp_path: Path) -> Any:
    """The app, with a schedule that fires every second too."""
    return await make_app(make_engine, tmp_path, NIGHTLY + OFTEN)


BILLING = {"X-Client-Token": "billing-token-0123456789"}
SHIPPING = {"X-Client-Token": "shipping-token-0123456789"}
ADMIN = {"X-Client-Token": "auditor-token-0123456789"}


# The app runs the engine in the test client's event loop (another thread): the tests reach it
# only over HTTP, as a browser and a client program would.


async def create(
    client: AsyncTestClient[Any], who: dict[str, str], blueprint: str, data: dict[str, Any], **body: Any
) -> str:
    answer = await client.post(f"/api/v1/jobs/{blueprint}", json={"initial_data": data, **body}, headers=who)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


async def status_of(client: AsyncTestClient[Any], job_id: str) -> str:
    return str((await client.get(f"/api/v1/jobs/{job_id}", headers=ADMIN)).json()["status"])


async def until_status(client: AsyncTestClient[Any], job_id: str, status: str) -> None:
    async def reached() -> bool:
        return await status_of(client, job_id) == status

    await wait_for(reached)


def job_ids(html: str) -> set[str]:
    """The full ids of the jobs a list shows (each row's link names the job)."""
    return set(re.findall(r'href="/console/jobs/([0-9a-f-]{36})"', html))


async def test_every_page_renders_for_a_signed_in_client(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        console = await sign_in(client, "billing-token-0123456789")
        await create(client, BILLING, "waits", {"n": 1})
        for path, expected in (
            ("/console", "Jobs created and ended"),
            ("/console/jobs", "waits"),
            ("/console/workers", "No worker is online"),
            ("/console/schedules", "nightly"),
            ("/console/analytics", "admins only"),
        ):
            answer = await console.http.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert expected in answer.text, path
        # The HTMX refreshes fetch only their part.
        cards = await console.http.get(
            "/console", headers={"HX-Request": "true", "HX-Target": "overview-cards"}
        )
        assert cards.text.lstrip().startswith('<section class="cards" id="overview-cards"')
        assert "<html" not in cards.text
        activity = await console.http.get(
            "/console", headers={"HX-Request": "true", "HX-Target": "overview-activity"}
        )
        assert activity.text.lstrip().startswith('<section id="overview-activity"')


async def test_filters_narrow_the_list_and_stay_in_the_url(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        console = await sign_in(client, "billing-token-0123456789")
        red = await create(client, BILLING, "waits", {"colour": "red", "n": 7}, metadata={"team": "a"})
        blue = await create(client, BILLING, "waits", {"colour": "blue", "n": 8}, metadata={"team": "b"})
        crashed = await create(client, BILLING, "crashes", {})
        await until_status(client, crashed, "failed")

        listed = await console.http.get("/console/jobs")
        assert job_ids(listed.text) == {red, blue, crashed}

        for query, expected in (
            ("status=failed", {crashed}),
            ("blueprint=waits", {red, blue}),
            ("data=colour%3Dred", {red}),
            ("data=n%3D8", {blue}),  # a number is read as JSON
            ("data=n%3D%228%22", set()),  # and "8" is the text
            ("meta=team%3Db", {blue}),
            (f"id={red[:24]}", {red}),
            ("status=waiting_for_human&meta=team%3Da", {red}),
            ("created_after=2000-01-01T00:00", {red, blue, crashed}),
            ("created_before=2000-01-01T00:00", set()),
        ):
            answer = await console.http.get(f"/console/jobs?{query}")
            assert answer.status_code == 200
            assert job_ids(answer.text) == expected, query

        # An HTMX filter swaps only the results; the URL it pushes is the filter.
        partial = await console.http.get(
            "/console/jobs?data=colour%3Dred", headers={"HX-Request": "true", "HX-Target": "job-results"}
        )
        assert partial.text.lstrip().startswith('<section id="job-results"') and "<form" not in partial.text
        assert job_ids(partial.text) == {red}

        # Keyset pages: the next link carries the filter and the cursor, never a token.
        for n in range(60):
            await create(client, BILLING, "waits", {"page": n})
        first = await console.http.get("/console/jobs?blueprint=waits")
        next_link = re.search(r'href="(/console/jobs\?[^"]*cursor=[^"]*)"', first.text)
        assert next_link is not None
        url = next_link.group(1).replace("&amp;", "&")
        assert "blueprint=waits" in url and "token" not in url and "csrf" not in url
        second = await console.http.get(url)
        assert len(job_ids(first.text)) == 50 and len(job_ids(second.text)) == 12
        assert not job_ids(first.text) & job_ids(second.text)


async def test_bad_filter_input_says_what_is_wrong(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        console = await sign_in(client, "billing-token-0123456789")
        for query, message in (
            ("created_after=yesterday", "created after must be a date and time"),
            ("id=xyz", "id_prefix must be 1 to 32 hex digits"),
            ("data=colour", "initial data must be key=value"),
            ("status=sleeping", "status must be one of"),
            ("blueprint=nope", "no blueprint is named"),
            ("cursor=garbage", "cursor is not one"),
        ):
            answer = await console.http.get(f"/console/jobs?{query}")
            assert answer.status_code == 200, query
            assert message in answer.text, (query, answer.text)
            if "cursor" not in query:  # a dry run has no cursor: it counts every page
                preview = await console.http.get(f"/console/batch/cancel?{query}")
                assert preview.status_code == 200 and message in preview.text, query
        unknown = await console.http.get("/console/batch/delete")
        assert unknown.status_code == 404


async def test_a_batch_cancel_shows_a_dry_run_then_cancels_exactly_those(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        console = await sign_in(client, "billing-token-0123456789")
        mine = [await create(client, BILLING, "waits", {"batch": "x", "n": n}) for n in range(3)]
        ended = await create(client, BILLING, "waits", {"batch": "x"})
        await client.post(f"/api/v1/jobs/{ended}/cancel", headers=BILLING)  # it matches, but has ended
        unlike = await create(client, BILLING, "waits", {"batch": "y"})
        theirs = await create(client, SHIPPING, "waits", {"batch": "x"})
        for job_id in [*mine, unlike, theirs]:
            await until_status(client, job_id, "waiting_for_human")

        dry = await console.http.get("/console/batch/cancel?data=batch%3Dx", headers={"HX-Request": "true"})
        assert dry.status_code == 200
        assert "3 jobs would be cancelled" in dry.text
        assert all(job_id in dry.text for job_id in mine)
        assert not any(job_id in dry.text for job_id in (ended, unlike, theirs))
        for job_id in [*mine, unlike, theirs]:
            assert await status_of(client, job_id) == "waiting_for_human"  # a dry run changes nothing

        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', dry.text))
        assert form["data"] == "batch=x" and form["csrf_token"] == console.csrf and form["as_of"]
        # A job created after the dry run matches too, but the confirmed run leaves it alone.
        late = await create(client, BILLING, "waits", {"batch": "x"})

        refused = await console.http.post(
            "/console/batch/cancel", data={**form, "csrf_token": "forged"}, headers={"HX-Request": "true"}
        )
        assert refused.status_code == 403
        done = await console.http.post(
            "/console/batch/cancel", data={**form, "reason": "clean-up"}, headers={"HX-Request": "true"}
        )
        assert done.status_code == 200 and "3 jobs cancelled" in done.text, done.text
        assert done.headers["HX-Trigger"] == "chronik-batch-done"
        for job_id in mine:
            assert await status_of(client, job_id) == "cancelled"
        for job_id in (unlike, theirs, late):
            assert await status_of(client, job_id) == "waiting_for_human"

        # Without HTMX the same flow is whole pages.
        page = await console.http.get("/console/batch/retry?data=batch%3Dx")
        assert "<html" in page.text and "No job of this list would be retried" in page.text


async def test_another_clients_jobs_never_appear(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        mine = await create(client, BILLING, "waits", {})
        theirs = await create(client, SHIPPING, "waits", {})
        await until_status(client, mine, "waiting_for_human")
        await until_status(client, theirs, "waiting_for_human")
        billing = await sign_in(client, "billing-token-0123456789")
        listed = await billing.http.get("/console/jobs")
        assert job_ids(listed.text) == {mine}
        by_prefix = await billing.http.get(f"/console/jobs?id={theirs[:12]}")
        assert job_ids(by_prefix.text) == set()
        overview = await billing.http.get("/console")
        waiting = re.search(
            r'<span class="count">(\d+)</span><span class="label">waiting for human', overview.text
        )
        assert waiting is not None and waiting.group(1) == "1"
        dry = await billing.http.get(
            f"/console/batch/cancel?id={theirs[:12]}", headers={"HX-Request": "true"}
        )
        assert "No job of this list would be cancelled" in dry.text

        admin = await sign_in(client, "auditor-token-0123456789")
        listed = await admin.http.get("/console/jobs")
        assert job_ids(listed.text) == {mine, theirs}


async def test_hostile_job_data_renders_as_text(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        console = await sign_in(client, "billing-token-0123456789")
        await create(
            client, BILLING, "waits", {"note": "<script>alert(1)</script>"}, metadata={"x": '"><img src=x>'}
        )
        listed = await console.http.get("/console/jobs")
        assert "<script>alert(1)" not in listed.text and "<img src=x>" not in listed.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed.text
        echoed = await console.http.get("/console/jobs?data=" + quote("note=<script>alert(1)</script>"))
        assert "<script>alert(1)" not in echoed.text and len(job_ids(echoed.text)) == 1


async def test_the_overview_draws_well_formed_svg_charts(app: Any) -> None:
    async with AsyncTestClient(app=app) as client:
        console = await sign_in(client, "billing-token-0123456789")
        await create(client, BILLING, "waits", {})
        crashed = await create(client, BILLING, "crashes", {})
        await until_status(client, crashed, "failed")
        overview = await console.http.get("/console")
        charts = re.findall(r"<svg .*?</svg>", overview.text, re.DOTALL)
        assert len(charts) == 2
        for chart in charts:
            root = ET.fromstring(chart)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            tips = [title.text or "" for title in root.iter("{http://www.w3.org/2000/svg}title")]
            assert any(tip.endswith(": 2 created") for tip in tips), tips
            assert any(tip.endswith(": 1 ended") for tip in tips), tips
        assert "HANDLER_ERROR" in overview.text  # why jobs failed, last day
        assert "oldest task waiting" in overview.text and "events the projections lag" in overview.text


async def test_workers_schedules_and_analytics(busy_app: Any) -> None:
    async with AsyncTestClient(app=busy_app) as client:
        registered = await client.post(
            "/_worker/workers/register",
            json={"worker_id": "w-1", "task_types": ["resize"], "capacity": 3},
            headers={"X-Worker-Token": "worker-token-0123456789", "X-Worker-ID": "w-1"},
        )
        assert registered.status_code == 200, registered.text
        billing = await sign_in(client, "billing-token-0123456789")
        workers = await billing.http.get("/console/workers")
        assert "w-1" in workers.text and "<code>resize</code>" in workers.text
        assert 'max="3"' in workers.text  # its capacity, with 0 in flight

        # "often" fires every second: its job belongs to no client, so only an admin gets a link.
        async def fired() -> bool:
            return bool((await client.get("/api/v1/jobs?blueprint=waits", headers=ADMIN)).json()["jobs"])

        await wait_for(fired)
        schedules = await billing.http.get("/console/schedules")
        assert (
            "often" in schedules.text and "every 1 s" in schedules.text and "daily at 02:30" in schedules.text
        )
        assert "admins only" in schedules.text
        assert not job_ids(schedules.text)
        analytics = await billing.http.get("/console/analytics")
        assert "admins only" in analytics.text and "<table" not in analytics.text
        assert "admins only" in (await billing.http.get("/console/retention")).text

        admin = await sign_in(client, "auditor-token-0123456789")
        schedules = await admin.http.get("/console/schedules")
        assert job_ids(schedules.text)
        for window in ("1h", "24h", "7d"):
            analytics = await admin.http.get(f"/console/analytics?window={window}")
            assert analytics.status_code == 200 and "Time per state" in analytics.text, analytics.text
            chart = re.search(r"<svg .*?</svg>", analytics.text, re.DOTALL)
            assert chart is not None
            ET.fromstring(chart.group(0))
        wrong = await admin.http.get("/console/analytics?window=forever")
        assert "window must be one of" in wrong.text

        # Retention: the log's partitions, for admins; this week's takes new jobs and stays.
        retention = await admin.http.get("/console/retention")
        assert retention.status_code == 200, retention.text
        assert "events_legacy" in retention.text and "before partitioning" in retention.text
        assert "it still takes new jobs" in retention.text
