"""``Engine.run()`` embedded in a user's program: runs handlers until SIGTERM, then exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from chronik.core.state import JobStatus
from chronik.demo import blueprints
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

PROGRAM = """
from chronik import Engine
from chronik.demo import blueprints

engine = Engine()
for blueprint in blueprints:
    engine.register_blueprint(blueprint)
print("running", flush=True)
engine.run()
print("stopped", flush=True)
"""


async def test_engine_run_blocks_until_sigterm(database_url: str, make_engine: Any) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "POLL_INTERVAL_SECONDS": "0.2"}
    proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block; communicate() is at the end)
        [sys.executable, "-c", PROGRAM], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        client = await make_engine(*blueprints, start=False)
        await client.start(run_executor=False)  # creates jobs; the subprocess runs them
        job = await client.create_job("review", {"amount": 10})

        async def finished() -> bool:
            return (await client.get_job(job.job_id)).status == JobStatus.FINISHED

        await wait_for(finished, within=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()  # structlog's default configuration logs to stdout in between
    assert (lines[0], lines[-1]) == ("running", "stopped")
    assert any("engine_stopped" in line for line in lines)
