"""The console in a real Chromium: sign in, the overview and workers, the job list's filters, a
batch cancel after its dry run, and job data that holds markup shown as text."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import expect

from chronik.core.wire import RegisterBody
from tests.e2e.conftest import Orchestrator

from .conftest import AUDITOR, BILLING, sign_in, start_job

pytestmark = pytest.mark.browser

ROWS = "#job-results table.jobs tbody tr"


async def listed_ids(page: Any) -> list[str]:
    """The full ids of the jobs the list shows (each row's link has the whole id as its title)."""
    return [str(await link.get_attribute("title")) for link in await page.locator(f"{ROWS} td a").all()]


async def test_sign_in_and_out(console: Orchestrator, browser_page: Any, screenshot: Any) -> None:
    page = browser_page
    await page.goto(f"{console.url}/console")
    assert page.url.endswith("/console/login")
    await screenshot(page, "sign-in")
    await page.fill("input[name=token]", "wrong-token")
    await page.click("button[type=submit]")
    assert "not a client token" in await page.inner_text("[role=alert]")
    await sign_in(page, console.url)
    assert "billing" in await page.inner_text("header")
    cookies = await page.context.cookies()
    session = next(cookie for cookie in cookies if cookie["name"] == "chronik_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # no script can read the session
    await page.click("text=Sign out")
    await page.wait_for_url(f"{console.url}/console/login")


async def test_overview_counts_the_clients_jobs_and_workers_are_listed(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    for region in ("eu", "us"):
        await start_job(console, "review", {"region": region}, status="waiting_for_human")
        await start_job(console, "work", {"region": region}, status="waiting_for_worker")
    await start_job(console, "nap", {}, status="waiting_for_timer")
    await start_job(console, "review", {}, client="other", status="waiting_for_human")  # not billing's
    await console.engine.workers.register(
        RegisterBody(worker_id="gpu-1", task_types=["render", "transcode"], capacity=4)
    )
    await sign_in(page, console.url)
    cards = page.locator("#overview-cards")
    await expect(cards.locator("a.status-waiting_for_human .count")).to_have_text("2")
    await expect(cards.locator("a.status-waiting_for_worker .count")).to_have_text("2")
    await expect(cards.locator("a.status-waiting_for_timer .count")).to_have_text("1")
    await expect(cards.locator("a[href='/console/workers'] .count")).to_have_text("1")
    await screenshot(page, "overview")
    # A status card is a link to the list filtered by it.
    await cards.locator("a.status-waiting_for_worker").click()
    await page.wait_for_url(f"{console.url}/console/jobs?status=waiting_for_worker")
    await expect(page.locator(ROWS)).to_have_count(2)
    await page.click("header.top nav >> text=Workers")
    await page.wait_for_url(f"{console.url}/console/workers")
    row = page.locator("#worker-list tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("gpu-1")
    await expect(row).to_contain_text("render, transcode")
    await screenshot(page, "workers")


async def test_filtering_the_list_swaps_the_results_and_keeps_the_filter_in_the_address(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    eu_waiting = [
        await start_job(console, "review", {"region": "eu", "order_id": n}, status="waiting_for_human")
        for n in (1, 2)
    ]
    us_waiting = await start_job(
        console, "review", {"region": "us", "order_id": 3}, status="waiting_for_human"
    )
    eu_napping = await start_job(console, "nap", {"region": "eu"}, status="waiting_for_timer")
    others = await start_job(console, "review", {"region": "eu"}, client="other", status="waiting_for_human")
    await sign_in(page, console.url)
    await page.goto(f"{console.url}/console/jobs")
    everything = {str(job.job_id) for job in [*eu_waiting, us_waiting, eu_napping]}
    assert set(await listed_ids(page)) == everything  # billing's jobs only, never other's
    await page.evaluate("window.__same_page = true")  # gone if the browser loads a new page

    await page.select_option("select[name=status]", "waiting_for_human")
    await page.fill("input[name=data]", "region=eu")
    await page.click("form.filters button[type=submit]")
    await expect(page.locator(ROWS)).to_have_count(2)
    assert set(await listed_ids(page)) == {str(job.job_id) for job in eu_waiting}
    await page.wait_for_url(re.compile(r"/console/jobs\?"))
    assert parse_qs(urlsplit(page.url).query) == {"status": ["waiting_for_human"], "data": ["region=eu"]}
    assert await page.evaluate("window.__same_page") is True  # only the results were swapped
    await screenshot(page, "jobs")

    # A value that is JSON is read as JSON: order_id=3 is the number.
    await page.select_option("select[name=status]", "")
    await page.fill("input[name=data]", "order_id=3")
    await page.click("form.filters button[type=submit]")
    await expect(page.locator(ROWS)).to_have_count(1)
    assert await listed_ids(page) == [str(us_waiting.job_id)]
    await page.wait_for_url(re.compile(r"data=order_id%3D3"))
    # Input that is not right is said above the results.
    await page.fill("input[name=data]", "no equals sign")
    await page.click("form.filters button[type=submit]")
    await expect(page.locator("#job-results [role=alert]")).to_contain_text("key=value")
    assert await page.evaluate("window.__same_page") is True

    # The address is the view: opened afresh, it shows the same filter and results.
    await page.goto(f"{console.url}/console/jobs?status=waiting_for_timer&data=region%3Deu")
    assert await page.input_value("select[name=status]") == "waiting_for_timer"
    assert await page.input_value("input[name=data]") == "region=eu"
    assert await listed_ids(page) == [str(eu_napping.job_id)]

    # An admin client finds every client's jobs with the same filter.
    await sign_in(page, console.url, AUDITOR)
    await page.goto(f"{console.url}/console/jobs?status=waiting_for_human&data=region%3Deu")
    assert set(await listed_ids(page)) == {str(job.job_id) for job in [*eu_waiting, others]}


async def test_batch_cancel_after_its_dry_run(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    eu = [
        await start_job(console, "review", {"region": "eu", "order_id": n}, status="waiting_for_human")
        for n in range(3)
    ]
    us = await start_job(console, "review", {"region": "us"}, status="waiting_for_human")
    ended = await start_job(console, "review", {"region": "eu"}, status="waiting_for_human")
    await console.engine.cancel_job(ended.job_id, reason="earlier", actor="billing")
    others = await start_job(console, "review", {"region": "eu"}, client="other", status="waiting_for_human")
    await sign_in(page, console.url)
    await page.goto(f"{console.url}/console/jobs?data=region%3Deu")
    await expect(page.locator(ROWS)).to_have_count(4)  # the three, and the one cancelled before

    await page.click("text=Cancel the matching jobs…")
    preview = page.locator("#batch-panel")
    await expect(preview.locator("[role=status]")).to_contain_text("3 jobs would be cancelled")
    shown = {str(await link.get_attribute("title")) for link in await preview.locator(".ids a").all()}
    assert shown == {str(job.job_id) for job in eu}
    for job in [*eu, us]:  # a dry run changes nothing
        assert (await console.engine.get_job(job.job_id)).status == "waiting_for_human"
    await screenshot(page, "batch-preview")

    await preview.locator("input[name=reason]").fill("region eu closed")
    await preview.locator("button", has_text="Cancel 3 jobs").click()
    await expect(page.locator("#batch-panel .outcome")).to_contain_text("3 jobs cancelled")
    # The list reloads itself: the three rows now say cancelled.
    await expect(page.locator(f"{ROWS} .status-cancelled")).to_have_count(4)

    # Through the API: exactly those three were cancelled, each with the reason; the rest untouched.
    async with httpx.AsyncClient(base_url=console.url, headers={"X-Client-Token": BILLING}) as api:
        found = (await api.get("/api/v1/jobs", params={"status": "cancelled", "limit": 50})).json()
    assert {job["job_id"] for job in found["jobs"]} == {str(job.job_id) for job in [*eu, ended]}
    for job in eu:
        history = await console.engine.job_history(job.job_id)
        cancelled = [event for event in history if event.type == "JobCancelled"]
        assert len(cancelled) == 1 and cancelled[0].meta.get("actor") == "billing"
    assert (await console.engine.get_job(us.job_id)).status == "waiting_for_human"
    assert (await console.engine.get_job(others.job_id)).status == "waiting_for_human"


HOSTILE = {
    "note": "<script>window.__pwned = 1</script>",
    "pic": '<img src=x onerror="window.__pwned=2">',
}


async def test_markup_in_job_data_is_shown_as_text_and_never_runs(
    console: Orchestrator, browser_page: Any
) -> None:
    page = browser_page
    job = await start_job(console, "review", HOSTILE, status="waiting_for_human")
    await sign_in(page, console.url)

    await page.goto(f"{console.url}/console/jobs")
    await page.wait_for_load_state("load")  # an <img> would have failed to load by now
    cell = page.locator(f"{ROWS} td.data")
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert await page.locator(f"{ROWS} img, #job-results script").count() == 0
    shown = str(await cell.get_attribute("title"))  # the cell is cut short; its title has it all
    assert HOSTILE["note"] in shown and HOSTILE["pic"].replace('"', '\\"') in shown
    assert (await cell.inner_text()).startswith('{"note":"<script>window.__pwned = 1</script>"')

    await page.goto(f"{console.url}/console/jobs/{job.job_id}")
    await page.wait_for_load_state("load")
    await page.click("#job-head summary:has-text('Initial data')")
    initial = await page.locator("#job-head details:has(summary:has-text('Initial data')) pre").inner_text()
    assert HOSTILE["note"] in initial and 'onerror=\\"window.__pwned=2\\"' in initial
    await page.click("#event-1 > summary")
    assert HOSTILE["note"] in await page.locator("#event-1 .event-body").inner_text()
    assert await page.locator("main img").count() == 0
    assert await page.evaluate("typeof window.__pwned") == "undefined"
