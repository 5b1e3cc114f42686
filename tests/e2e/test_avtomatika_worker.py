"""The unmodified official Avtomatika worker (avtomatika-worker 1.0b20 from PyPI) runs chronik's tasks.

It is installed into a virtual environment of its own, knows nothing of chronik,
and signs its messages with its own token from workers.toml, which chronik verifies.
"""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chronik import Blueprint
from tests.conftest import wait_for
from tests.e2e.test_workers import create, history, job, settled

pytestmark = pytest.mark.e2e

AVTOMATIKA_WORKER = "avtomatika-worker==1.0b20"

WORKER_SCRIPT = """
import asyncio
from avtomatika_worker import Worker

worker = Worker(worker_type="chronik-compat", max_concurrent_tasks=4)


@worker.skill("add", description="Adds two numbers")
async def add(params: dict, send_progress) -> dict:
    await send_progress(None, None, 50, "adding")
    await asyncio.sleep(1.5)
    return {"data": {"sum": params["a"] + params["b"]}}


@worker.skill("fail_permanently")
async def fail_permanently(params: dict) -> dict:
    return {"status": "failure", "error": {"code": "PERMANENT_ERROR", "message": "cannot do that"}}


@worker.skill("route")
def route(params: dict) -> dict:
    return {"status": "needs_review", "data": {"score": 0.3}}


@worker.skill("flaky")
async def flaky(params: dict) -> dict:
    raise RuntimeError("boom")


if __name__ == "__main__":
    worker.run()
"""


@pytest.fixture(scope="session")
def avtomatika_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with the official Avtomatika worker SDK installed from PyPI, and nothing of chronik."""
    folder = tmp_path_factory.mktemp("avtomatika-venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", AVTOMATIKA_WORKER],
        check=True,
        timeout=600,
    )
    return python


def compat_blueprint() -> Blueprint:
    bp = Blueprint("compat")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task(
            initial_data["skill"],
            initial_data.get("params", {}),
            transitions={"success": "done", "needs_review": "review", "failure": "failed"},
            max_retries=1,
        )

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("review", is_end=True)
    async def review() -> None: ...

    @bp.handler_for("failed", is_end=True, is_failure=True)
    async def failed() -> None: ...

    return bp


@pytest.fixture
def avtomatika_worker(avtomatika_python: Path, tmp_path: Path) -> Iterator[Any]:
    children: list[subprocess.Popen[str]] = []

    def start(url: str, token: str) -> subprocess.Popen[str]:
        script = tmp_path / "avt_worker.py"
        script.write_text(WORKER_SCRIPT)
        env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ORCHESTRATOR_SECRET_KEY")}
        env.update(
            ORCHESTRATOR_URL=url,
            WORKER_ID="avt-1",
            WORKER_TOKEN=token,
            HEARTBEAT_INTERVAL="1",
            TASK_POLL_TIMEOUT="5",
            WORKER_SKILLS_DIR=str(tmp_path / "no-skills"),
        )
        log = (tmp_path / "avt.log").open("w")
        child = subprocess.Popen(
            [str(avtomatika_python), str(script)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        children.append(child)
        return child

    yield start
    for child in children:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def test_official_avtomatika_worker_runs_chronik_tasks(
    start_orchestrator: Any, avtomatika_worker: Any, tmp_path: Path
) -> None:
    config = tmp_path / "workers.toml"
    config.write_text('[avt-1]\ntoken = "avt-1-own-secret"\n')
    orchestrator = await start_orchestrator(compat_blueprint(), workers_config_path=str(config))
    avtomatika_worker(orchestrator.url, "avt-1-own-secret")

    adding = await create(orchestrator.url, "compat", {"skill": "add", "params": {"a": 2, "b": 3}})

    async def progressing() -> Any:
        current = await job(orchestrator.url, adding)
        return current if current["progress"] else None

    try:
        running = await wait_for(progressing, within=60)
    except AssertionError:
        pytest.fail((tmp_path / "avt.log").read_text()[-4000:])
    assert (running["progress"]["progress"], running["progress"]["message"]) == (50, "adding")
    assert running["progress"]["worker_id"] == "avt-1"
    added = await settled(orchestrator.url, adding)
    assert added["status"] == "finished", added
    assert added["state_history"]["sum"] == 5

    routed = await create(orchestrator.url, "compat", {"skill": "route"})
    permanent = await create(orchestrator.url, "compat", {"skill": "fail_permanently"})
    flaky = await create(orchestrator.url, "compat", {"skill": "flaky"})
    assert (await settled(orchestrator.url, routed))["current_state"] == "review"
    quarantined = await settled(orchestrator.url, permanent)
    assert quarantined["status"] == "quarantined" and quarantined["error"]["code"] == "PERMANENT_ERROR"
    retried = await settled(orchestrator.url, flaky, within=60)
    assert retried["status"] == "quarantined" and retried["error"]["code"] == "TRANSIENT_ERROR"
    flaky_types = [e["type"] for e in await history(orchestrator.url, flaky)]
    assert flaky_types.count("TaskFailed") == 2 and "TaskRetryScheduled" in flaky_types

    async with orchestrator.engine.database.pool.acquire() as conn:
        registered = await conn.fetchrow("SELECT task_types, info FROM workers WHERE worker_id = 'avt-1'")
    assert registered is not None
    assert sorted(registered["task_types"]) == ["add", "fail_permanently", "flaky", "route"]
    # The worker logged no protocol trouble: its only errors are the two runs of the flaky skill.
    log = (tmp_path / "avt.log").read_text()
    errors = [line for line in log.splitlines() if " ERROR in " in line]
    assert len(errors) == 2 and all("error occurred while processing task" in e for e in errors), log[-4000:]
    assert "HTTP 4" not in log and "HTTP 5" not in log and "Backing off" not in log, log[-4000:]
