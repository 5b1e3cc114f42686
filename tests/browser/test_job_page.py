"""The job page in a real Chromium: its timeline, deciding an approval, cancelling, forking from
a version (by the "as of" panel), and replaying the job with today's handlers."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Orchestrator

from .conftest import reaches, sign_in, start_job

pytestmark = pytest.mark.browser

JOB_PAGE = re.compile(r"/console/jobs/([0-9a-f-]{36})$")


async def open_job(page: Any, console: Orchestrator, job: Any) -> None:
    await page.goto(f"{console.url}/console/jobs/{job.job_id}")
    await expect(page.locator("#job-head")).to_be_visible()


async def test_the_timeline_lists_the_events_newest_first_and_unfolds_one(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    job = await start_job(console, "review", {"region": "eu", "order_id": 7}, status="waiting_for_human")
    history = await console.engine.job_history(job.job_id)
    await sign_in(page, console.url)
    await open_job(page, console, job)

    events = page.locator("#timeline-rows details.event")
    await expect(events).to_have_count(len(history))
    shown = [await type_.inner_text() for type_ in await events.locator("summary .type").all()]
    assert shown == [event.type for event in reversed(history)]  # newest first
    assert shown[-1] == "JobCreated" and shown[0] == "ApprovalRequested"
    versions = [await event.get_attribute("data-version") for event in await events.all()]
    assert versions == [str(v) for v in range(job.version, 0, -1)]

    # Unfold the first event: its data (the initial data) and its meta (who did it).
    created = page.locator("#event-1")
    body = created.locator(".event-body")
    await expect(body).to_be_hidden()
    await created.locator("summary").click()
    await expect(body).to_be_visible()
    assert '"order_id": 7' in await body.locator("pre").first.inner_text()
    facts = body.locator("dl.facts")
    await expect(facts.locator("dt:has-text('Actor') + dd")).to_have_text("billing")
    await expect(facts.locator("dt:has-text('Instance') + dd")).to_have_text("test")
    await screenshot(page, "job-event")
    # The header and the graph: where the job stands.
    await expect(page.locator("#job-head .job-status")).to_contain_text("waiting for human")
    await expect(page.locator("#job-graph svg g.node.current")).to_have_attribute("data-state", "decide")


async def test_deciding_an_approval_in_the_browser_moves_the_job_on(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    job = await start_job(console, "review", {"region": "eu", "order_id": 8}, status="waiting_for_human")
    await sign_in(page, console.url)
    await open_job(page, console, job)
    form = page.locator("#job-actions form:has(textarea[name=comment])")
    await expect(form).to_contain_text("Ship it?")
    await form.locator("textarea[name=comment]").fill("checked the invoice")
    await screenshot(page, "job-approval")

    await form.locator("button[name=decision][value=yes]").click()
    # The page follows the job (the answer to the form, then the live header): it ends in done.
    await expect(page.locator("#job-head .job-status")).to_contain_text("finished", timeout=10_000)
    await expect(page.locator("#job-head .job-status strong")).to_have_text("done")
    await expect(page.locator("#job-actions form:has(textarea[name=comment])")).to_have_count(0)
    await expect(page.locator("#timeline-rows details.event .type").first).to_have_text("JobFinished")
    await expect(page.locator("#job-graph svg g.node.current")).to_have_attribute("data-state", "done")
    ended = await reaches(console, job.job_id, "finished")
    given = [e for e in await console.engine.job_history(job.job_id) if e.type == "ApprovalGiven"]
    assert len(given) == 1
    assert (given[0].event.decision, given[0].event.comment, given[0].event.actor) == (  # type: ignore[union-attr]
        "yes",
        "checked the invoice",
        "billing",
    )
    await expect(page.locator("#job-head .live")).to_have_count(0)  # it has ended: no more polling

    # Reloaded: the whole path through the blueprint, and the timeline with the decision.
    await open_job(page, console, ended)
    await expect(page.locator("#timeline-rows details.event")).to_have_count(ended.version)
    await expect(page.locator("#timeline-rows .type", has_text="ApprovalGiven")).to_have_count(1)
    taken = page.locator("#job-graph svg g.edge.taken")
    await expect(taken).to_have_count(2)
    moves = {
        (await edge.get_attribute("data-from"), await edge.get_attribute("data-to"))
        for edge in await taken.all()
    }
    assert moves == {("start", "decide"), ("decide", "done")}
    await screenshot(page, "job", full_page=True)

    # Replay it with today's handlers: they decide as history did.
    await page.click("text=Replay with today's handlers…")
    await page.wait_for_url(f"{console.url}/console/jobs/{job.job_id}/replay")
    await page.click("button:has-text('Run the replay')")
    await expect(page.locator(".replay-result .ok")).to_contain_text("decide as history did")
    await screenshot(page, "replay")


async def test_cancelling_a_job_from_its_page(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    job = await start_job(console, "nap", {"region": "eu"}, status="waiting_for_timer")
    await sign_in(page, console.url)
    await open_job(page, console, job)
    actions = page.locator("#job-actions")
    await actions.locator("input[name=reason]").fill("not needed any more")
    page.once("dialog", lambda dialog: dialog.accept())  # hx-confirm asks first
    await actions.locator("button:has-text('Cancel the job')").click()
    await expect(page.locator("#job-head .job-status")).to_contain_text("cancelled")
    await expect(actions.locator("button:has-text('Cancel the job')")).to_have_count(0)
    await expect(page.locator("#timeline-rows details.event .type").first).to_have_text("JobCancelled")
    cancelled = await console.engine.get_job(job.job_id)
    assert cancelled.status == "cancelled"
    last = (await console.engine.job_history(job.job_id))[-1]
    assert last.type == "JobCancelled"
    assert (last.event.reason, last.event.actor) == ("not needed any more", "billing")  # type: ignore[union-attr]


async def test_forking_a_job_from_version_2_opens_the_new_job(
    console: Orchestrator, browser_page: Any, screenshot: Any
) -> None:
    page = browser_page
    source = await start_job(console, "review", {"region": "eu", "order_id": 9}, status="waiting_for_human")
    await sign_in(page, console.url)
    await open_job(page, console, source)

    # The state as of version 2, from its event, then the fork it offers.
    second = page.locator("#event-2")
    await second.locator("summary").click()
    await second.locator("a:has-text('State as of this version')").click()
    panel = page.locator("#as-of .as-of-panel")
    await expect(panel.locator("h2")).to_contain_text("As of version 2")
    await screenshot(page, "job-as-of")
    await panel.locator("button:has-text('Fork a new job from version 2')").click()

    await page.wait_for_url(lambda url: bool(JOB_PAGE.search(url)) and str(source.job_id) not in url)
    found = JOB_PAGE.search(page.url)
    assert found is not None
    new_id = found.group(1)
    forked = page.locator("#job-head dt:has-text('Forked from') + dd")
    await expect(forked).to_contain_text("at version 2")
    await expect(forked.locator("a")).to_have_attribute("href", f"/console/jobs/{source.job_id}")
    new = await console.engine.get_job(UUID(new_id))
    assert new.forked_from is not None
    assert (str(new.forked_from.job_id), new.forked_from.version) == (str(source.job_id), 2)
    await screenshot(page, "fork")

    # And back: the source lists its fork.
    await forked.locator("a").click()
    await page.wait_for_url(f"{console.url}/console/jobs/{source.job_id}")
    await expect(page.locator("#job-head dt:has-text('Forks') + dd a")).to_have_text(new_id)
