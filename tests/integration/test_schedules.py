"""Schedules on two instances: every fire starts exactly one job."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chronik import Blueprint
from chronik.core.errors import ConfigError


def ticks() -> Blueprint:
    bp = Blueprint("ticks")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


async def test_two_instances_start_one_job_per_fire(make_engine: Any, tmp_path: Path) -> None:
    schedules = tmp_path / "schedules.toml"
    schedules.write_text(
        '[tick]\nblueprint = "ticks"\ninterval_seconds = 1\ninput_data = {from = "schedule"}\n'
    )
    first = await make_engine(ticks(), schedules_config_path=str(schedules), instance_id="one")
    second = await make_engine(ticks(), schedules_config_path=str(schedules), instance_id="two")
    started = datetime.now(UTC)
    await asyncio.sleep(10)
    await first.stop()
    async with second.database.pool.acquire() as conn:
        assert second.instance.scheduler is not None
        await second.instance.scheduler.stop()  # no fire after the reads below
        runs = await conn.fetch("SELECT fire_time, job_id, instance FROM schedule_runs ORDER BY fire_time")
        created = await conn.fetch(
            "SELECT job_id, meta FROM events WHERE type = 'JobCreated' ORDER BY position"
        )
    fires = [row["fire_time"] for row in runs]
    assert 8 <= len(fires) <= 11, fires
    assert len(set(fires)) == len(fires)
    assert all(fire.microsecond == 0 for fire in fires)  # whole seconds, as every instance computes them
    assert all((b - a).total_seconds() >= 1 for a, b in itertools.pairwise(fires))
    assert fires[0] >= started.replace(microsecond=0)
    # Exactly one job per fire, and no other.
    assert sorted(str(row["job_id"]) for row in runs) == sorted(str(row["job_id"]) for row in created)
    assert {row["instance"] for row in runs} <= {"one", "two"}


async def test_a_schedule_of_an_unknown_blueprint_stops_the_start(make_engine: Any, tmp_path: Path) -> None:
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('[nightly]\nblueprint = "nope"\ndaily_at = "02:00"\n')
    engine = await make_engine(ticks(), schedules_config_path=str(schedules), start=False)
    with pytest.raises(ConfigError, match=r"\[nightly\]: field 'blueprint' names 'nope'"):
        await engine.start()


def test_schedules_list_prints_the_next_fire_times(tmp_path: Path) -> None:
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('[nightly]\nblueprint = "demo"\ndaily_at = "02:00"\n')
    done = subprocess.run(
        [sys.executable, "-m", "chronik", "schedules", "list", "--file", str(schedules),
         "--app", "chronik.demo:blueprints"],
        capture_output=True, text=True, env={"TZ": "Europe/Berlin", "PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:3] == ["SCHEDULE", "BLUEPRINT", "WHEN"] and "Europe/Berlin" in header
    assert row.split()[:5] == ["nightly", "demo", "daily", "at", "02:00"]
    assert row.split()[5].endswith("T02:00:00+01:00")
    wrong = subprocess.run(
        [sys.executable, "-m", "chronik", "schedules", "list", "--file", str(schedules),
         "--app", "tests.e2e.replay_app:v1"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert wrong.returncode == 2 and "[nightly]: field 'blueprint' names 'demo'" in wrong.stderr
