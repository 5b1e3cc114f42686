"""The database drops every connection under load (issue 16's scenario 2, in short): no request
answers 500 and no traceback is logged, and the instance serves again without a restart. (asyncpg's
pool mostly replaces the dead connections before a request meets one; a request that does meet one
answers 503 with Retry-After, which tests/unit/test_unavailable.py checks for each such error.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import httpx
import pytest

from chronik import Blueprint
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": "test-token"}


def quick() -> Blueprint:
    bp = Blueprint("quick", api_endpoint="quick")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


async def terminate_every_session(database_url: str) -> int:
    """What a DBA's pg_terminate_backend, a failover or a restart does to chronik's connections."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


async def test_killed_connections_answer_503_then_the_instance_recovers(
    start_orchestrator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator = await start_orchestrator(quick())
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=15) as api:

        async def create() -> httpx.Response:
            return await api.post("/api/v1/jobs/quick", json={"initial_data": {}}, headers=CLIENT)

        assert (await asyncio.gather(*(create() for _ in range(8))))[0].status_code == 202  # a warm pool
        answers: list[httpx.Response] = []
        for _ in range(3):  # again and again, under load
            assert await terminate_every_session(orchestrator.engine.database_url) > 0
            answers += await asyncio.gather(*(create() for _ in range(10)))
        statuses = {response.status_code for response in answers}
        assert statuses <= {202, 503}, [(r.status_code, r.text) for r in answers if r.status_code >= 500]
        for refused in (r for r in answers if r.status_code == 503):
            assert refused.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
            assert int(refused.headers["Retry-After"]) >= 1

        async def serving() -> bool:
            return (await create()).status_code == 202

        await wait_for(serving, within=20)
        job_id = (await create()).json()["job_id"]

        async def finished() -> bool:
            job = (await api.get(f"/api/v1/jobs/{job_id}", headers=CLIENT)).json()
            return bool(job["status"] == "finished")

        await wait_for(finished, within=20)
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
