"""An idle orchestrator and an idle worker cost PostgreSQL at most one transaction a second."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import uvicorn

from chronik import Worker
from chronik.api.app import create_app
from chronik.settings import Settings
from tests.e2e.conftest import CLIENT_TOKEN, WORKER_TOKEN, free_port, work_blueprint

pytestmark = pytest.mark.e2e

SETTLE_SECONDS = 12.0
"""Start-up is over, and its transactions are counted: a backend reports its counts at most once
a second, and the rest when it has been idle for 10 s."""
WINDOW_SECONDS = 20.0


async def test_an_idle_orchestrator_and_worker_cost_at_most_one_transaction_a_second(
    make_engine: Any, database_url: str
) -> None:
    # Every interval, lease and limit at its default (the test settings shorten the poll and
    # switch the worker limits off, whose counters are statements too).
    defaults = Settings()
    engine = await make_engine(
        work_blueprint(),
        global_worker_token=WORKER_TOKEN,
        poll_interval=defaults.poll_interval,
        worker_rate_heartbeats=defaults.worker_rate_heartbeats,
        worker_rate_polls=defaults.worker_rate_polls,
        worker_rate_other=defaults.worker_rate_other,
    )
    assert (engine.settings.watcher_interval, engine.settings.projection_interval) == (
        defaults.watcher_interval,
        defaults.projection_interval,
    )
    app = create_app(engine, client_token=CLIENT_TOKEN, worker_token=WORKER_TOKEN, manage_engine=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test owns signals
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.02)
    # The SDK's defaults (heartbeat, poll timeout); capacity 1 keeps one poll waiting, so the
    # count does not hinge on where the window falls in the polls' 30 s cycle.
    worker = Worker("idle-worker", url=f"http://127.0.0.1:{port}", token=WORKER_TOKEN, capacity=1)

    @worker.task("work")
    async def work(params: dict[str, Any]) -> dict[str, Any]:
        return params

    working = asyncio.create_task(worker.serve())
    # Counted from another database, so that reading the counter costs this one nothing.
    other = urlsplit(database_url)._replace(path="/postgres").geturl()
    name = urlsplit(database_url).path.lstrip("/")
    reader = await asyncpg.connect(other)
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        before = await _transactions(reader, name)
        await asyncio.sleep(WINDOW_SECONDS)
        after = await _transactions(reader, name)
    finally:
        await reader.close()
        worker.stop()
        await working
        server.should_exit = True
        await serving
    rate = (after - before) / WINDOW_SECONDS
    print(f"idle: {after - before} transactions in {WINDOW_SECONDS:.0f} s ({rate:.2f}/s)")
    assert rate <= 1.0, f"{after - before} transactions in {WINDOW_SECONDS} s"


async def _transactions(conn: asyncpg.Connection, database: str) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    count = await conn.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    return int(count)
