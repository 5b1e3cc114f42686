"""Pool exhaustion: a request that cannot get a database connection in time answers 503, not a hang."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from chronik.api.app import create_app
from chronik.demo import review
from chronik.engine import Engine

TOKEN = {"X-Client-Token": "test-token"}


async def test_an_exhausted_pool_answers_503_database_busy_and_recovers(
    make_engine: Callable[..., Any],
) -> None:
    engine: Engine = await make_engine(review, pool_max_size=2, pool_timeout=0.3)
    app = create_app(engine, client_token="test-token", manage_engine=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chronik") as client:
        created = await client.post(
            "/api/v1/jobs/review", json={"initial_data": {"amount": 3}}, headers=TOKEN
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        # Something holds every connection (statements stuck behind locks, say).
        held = [await engine.database.pool.acquire() for _ in range(2)]
        try:
            busy = await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)
            assert busy.status_code == 503, busy.text
            assert busy.json()["error"]["code"] == "DATABASE_BUSY"
            assert "DB_POOL_MAX_SIZE" in busy.json()["error"]["message"]
            assert busy.headers["retry-after"] == "2"
            refused = await client.post(
                "/api/v1/jobs/review", json={"initial_data": {"amount": 4}}, headers=TOKEN
            )
            assert refused.status_code == 503
        finally:
            for conn in held:
                await engine.database.pool.release(conn)
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).status_code == 200
        # Nothing half-written: the refused create left no job.
        listed = (await client.get("/api/v1/jobs?blueprint=review", headers=TOKEN)).json()["jobs"]
        assert [job["job_id"] for job in listed] == [job_id]
