"""The audit commands against a real database: replay with today's code, export and import,
projection status and rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chronik.core.state import JobStatus
from tests.conftest import wait_for
from tests.e2e.replay_app import v1

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def chronik(*args: str, database_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", "chronik", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


async def run_orders(make_engine: Any) -> tuple[Any, list[Any]]:
    engine = await make_engine(*v1, projection_interval=0.1)
    small = await engine.create_job("orders", {"total": 50})
    big = await engine.create_job("orders", {"total": 500})

    async def waiting() -> bool:
        return (await engine.get_job(big.job_id)).status == JobStatus.WAITING_FOR_HUMAN

    await wait_for(waiting)
    await engine.approve_job(big.job_id, "approved", actor="ada")
    for job in (small, big):
        await wait_for(lambda job=job: _ended(engine, job.job_id))
    return engine, [small, big]


async def _ended(engine: Any, job_id: Any) -> bool:
    return (await engine.get_job(job_id)).is_terminal


async def test_replay_with_todays_code_reports_where_it_would_decide_otherwise(
    make_engine: Any, database_url: str
) -> None:
    _engine, (small, big) = await run_orders(make_engine)
    same = chronik("jobs", "replay", str(small.job_id), "--blueprint", "tests.e2e.replay_app:v1",
                   database_url=database_url)  # fmt: skip
    assert "decides as history did at all 2 handler run(s)" in same.stdout
    assert chronik("jobs", "replay", str(big.job_id), "--blueprint", "tests.e2e.replay_app:v2",
                   database_url=database_url).returncode == 0  # fmt: skip
    changed = chronik("jobs", "replay", str(small.job_id), "--blueprint", "tests.e2e.replay_app:v2",
                      database_url=database_url, check=False)  # fmt: skip
    assert changed.returncode == 1, changed.stderr
    assert "1 of 2 handler run(s) would be decided differently today" in changed.stdout
    assert "at version 2, in state 'start'" in changed.stdout
    assert "history:  StateEntered" in changed.stdout and "today:    ApprovalRequested" in changed.stdout
    report = json.loads(
        chronik(
            "jobs",
            "replay",
            str(small.job_id),
            "--blueprint",
            "tests.e2e.replay_app:v2",
            "--json",
            database_url=database_url,
            check=False,
        ).stdout
    )
    assert report["handler_runs"] == 2
    (divergence,) = report["divergences"]
    assert [e["type"] for e in divergence["recorded"]] == ["StateEntered"]
    assert [e["type"] for e in divergence["decided"]] == ["ApprovalRequested"]
    wrong = chronik("jobs", "replay", str(small.job_id), "--blueprint", "chronik.demo:blueprints",
                    database_url=database_url, check=False)  # fmt: skip
    assert wrong.returncode == 2 and "has no blueprint named 'orders'" in wrong.stderr


async def test_export_then_import_into_an_empty_database_gives_the_same_states(
    make_engine: Any, database_url: str, tmp_path: Path
) -> None:
    engine, _jobs = await run_orders(make_engine)
    waiting = await engine.create_job("orders", {"total": 1000})  # left waiting for a person

    async def asks() -> bool:
        return (await engine.get_job(waiting.job_id)).status == JobStatus.WAITING_FOR_HUMAN

    await wait_for(asks)
    await engine.stop()
    export = tmp_path / "events.jsonl"
    chronik("events", "export", "-o", str(export), database_url=database_url)
    lines = export.read_text().splitlines()
    assert [json.loads(line)["position"] for line in lines] == sorted(
        json.loads(x)["position"] for x in lines
    )
    since = chronik(
        "events", "export", "--since", str(json.loads(lines[2])["position"]), database_url=database_url
    )
    assert since.stdout.splitlines() == lines[3:]

    target = database_url.replace(_dbname(database_url), "chronik_import_target")
    admin = await asyncpg.connect(database_url)
    await admin.execute("DROP DATABASE IF EXISTS chronik_import_target")
    await admin.execute("CREATE DATABASE chronik_import_target")
    try:
        loaded = chronik("events", "import", str(export), database_url=target)
        assert f"imported {len(lines)} event(s) of 3 job(s)" in loaded.stdout
        again = chronik("events", "import", str(export), database_url=target, check=False)
        assert again.returncode == 2 and "needs an empty database" in again.stderr
        source, copy = await asyncpg.connect(database_url), await asyncpg.connect(target)
        try:
            for query in (
                "SELECT job_id, status, current_state, version, state::text FROM jobs ORDER BY job_id",
                "SELECT position, job_id, version, type, data::text, meta::text, recorded_at FROM events "
                "ORDER BY position",
                "SELECT job_id, run_at IS NOT NULL FROM job_steps ORDER BY job_id",
            ):
                assert await copy.fetch(query) == await source.fetch(query), query
            chronik(
                "projections", "rebuild", "job_history", database_url=database_url
            )  # all of the source too
            history = "SELECT position, actor, type, state_after, summary FROM job_history ORDER BY position"
            assert await copy.fetch(history) == await source.fetch(history)
            # The imported log goes on: new events continue after the last imported position.
            status = chronik("projections", "status", database_url=target).stdout
            assert "job_history" in status and "task_attempts" in status
        finally:
            await source.close()
            await copy.close()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS chronik_import_target WITH (FORCE)")
        await admin.close()


async def test_a_malformed_import_names_the_line_and_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    good = {
        "position": 1, "job_id": "3f0b8f44-5b8e-4a8e-9d5e-2c1b1d3e4f50", "version": 1, "type": "JobCreated",
        "data": {"at": "2026-01-01T00:00:00Z", "job_id": "3f0b8f44-5b8e-4a8e-9d5e-2c1b1d3e4f50",
                 "blueprint": "orders", "start_state": "start"},
        "meta": {}, "recorded_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    skipped = {**good, "position": 2, "version": 3, "type": "StateEntered",
               "data": {"at": "2026-01-01T00:00:01Z", "state": "ship", "from_state": "start"}}  # fmt: skip
    bad.write_text(json.dumps(good) + "\n" + json.dumps(skipped) + "\n")
    failed = chronik("events", "import", str(bad), database_url=database_url, check=False)
    assert failed.returncode == 2
    assert "line 2: job 3f0b8f44-5b8e-4a8e-9d5e-2c1b1d3e4f50 version 3 where 2 was due" in failed.stderr
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
    finally:
        await conn.close()


async def test_projections_status_and_rebuild_from_the_command_line(
    make_engine: Any, database_url: str
) -> None:
    engine, _jobs = await run_orders(make_engine)
    await engine.stop()
    rebuilt = chronik("projections", "rebuild", database_url=database_url).stdout
    assert "job_history: rebuilt from the log up to position" in rebuilt
    assert "task_attempts: rebuilt" in rebuilt
    status = chronik("projections", "status", database_url=database_url).stdout.splitlines()
    assert status[0].split()[:3] == ["PROJECTION", "VERSION", "POSITION"]
    rows = {line.split()[0]: line.split() for line in status[1:]}
    assert rows["job_history"][3] == "0"  # no lag
    unknown = chronik("projections", "rebuild", "nope", database_url=database_url, check=False)
    assert unknown.returncode == 2 and "no projection is named 'nope'" in unknown.stderr


def _dbname(url: str) -> str:
    return url.split("?")[0].rsplit("/", 1)[1]


def test_logs_are_json_lines_unless_asked_for_text(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "INFO"}
    env.pop("LOG_FORMAT", None)
    done = subprocess.run(
        [sys.executable, "-m", "chronik", "db", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    started = next(line for line in lines if line["event"] == "engine_started")
    assert started["level"] == "info" and "instance" in started and "timestamp" in started
    text = subprocess.run(
        [sys.executable, "-m", "chronik", "db", "migrate"], env={**env, "LOG_FORMAT": "text"}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "engine_started" in text.stderr and not text.stderr.lstrip().startswith("{")
    wrong = subprocess.run(
        [sys.executable, "-m", "chronik", "db", "migrate"], env={**env, "LOG_FORMAT": "xml"}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2 and "LOG_FORMAT='xml' must be one of json, text" in wrong.stderr
