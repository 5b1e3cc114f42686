"""Asynchronous projections: they follow the log exactly, rebuild identically, and never skip
an event of a transaction that commits late."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg

from chronik import Blueprint
from chronik._runtime.projector import ProjectionRunner
from chronik.adapters.postgres.checkpoints import list_with_lag as status
from chronik.adapters.postgres.database import APPLICATION_NAME
from chronik.core.decide import decide_create
from chronik.core.events import ErrorInfo, decode_event
from chronik.core.evolve import fold
from chronik.core.records import LogPosition
from chronik.core.wire import RegisterBody, ReportedResult, TaskRef
from chronik.engine import Engine
from chronik.projections.rebuild import build_shadow, differences, rebuild
from chronik.projections.setup import PROJECTORS
from tests.conftest import wait_for
from tests.e2e.conftest import work_blueprint


def fan_and_ask() -> list[Blueprint]:
    fan = Blueprint("fan")

    @fan.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        tasks = [{"task_type": "work", "params": {"i": i}, "max_retries": 0} for i in range(3)]
        actions.dispatch_parallel(tasks=tasks, aggregate_into="join")

    @fan.aggregator_for("join")
    async def join(actions: Any) -> None:
        actions.transition_to("done")

    @fan.handler_for("done", is_end=True)
    async def done() -> None: ...

    ask = Blueprint("ask")

    @ask.handler_for("start", is_start=True)
    async def question(initial_data: dict[str, Any], actions: Any) -> None:
        actions.await_human_approval(
            "ok?", transitions={"yes": "done", "timeout": "done"}, timeout_seconds=initial_data["wait"]
        )

    @ask.handler_for("done", is_end=True)
    async def answered() -> None: ...

    return [fan, ask]


async def run_mixed_jobs(engine: Engine) -> list[Any]:
    """Jobs that finish, retry, quarantine, fail, get cancelled, fan out, and wait for people."""
    service = engine.workers
    await service.register(RegisterBody(worker_id="w1", task_types=["work"], capacity=10))
    plans = [
        ("ok", {"n": 1}),
        ("retry", {"n": 2}),
        ("quarantine", {"n": 3}),
        ("invalid", {"n": 4}),
        ("custom", {"n": 5}),
    ]
    jobs = {name: await engine.create_job("work", data) for name, data in plans}
    queued_cancel = await engine.create_job("work", {"n": 6})
    fan = await engine.create_job("fan", {})
    decided = await engine.create_job("ask", {"wait": 60})
    timed_out = await engine.create_job("ask", {"wait": 0.3})

    answered = 0
    transient = ErrorInfo(code="TRANSIENT_ERROR", message="flaky")

    async def work_until(count: int) -> None:
        nonlocal answered
        while answered < count:
            task = await service.next_task("w1", ["work"], 2.0)
            assert task is not None, f"no task after {answered} answers"
            job_id, attempt = task.job_id, task.metadata.attempt
            if job_id == str(queued_cancel.job_id):
                await engine.cancel_job(queued_cancel.job_id, reason="not needed", actor="ops")
                answered += 1
                continue
            name = next((n for n, j in jobs.items() if str(j.job_id) == job_id), "fan")
            status, error, data = "success", None, {"answer": 1}
            if (name == "retry" and attempt == 1) or name == "quarantine":
                status, error = "failure", transient
            elif name == "invalid" or (name == "fan" and task.params["i"] == 2):
                status, error = "failure", ErrorInfo(code="INVALID_INPUT_ERROR", message="bad input")
            elif name == "custom":
                status = "needs_review"
            result = ReportedResult(
                ref=TaskRef.parse(task.task_id), worker_id="w1", status=status, data=data, error=error
            )
            await service.submit_result(result)
            answered += 1

    # ok 1, retry 2, quarantine 4 (3 retries), invalid 1, custom 1, the cancelled one 1, fan 3.
    await work_until(13)
    await engine.approve_job(decided.job_id, "yes", comment="fine", actor="ada")

    async def settled() -> bool:
        states = [await engine.get_job(j.job_id) for j in (*jobs.values(), fan, decided, timed_out)]
        return all(s.is_terminal or s.status == "quarantined" for s in states)

    await wait_for(settled, within=20)
    return [*jobs.values(), queued_cancel, fan, decided, timed_out]


async def caught_up(engine: Engine) -> None:
    async def done() -> bool:
        async with engine.database.pool.acquire() as conn:
            return all(s.lag_events == 0 for s in await status(conn))

    await wait_for(done, within=20)


async def test_rebuilt_projections_equal_the_live_ones(make_engine: Any) -> None:
    engine = await make_engine(
        work_blueprint(), *fan_and_ask(), retry_base_seconds=0.0, projection_interval=0.1
    )
    jobs = await run_mixed_jobs(engine)
    await caught_up(engine)
    async with engine.database.pool.acquire() as conn:
        events = await conn.fetchval("SELECT count(*) FROM events")
        assert await conn.fetchval("SELECT count(*) FROM job_history") == events
        kinds = dict(await conn.fetch("SELECT outcome, count(*) FROM task_attempts GROUP BY outcome"))
        assert kinds == {"completed": 5, "failed": 7, "withdrawn": 1}
        decided = await conn.fetchrow(
            "SELECT actor, outcome, summary FROM job_history WHERE type = 'ApprovalGiven'"
        )
        assert tuple(decided) == ("ada", "yes", "decided 'yes': fine")
        for projector in PROJECTORS:
            await build_shadow(conn, projector)
            assert await differences(conn, projector) == (0, 0), projector.name
            before = await conn.fetch(f"SELECT * FROM {projector.name} ORDER BY 1, 2")
            await rebuild(conn, projector)
            assert await conn.fetch(f"SELECT * FROM {projector.name} ORDER BY 1, 2") == before
            assert await conn.fetchval("SELECT to_regclass($1)", f"{projector.name}__rebuild") is None
        # The analytics views read the swapped-in tables.
        assert await conn.fetchval("SELECT count(*) FROM chronik_analytics.task_attempts") == 13
    # The runner goes on from the rebuilt checkpoint: a new job is projected once.
    more = await engine.create_job("ask", {"wait": 60})
    await wait_for(lambda: _status_is(engine, more.job_id, "waiting_for_human"))
    await engine.cancel_job(more.job_id)
    await caught_up(engine)
    async with engine.database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM job_history") == events + 3
    assert len(jobs) == 9
    # As of every version, a job is the fold of that prefix of its log (read here straight from SQL).
    async with engine.database.pool.acquire() as conn:
        for job in jobs:
            rows = await conn.fetch(
                "SELECT type, data::text AS data FROM events WHERE job_id = $1 ORDER BY version", job.job_id
            )
            prefix = []
            for version, row in enumerate(rows, start=1):
                event = decode_event(row["type"], row["data"])
                assert event is not None
                prefix.append(event)
                assert await engine.job_as_of(job.job_id, version=version) == fold(prefix)


async def test_the_runner_keeps_the_state_of_running_jobs_only(make_engine: Any) -> None:
    # The soak (docs/reliability.md, scenario 8) found each instance growing by 30 MB per
    # 10 minutes: the runner kept every ended job's state until 20,000 of them had piled up.
    engine = await make_engine(
        work_blueprint(), *fan_and_ask(), retry_base_seconds=0.0, projection_interval=0.1
    )
    jobs = await run_mixed_jobs(engine)
    waiting = await engine.create_job("ask", {"wait": 60})
    await wait_for(lambda: _status_is(engine, waiting.job_id, "waiting_for_human"))
    await caught_up(engine)
    states = {job.job_id: await engine.get_job(job.job_id) for job in [*jobs, waiting]}
    running = {job_id for job_id, state in states.items() if not state.is_terminal}
    assert waiting.job_id in running and len(running) < len(states)  # the quarantined one runs on
    held = engine.instance.projections.held
    assert held == {projector.name: running for projector in PROJECTORS}
    await engine.cancel_job(waiting.job_id)
    await caught_up(engine)
    assert all(waiting.job_id not in jobs_held for jobs_held in engine.instance.projections.held.values())


async def test_a_runner_forgets_what_another_runner_applied_in_between(make_engine: Any) -> None:
    # Two instances share each projection's checkpoint, a page to whichever locks it first. The
    # soak found the other instance's cache keeping the jobs that ended there, for ever.
    engine = await make_engine(*fan_and_ask(), start=False)
    await engine.start(run_executor=False)
    first, second = (ProjectionRunner(engine.database, PROJECTORS, interval=3600) for _ in range(2))
    jobs = [await engine.create_job("ask", {"wait": 60}) for _ in range(3)]
    await first.catch_up()
    assert first.held == {p.name: {job.job_id for job in jobs} for p in PROJECTORS}
    for job in jobs:
        await engine.cancel_job(job.job_id)
    await second.catch_up()
    assert second.held == {p.name: frozenset() for p in PROJECTORS}
    later = await engine.create_job("ask", {"wait": 60})
    await first.catch_up()
    assert first.held == {p.name: {later.job_id} for p in PROJECTORS}
    async with engine.database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM job_history") == await conn.fetchval(
            "SELECT count(*) FROM events"
        )


async def test_a_rebuild_while_jobs_run_swaps_in_a_complete_table(make_engine: Any) -> None:
    engine = await make_engine(*fan_and_ask(), projection_interval=0.05)
    stop = asyncio.Event()

    async def keep_writing() -> int:
        written = 0
        while not stop.is_set():
            job = await engine.create_job("ask", {"wait": 60})
            await engine.cancel_job(job.job_id)
            written += 1
        return written

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.3)
    async with engine.database.pool.acquire() as conn:
        for projector in PROJECTORS:
            await rebuild(conn, projector)
    await asyncio.sleep(0.2)
    stop.set()
    assert await writer > 0
    await caught_up(engine)
    async with engine.database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM job_history") == await conn.fetchval(
            "SELECT count(*) FROM events"
        )
        missing = (
            "SELECT count(*) FROM (SELECT position FROM events EXCEPT SELECT position FROM job_history) m"
        )
        assert await conn.fetchval(missing) == 0


async def test_an_event_of_a_transaction_that_commits_late_is_not_skipped(
    make_engine: Any, database_url: str
) -> None:
    # No executor: the only writers are the two transactions below.
    engine = await make_engine(*fan_and_ask(), start=False)
    await engine.start(run_executor=False)
    runner = ProjectionRunner(engine.database, PROJECTORS, interval=3600)
    (ask,) = [bp for bp in fan_and_ask() if bp.name == "ask"]
    # Two sessions of chronik (its application_name): transactions that may append to the log.
    early = await asyncpg.connect(database_url, server_settings={"application_name": APPLICATION_NAME})
    late = await asyncpg.connect(database_url, server_settings={"application_name": APPLICATION_NAME})
    try:
        # "early" takes its transaction id first but commits last; "late" commits in between.
        slow = early.transaction()
        await slow.start()
        await engine.store.commit(None, decide_create(uuid4(), ask, {"wait": 60}, _now()), conn=early)
        quick = await engine.store.commit(None, decide_create(uuid4(), ask, {"wait": 60}, _now()), conn=late)
        await runner.catch_up()
        async with engine.database.pool.acquire() as conn:
            # Nothing past the open transaction is applied: its event would be passed over.
            assert not await conn.fetchval("SELECT count(*) FROM job_history WHERE job_id = $1", quick.job_id)
            before = (await status(conn))[0]
            assert before.lag_events == 1
        await slow.commit()
        await runner.catch_up()
        async with engine.database.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM job_history") == 2
            checkpoint = await conn.fetchrow("SELECT tx::text, position FROM projection_checkpoints LIMIT 1")
            assert LogPosition(int(checkpoint[0]), checkpoint[1]) > LogPosition()
    finally:
        await early.close()
        await late.close()


async def _status_is(engine: Engine, job_id: Any, status: str) -> bool:
    return (await engine.get_job(job_id)).status == status


def _now() -> datetime:
    return datetime.now(UTC)
