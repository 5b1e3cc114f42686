"""Browser tests: the console in a real Chromium (Debian's), driven by Playwright's Python package.

Chromium is found on PATH (``chromium``) or at ``CHROMIUM_PATH``. Without it these tests skip,
unless ``CHRONIK_BROWSER_REQUIRED=1`` (set by ``.ci/run``), where they fail instead. A failing
test saves a screenshot of its page under ``tests/browser/failures/``; with
``CHRONIK_SCREENSHOTS=1`` the tests also write the screenshots of ``docs/console.md``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from chronik import Blueprint
from tests.conftest import wait_for
from tests.e2e.conftest import (
    Orchestrator,
    start_orchestrator,  # noqa: F401  (a fixture these tests use)
    work_blueprint,
)

ROOT = Path(__file__).resolve().parents[2]
FAILURES = Path(__file__).parent / "failures"
SCREENSHOTS = ROOT / "docs" / "console"

pytestmark = pytest.mark.browser


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    found = chromium_path()
    if found is None:
        message = "Debian's chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("CHRONIK_BROWSER_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def browser_page(chromium: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh page in headless Chromium; on failure its screenshot goes to tests/browser/failures/."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        context = await browser.new_context(viewport={"width": 1360, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            if request.node.stash.get(_FAILED, False):
                FAILURES.mkdir(exist_ok=True)
                await page.screenshot(path=str(FAILURES / f"{request.node.name}.png"), full_page=True)
            await browser.close()


@pytest.fixture
def screenshot() -> Callable[..., Any]:
    """``await screenshot(page, "jobs")`` writes docs/console/jobs.png when CHRONIK_SCREENSHOTS=1
    (the viewport; ``full_page=True`` the whole page)."""

    async def take(page: Any, name: str, *, full_page: bool = False) -> None:
        if os.environ.get("CHRONIK_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    return take


# -- the orchestrator the console tests drive ------------------------------------------------------

BILLING = "billing-token-0123456789"
OTHER = "other-token-0123456789"
AUDITOR = "auditor-token-0123456789"
CLIENTS = f"""\
[billing]
token = "{BILLING}"
[other]
token = "{OTHER}"
[auditor]
token = "{AUDITOR}"
role = "admin"
"""


def review_blueprint() -> Blueprint:
    """start (notes the region) -> decide (a person says yes or no) -> done, or rejected."""
    bp = Blueprint("review", api_endpoint="review")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        state_history["intake"] = {"region": initial_data.get("region"), "items": len(initial_data)}
        actions.transition_to("decide")

    @bp.handler_for("decide")
    async def decide(actions: Any) -> None:
        actions.await_human_approval("Ship it?", transitions={"yes": "done", "no": "rejected"})

    @bp.handler_for("done", is_end=True)
    async def done(state_history: dict[str, Any]) -> None:
        state_history["done"] = {"shipped": True}

    @bp.handler_for("rejected", is_end=True, is_failure=True)
    async def rejected() -> None: ...

    return bp


def nap_blueprint() -> Blueprint:
    """start -> an hour's timer -> done: a job that waits for a timer through every test."""
    bp = Blueprint("nap", api_endpoint="nap")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.sleep(3600, then="done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


@pytest.fixture
async def console(start_orchestrator: Any, tmp_path: Path) -> Orchestrator:  # noqa: F811
    """An orchestrator serving the console, with clients billing, other and auditor (an admin);
    blueprints review (approval), nap (timer) and work (a task no worker takes)."""
    clients = tmp_path / "clients.toml"
    clients.write_text(CLIENTS)
    # A long task lease: a worker the test registers stays "online" (a heartbeat within the lease)
    # however slowly the machine runs; no test here lets a lease expire.
    orchestrator: Orchestrator = await start_orchestrator(
        review_blueprint(),
        nap_blueprint(),
        work_blueprint(),
        clients_config_path=str(clients),
        task_lease_seconds=60.0,
    )
    return orchestrator


async def sign_in(page: Any, url: str, token: str = BILLING) -> None:
    """Sign ``page`` in to the console at ``url`` with a client token; it lands on the overview."""
    await page.goto(f"{url}/console/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/console")


async def reaches(console: Orchestrator, job_id: UUID, status: str) -> Any:
    """The job once it has ``status`` (its steps run in the background)."""

    async def check() -> Any:
        job = await console.engine.get_job(job_id)
        return job if job.status == status else None

    return await wait_for(check)


async def start_job(
    console: Orchestrator, blueprint: str, data: dict[str, Any], *, client: str = "billing", status: str
) -> Any:
    """A job of ``blueprint`` owned by ``client``, once it has reached ``status``."""
    job = await console.engine.create_job(blueprint, data, actor=client)
    return await reaches(console, job.job_id, status)
