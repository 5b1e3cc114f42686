"""History that leaves the database: partitions archived, verified, dropped, and still answering."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from chronik._runtime.verify import verify_archive_file
from chronik.adapters.postgres import partitions
from chronik.api.app import create_app
from chronik.core import ids
from chronik.demo import blueprints
from chronik.engine import Engine
from tests.conftest import wait_for

TOKEN = {"X-Client-Token": "test-token"}
RETENTION_DAYS = 1e-6  # about 0.09 s: every ended job is past it almost at once


def _dated(monkeypatch: pytest.MonkeyPatch, days_ago: float) -> None:
    """Make the next jobs' ids (and so their partition) as if created ``days_ago``."""
    real = ids.new_job_id.__wrapped__ if hasattr(ids.new_job_id, "__wrapped__") else ids.new_job_id

    def dated(at: datetime | None = None, *, seed: UUID | None = None) -> UUID:
        return real(datetime.now(UTC) - timedelta(days=days_ago), seed=seed)

    dated.__wrapped__ = real  # type: ignore[attr-defined]
    monkeypatch.setattr(ids, "new_job_id", dated)


async def _archiving_engine(make_engine: Callable[..., Any], folder: Path) -> Engine:
    engine: Engine = await make_engine(
        *blueprints,
        archive_url=folder.as_uri(),
        retention_days=RETENTION_DAYS,
        archive_interval=3600.0,
    )
    return engine


