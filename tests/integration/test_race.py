"""Two engines on one database race for the same jobs: no step is applied twice, none is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg

from chronik import Blueprint
from chronik.adapters.postgres.jobs import refold_differences
from chronik.core.state import JobStatus
from tests.conftest import wait_for

JOBS = 200


def racing_blueprint(calls: Counter[tuple[str, str]], instance: str, per_instance: Counter[str]) -> Blueprint:
    bp = Blueprint("race")

    def record(job_id: Any, state: str) -> None:
        calls[(str(job_id), state)] += 1
        per_instance[instance] += 1

    @bp.handler_for("a", is_start=True)
    async def a(job_id: Any, actions: Any) -> None:
        record(job_id, "a")
        await asyncio.sleep(0)  # give the other engine every chance to interleave
        actions.transition_to("b")

    @bp.handler_for("b")
    async def b(job_id: Any, actions: Any) -> None:
        record(job_id, "b")
        actions.transition_to("c")

    @bp.handler_for("c")
    async def c(job_id: Any, actions: Any) -> None:
        record(job_id, "c")
        actions.transition_to("end")

    @bp.handler_for("end", is_end=True)
    async def end(job_id: Any) -> None:
        record(job_id, "end")

    return bp


async def test_two_engines_apply_each_step_once(make_engine: Any, pool: asyncpg.Pool) -> None:
    calls: Counter[tuple[str, str]] = Counter()
    per_instance: Counter[str] = Counter()
    creator = await make_engine(racing_blueprint(calls, "creator", per_instance), start=False)
    # Create every job before either engine runs, so both find all 200 due at once.
    await creator.start(run_executor=False)
    job_ids = [(await creator.create_job("race", {"i": i})).job_id for i in range(JOBS)]
    await creator.stop()
    await asyncio.gather(
        make_engine(racing_blueprint(calls, "one", per_instance), instance_id="one"),
        make_engine(racing_blueprint(calls, "two", per_instance), instance_id="two"),
    )

    async def all_ended() -> bool:
        async with pool.acquire() as conn:
            live = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'")
        return live == 0

    await wait_for(all_ended, within=60)

    # Every handler ran exactly once per step, and both engines took part.
    assert len(calls) == JOBS * 4
    assert set(calls.values()) == {1}
    assert per_instance["one"] > 0 and per_instance["two"] > 0
    assert sum(per_instance.values()) == JOBS * 4
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT job_id, array_agg(version ORDER BY position) AS versions FROM events GROUP BY job_id"
        )
        assert len(rows) == JOBS
        for row in rows:
            assert row["versions"] == [1, 2, 3, 4, 5], row
        statuses = await conn.fetch("SELECT status, count(*) FROM jobs GROUP BY status")
        assert {r["status"]: r["count"] for r in statuses} == {JobStatus.FINISHED: JOBS}
        for job_id in job_ids:
            assert await refold_differences(conn, job_id) == {}
        assert await conn.fetchval("SELECT count(*) FROM job_steps") == 0
