"""Busy workers under the default settings: never slowed by the rate limits, few round trips."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest

from chronik import Blueprint
from chronik.settings import Settings
from tests.conftest import wait_for
from tests.e2e.test_workers import create, job

pytestmark = pytest.mark.e2e

DEFAULTS = Settings()
APP = "tests.e2e.throughput_app:worker"


def default_settings() -> dict[str, Any]:
    """The orchestrator's own defaults for everything a busy worker meets (the tests' are faster)."""
    names = (
        "worker_rate_heartbeats", "worker_rate_polls", "worker_rate_other", "poll_interval",
        "task_lease_seconds", "watcher_interval", "retry_base_seconds", "max_poll_seconds",
    )  # fmt: skip
    return {name: getattr(DEFAULTS, name) for name in names}


def quick_blueprint() -> Blueprint:
    bp = Blueprint("quick")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task("quick", initial_data, transitions={"success": "done"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def fan_out_blueprint() -> Blueprint:
    bp = Blueprint("wide")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        branches = [{"task_type": "quick", "params": {"i": i}} for i in range(initial_data["n"])]
        actions.dispatch_parallel(branches, aggregate_into="collect")

    @bp.aggregator_for("collect")
    async def collect(
        aggregation_results: dict[str, Any], state_history: dict[str, Any], actions: Any
    ) -> None:
        state_history["done"] = sum(1 for r in aggregation_results.values() if r["status"] == "success")
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


async def finished(engine: Any, job_ids: list[str], *, within: float) -> None:
    """Wait until every job finished, asking the database (an HTTP client per look would cost the
    orchestrator, which serves from this same event loop, more than the work itself)."""
    ids = [UUID(job_id) for job_id in job_ids]

    async def all_done() -> bool:
        async with engine.database.pool.acquire() as conn:
            done = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE job_id = ANY($1::uuid[]) AND status = 'finished'", ids
            )
        return bool(done == len(ids))

    await wait_for(all_done, within=within, interval=0.05)


async def test_one_default_worker_runs_200_quick_tasks_in_seconds(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(quick_blueprint(), **default_settings())
    engine = orchestrator.engine
    spawn_worker(orchestrator.url, app=APP, WORKER_ID="busy")
    warm = await create(orchestrator.url, "quick", {"i": -1})
    await finished(engine, [warm], within=30)  # the worker is up and registered
    began = time.monotonic()
    # Created in-process and at once: 200 HTTP calls from this event loop would slow the
    # orchestrator it also runs, and the figure is the worker's, not the client's.
    jobs = await asyncio.gather(*(engine.create_job("quick", {"i": i}) for i in range(200)))
    await finished(engine, [str(j.job_id) for j in jobs], within=60)
    took = time.monotonic() - began
    print(f"200 quick tasks through one default worker: {took:.2f} s ({200 / took:.0f} tasks/s)")
    assert took < 30  # under the old budgets (every poll counted, 60 a minute) this took over 200 s
    # Busy is not wasteful: nothing was counted against the worker's budgets but empty polls.
    async with engine.database.pool.acquire() as conn:
        keys = [row["key"] for row in await conn.fetch("SELECT key FROM rate_limit_counters")]
    assert set(keys) <= {"worker:busy:polls"}, keys


async def test_a_1000_branch_fan_out_with_two_default_workers(
    start_orchestrator: Any, spawn_worker: Any
) -> None:
    orchestrator = await start_orchestrator(fan_out_blueprint(), quick_blueprint(), **default_settings())
    for name in ("wide-1", "wide-2"):
        spawn_worker(orchestrator.url, app=APP, WORKER_ID=name)
    warm = [await create(orchestrator.url, "quick", {"i": i}) for i in range(4)]
    await finished(orchestrator.engine, warm, within=30)
    began = time.monotonic()
    job_id = await create(orchestrator.url, "wide", {"n": 1000})
    await finished(orchestrator.engine, [job_id], within=90)
    took = time.monotonic() - began
    print(f"a 1,000-branch fan-out through two default workers: {took:.2f} s")
    assert (await job(orchestrator.url, job_id))["state_history"]["done"] == 1000
    assert took < 20  # the goal is 5 s; the bound leaves room for a busy test machine