@contextlib.asynccontextmanager
async def _client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    # In this test's event loop, beside the engine it runs (the archiver is called from here too).
    app = create_app(engine, client_token="test-token", manage_engine=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chronik") as client:
        yield client


async def _past_partitions(engine: Engine) -> None:
    now = datetime.now(UTC)
    async with engine.database.transaction() as conn:
        await partitions.ensure(conn, since=now - timedelta(days=35), until=now, days=7)


async def _create(client: httpx.AsyncClient, endpoint: str, data: dict[str, Any]) -> str:
    created = await client.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": data}, headers=TOKEN)
    assert created.status_code == 202, created.text
    job_id: str = created.json()["job_id"]
    return job_id


async def _status(client: httpx.AsyncClient, job_id: str) -> str:
    status: str = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()["status"]
    return status


async def _answers(client: httpx.AsyncClient, job_id: str) -> dict[str, bytes]:
    """What the API says of a job: state, history, state as of a version and as of a time."""
    history = await client.get(f"/api/v1/jobs/{job_id}/history", headers=TOKEN)
    at = history.json()[1]["at"]
    paths = {
        "state": f"/api/v1/jobs/{job_id}",
        "history": f"/api/v1/jobs/{job_id}/history",
        "page": f"/api/v1/jobs/{job_id}/history?after_version=1&limit=1",
        "as_of_version": f"/api/v1/jobs/{job_id}?as_of_version=2",
        "as_of": f"/api/v1/jobs/{job_id}?as_of={at.replace('+', '%2B')}",
    }
    found = {}
    for name, path in paths.items():
        response = await client.get(path, headers=TOKEN)
        assert response.status_code == 200, (name, response.text)
        found[name] = response.content
    return found


async def _partition_of(engine: Engine, job_id: str) -> str:
    at = ids.job_time(UUID(job_id))
    async with engine.database.connection() as conn:
        rows = await partitions.list_partitions(conn)
    return next(row.name for row in rows if at is not None and (row.lo or at) <= at < row.hi)


async def _table_exists(engine: Engine, name: str) -> bool:
    async with engine.database.connection() as conn:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def test_an_archived_partition_leaves_and_its_jobs_still_answer(
    make_engine: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await _archiving_engine(make_engine, tmp_path)
    async with _client(engine) as client:
        await _past_partitions(engine)
        _dated(monkeypatch, 30)
        ended = await _create(client, "review", {"amount": 12})
        _dated(monkeypatch, 23)
        running = await _create(client, "demo", {"name": "ada"})  # no worker: it waits for one
        monkeypatch.undo()
        current = await _create(client, "review", {"amount": 7})
        for job_id in (ended, current):
            await wait_for(lambda job_id=job_id: _status(client, job_id), within=10)
            await wait_for(lambda job_id=job_id: _finished(client, job_id), within=10)
        old, kept, live = [await _partition_of(engine, job) for job in (ended, running, current)]
        assert len({old, kept, live}) == 3, "three jobs in three partitions"
        before = await _answers(client, ended)
        runs_before = await engine.replay_job(UUID(ended))
        await asyncio.sleep(0.2)  # past the retention

        plans = {plan.name: plan for plan in await engine.instance.archiver.plan()}
        assert plans[old].leaves, plans[old].reason
        assert kept in plans, (kept, plans)
        assert not plans[kept].leaves and running in plans[kept].reason and "still run" in plans[kept].reason
        assert live not in plans, "a partition that still takes new jobs is not in the plan"

        done = {archived.partition: archived for archived in await engine.instance.archiver.archive_due()}
        assert done[old].dropped and done[old].events == 3 and done[old].jobs == 1
        assert kept not in done
        assert not await _table_exists(engine, old)
        assert await _table_exists(engine, kept) and await _table_exists(engine, live)
        async with engine.database.connection() as conn:
            assert await conn.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", UUID(ended)) == 0
            assert await conn.fetchval("SELECT count(*) FROM job_history WHERE job_id = $1", UUID(ended)) == 0
            status = await conn.fetchval("SELECT status FROM event_partitions WHERE name = $1", old)
        assert status == "archived"

        after = await _answers(client, ended)
        assert after == before, "the archive answers byte for byte as the database did"
        history = await client.get(f"/api/v1/jobs/{ended}/history", headers=TOKEN)
        assert history.headers["x-chronik-archived"] == "true"
        live_history = await client.get(f"/api/v1/jobs/{current}/history", headers=TOKEN)
        assert "x-chronik-archived" not in live_history.headers
        assert await engine.replay_job(UUID(ended)) == runs_before
        # Another client is told nothing of an archived job either.
        assert (await client.get(f"/api/v1/jobs/{UUID(int=1)}/history", headers=TOKEN)).status_code == 404

        # The file restores: the job is live again, with the same answers.
        (archive_file,) = await asyncio.to_thread(lambda: list(tmp_path.glob(f"{old}-*.jsonl.gz")))
        with gzip.open(archive_file, "rt", encoding="utf-8") as lines:
            restored = await engine.import_events(lines, name=archive_file.name, restore=True)
        assert (restored.events, restored.jobs) == (3, 1)
        assert await _answers(client, ended) == before
        history = await client.get(f"/api/v1/jobs/{ended}/history", headers=TOKEN)
        assert "x-chronik-archived" not in history.headers


async def _finished(client: httpx.AsyncClient, job_id: str) -> bool:
    return await _status(client, job_id) == "finished"


_CRASH = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from chronik.adapters.postgres import partitions
    from chronik.demo import blueprints
    from chronik.engine import Engine
    from tests.conftest import fast_settings

    async def die(*_args, **_kwargs):
        # kill -9 of this process once the file is written and verified, before the partition drops
        os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        settings = fast_settings(archive_url=sys.argv[2], retention_days=1e-6)
        engine = Engine(sys.argv[1], blueprints=blueprints, settings=settings)
        await engine.start(run_executor=False)
        partitions.drop = die
        await engine.instance.archiver.archive(sys.argv[3])

    asyncio.run(main())
    """
)


async def test_a_crash_between_the_file_and_the_drop_loses_nothing(
    make_engine: Callable[..., Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await _archiving_engine(make_engine, tmp_path)
    async with _client(engine) as client:
        await _past_partitions(engine)
        _dated(monkeypatch, 30)
        ended = await _create(client, "review", {"amount": 12})
        monkeypatch.undo()
        await wait_for(lambda: _finished(client, ended), within=10)
        old = await _partition_of(engine, ended)
        before = await _answers(client, ended)
        await asyncio.sleep(0.2)

        crashed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _CRASH, database_url, tmp_path.as_uri(), old],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
            check=False,
        )
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        # Either the partition or a verified file, never neither: here both, and the job answers.
        assert await _table_exists(engine, old)
        (archive_file,) = await asyncio.to_thread(lambda: list(tmp_path.glob(f"{old}-*.jsonl.gz")))
        report = verify_archive_file(archive_file)
        assert report.first_break is None and not report.problems and report.events == 3
        assert await _answers(client, ended) == before

        # Running it again finishes the work.
        done = await engine.instance.archiver.archive(old)
        assert done.dropped
        assert not await _table_exists(engine, old)
        assert await _answers(client, ended) == before
