"""The engine on a real PostgreSQL: jobs move state to state, and every move is an event."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from chronik import Blueprint, Engine, JobNotCancellable, JobNotFound
from chronik.adapters.postgres.jobs import refold_differences
from chronik.core.state import JobStatus
from tests.conftest import wait_for


def pipeline() -> Blueprint:
    bp = Blueprint("pipeline", api_endpoint="pipeline")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        state_history["count"] = initial_data["n"] + 1
        actions.transition_to("double")

    @bp.handler_for("double")
    async def double(count: int, state_history: dict[str, Any], actions: Any) -> None:
        state_history["count"] = count * 2
        actions.transition_to("route")

    @bp.handler_for("route")
    async def route(count: int, actions: Any) -> None:
        if count > 100:
            actions.transition_to("too_big")
        else:
            actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done(count: int, state_history: dict[str, Any]) -> None:
        state_history["done"] = {"count": count}

    @bp.handler_for("too_big", is_end=True, is_failure=True)
    async def too_big() -> None: ...

    return bp


async def ended(engine: Engine, job_id: Any) -> Any:
    async def check() -> Any:
        state = await engine.get_job(job_id)
        return state if state.is_terminal else None

    return await wait_for(check)


async def types_of(engine: Engine, job_id: Any) -> list[str]:
    return [recorded.type for recorded in await engine.job_history(job_id)]


async def test_job_runs_to_its_end_state(make_engine: Any, pool: asyncpg.Pool) -> None:
    engine = await make_engine(pipeline())
    job = await engine.create_job("pipeline", {"n": 4})
    state = await ended(engine, job.job_id)
    assert state.status == JobStatus.FINISHED
    assert state.current_state == "done"
    assert state.state_history == {"count": 10, "done": {"count": 10}}
    assert await types_of(engine, job.job_id) == [
        "JobCreated", "StateEntered", "StateEntered", "StateEntered", "JobFinished",
    ]  # fmt: skip
    history = await engine.job_history(job.job_id)
    assert [r.version for r in history] == [1, 2, 3, 4, 5]
    assert history[0].meta["instance"] == "test"
    async with pool.acquire() as conn:
        assert await refold_differences(conn, job.job_id) == {}
        assert await conn.fetchval("SELECT count(*) FROM job_steps") == 0


async def test_failure_end_state_fails_the_job(make_engine: Any) -> None:
    engine = await make_engine(pipeline())
    job = await engine.create_job("pipeline", {"n": 60})
    state = await ended(engine, job.job_id)
    assert state.status == JobStatus.FAILED
    assert state.error is not None and state.error.code == "FAILURE_STATE"


async def test_handler_exception_is_recorded_and_fails_the_job(make_engine: Any, pool: asyncpg.Pool) -> None:
    engine = await make_engine(pipeline())
    job = await engine.create_job("pipeline", {"wrong": 1})  # start reads initial_data["n"]
    state = await ended(engine, job.job_id)
    assert state.status == JobStatus.FAILED
    assert state.error is not None
    assert (state.error.type, state.error.message) == ("KeyError", "'n'")
    history = await engine.job_history(job.job_id)
    assert [r.type for r in history] == ["JobCreated", "HandlerFailed", "JobFailed"]
    assert "KeyError" in history[1].event.traceback  # type: ignore[union-attr]
    async with pool.acquire() as conn:
        assert await refold_differences(conn, job.job_id) == {}


async def test_misused_actions_are_handler_errors(make_engine: Any) -> None:
    bp = Blueprint("misuse")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        if initial_data["mode"] == "twice":
            actions.transition_to("end")
            actions.transition_to("end")
        elif initial_data["mode"] == "once":
            actions.transition_to("end")

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    engine = await make_engine(bp)
    twice = await engine.create_job("misuse", {"mode": "twice"})
    none = await engine.create_job("misuse", {"mode": "none"})
    for job_id, fragment in ((twice.job_id, "exactly one action"), (none.job_id, "without an action")):
        state = await ended(engine, job_id)
        assert state.status == JobStatus.FAILED
        assert state.error is not None and fragment in state.error.message
        assert await types_of(engine, job_id) == ["JobCreated", "HandlerFailed", "JobFailed"]


async def test_cancel_stops_a_waiting_job_and_refuses_an_ended_one(
    make_engine: Any, pool: asyncpg.Pool
) -> None:
    gate = asyncio.Event()
    bp = Blueprint("slow")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        await gate.wait()
        actions.transition_to("end")

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    engine = await make_engine(bp)
    job = await engine.create_job("slow")
    await asyncio.sleep(0.3)  # let the handler start and block
    cancelled = await engine.cancel_job(job.job_id, reason="changed my mind", actor="tester")
    assert cancelled.status == JobStatus.CANCELLED
    gate.set()  # the handler now returns; its outcome must be dropped
    await asyncio.sleep(0.3)
    state = await engine.get_job(job.job_id)
    assert state.status == JobStatus.CANCELLED and state.current_state == "start"
    history = await engine.job_history(job.job_id)
    assert [r.type for r in history] == ["JobCreated", "JobCancelled"]
    assert history[1].meta["actor"] == "tester"
    with pytest.raises(JobNotCancellable):
        await engine.cancel_job(job.job_id)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM job_steps") == 0


async def test_unknown_job(make_engine: Any) -> None:
    engine = await make_engine(pipeline())
    with pytest.raises(JobNotFound):
        await engine.get_job(uuid4())
    with pytest.raises(JobNotFound):
        await engine.job_history(uuid4())


async def test_concurrency_is_bounded_per_instance(make_engine: Any) -> None:
    running = 0
    peak = 0
    bp = Blueprint("busy")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1
        actions.transition_to("end")

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    engine = await make_engine(bp, max_concurrent_jobs=3)
    jobs = [await engine.create_job("busy") for _ in range(12)]
    for job in jobs:
        assert (await ended(engine, job.job_id)).status == JobStatus.FINISHED
    assert peak == 3


async def test_poll_covers_lost_notifications(make_engine: Any) -> None:
    engine = await make_engine(pipeline(), poll_interval=0.3)
    assert engine.instance.listener is not None
    await engine.instance.listener.stop()  # no more notifications reach this instance
    job = await engine.create_job("pipeline", {"n": 1})
    assert (await ended(engine, job.job_id)).status == JobStatus.FINISHED


async def test_a_job_created_before_start_runs_after_start(make_engine: Any) -> None:
    creator = await make_engine(pipeline(), start=False)
    await creator.start(run_executor=False)
    job = await creator.create_job("pipeline", {"n": 2})
    await creator.stop()
    runner = await make_engine(pipeline())
    assert (await ended(runner, job.job_id)).status == JobStatus.FINISHED


async def test_a_long_handler_keeps_its_step_and_its_outcome_is_applied_once(make_engine: Any) -> None:
    # Two instances, a one-second step lease and a handler that runs for two and a half:
    # lease renewal keeps the step with the instance running it, so the handler runs once
    # per step and the self-loop below is recorded once, not twice.
    runs: list[int] = []
    bp = Blueprint("slowloop")

    @bp.handler_for("a", is_start=True)
    async def a(state_history: dict[str, Any], actions: Any) -> None:
        runs.append(state_history.get("n", 0))
        if state_history.get("n"):
            actions.transition_to("end")
            return
        await asyncio.sleep(2.5)
        state_history["n"] = 1
        actions.transition_to("a")

    @bp.handler_for("end", is_end=True)
    async def end() -> None: ...

    first = await make_engine(bp, step_lease_seconds=1.0, instance_id="one")
    await make_engine(bp, step_lease_seconds=1.0, instance_id="two")
    job = await first.create_job("slowloop")
    assert (await ended(first, job.job_id)).status == JobStatus.FINISHED
    assert runs == [0, 1]
    assert await types_of(first, job.job_id) == ["JobCreated", "StateEntered", "StateEntered", "JobFinished"]


async def test_conditional_handlers_pick_the_route(make_engine: Any) -> None:
    bp = Blueprint("orders")

    @bp.handler_for("route", is_start=True)
    async def default(actions: Any) -> None:
        actions.transition_to("standard")

    @bp.handler_for("route").when(
        "initial_data.order.total > 100 and initial_data.order.country in ('DE', 'AT')"
    )
    async def big_local(actions: Any) -> None:
        actions.transition_to("priority")

    @bp.handler_for("route").when("initial_data.order.express")
    async def express(actions: Any) -> None:
        actions.transition_to("courier")

    for name in ("standard", "priority", "courier"):
        bp.handler_for(name, is_end=True)(lambda: None)

    engine = await make_engine(bp)
    cases = {
        "priority": {"order": {"total": 500, "country": "DE", "express": True}},
        "courier": {"order": {"total": 5, "express": True}},
        "standard": {"order": {"total": 500, "country": "FR"}},
    }
    for expected, data in cases.items():
        job = await engine.create_job("orders", data)
        state = await ended(engine, job.job_id)
        assert state.current_state == expected, (data, state)


def napping() -> Blueprint:
    bp = Blueprint("nap")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        state_history["went_to_sleep"] = True
        actions.sleep(initial_data["seconds"], then="awake")

    @bp.handler_for("awake", is_end=True)
    async def awake(state_history: dict[str, Any]) -> None:
        state_history["awake"] = {"slept": True}

    return bp


async def test_sleep_is_a_durable_timer(make_engine: Any, pool: asyncpg.Pool) -> None:
    # An instance that stops while the job sleeps loses nothing: another fires the timer on time.
    first = await make_engine(napping(), instance_id="first")
    job = await first.create_job("nap", {"seconds": 1.5})

    async def sleeping() -> bool:
        return (await first.get_job(job.job_id)).status == "waiting_for_timer"

    await wait_for(sleeping)
    waiting = await first.get_job(job.job_id)
    assert waiting.timer is not None and waiting.timer.then == "awake"
    await first.stop()
    second = await make_engine(napping(), instance_id="second", poll_interval=30.0)
    state = await ended(second, job.job_id)
    assert state.status == JobStatus.FINISHED and state.state_history["awake"] == {"slept": True}
    history = await second.job_history(job.job_id)
    assert [r.type for r in history] == [
        "JobCreated",
        "TimerStarted",
        "TimerFired",
        "StateEntered",
        "JobFinished",
    ]
    slept = (history[2].event.at - history[1].event.at).total_seconds()
    assert 1.4 <= slept < 5, slept  # on time, though the safety-net poll is 30 s
    assert history[2].meta["instance"] == "second"
    async with pool.acquire() as conn:
        assert await refold_differences(conn, job.job_id) == {}


async def test_cancel_stops_a_sleeping_job(make_engine: Any, pool: asyncpg.Pool) -> None:
    engine = await make_engine(napping())
    job = await engine.create_job("nap", {"seconds": 60})

    async def sleeping() -> bool:
        return (await engine.get_job(job.job_id)).status == "waiting_for_timer"

    await wait_for(sleeping)
    cancelled = await engine.cancel_job(job.job_id)
    assert cancelled.status == JobStatus.CANCELLED and cancelled.timer is None
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM job_steps") == 0


async def test_an_approval_nobody_gives_times_out(make_engine: Any) -> None:
    bp = Blueprint("ask")

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        transitions = {"approved": "done"}
        if initial_data.get("fallback"):
            transitions["timeout"] = "escalated"
        actions.await_human_approval("ok?", transitions=transitions, timeout_seconds=1)

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("escalated", is_end=True)
    async def escalated() -> None: ...

    engine = await make_engine(bp, poll_interval=30.0)
    with_fallback = await engine.create_job("ask", {"fallback": True})
    without = await engine.create_job("ask", {})
    moved = await ended(engine, with_fallback.job_id)
    assert (moved.status, moved.current_state) == (JobStatus.FINISHED, "escalated")
    failed = await ended(engine, without.job_id)
    assert failed.status == JobStatus.FAILED and failed.error is not None
    assert failed.error.code == "APPROVAL_TIMEOUT"
    assert await types_of(engine, without.job_id) == [
        "JobCreated",
        "ApprovalRequested",
        "ApprovalTimedOut",
        "JobFailed",
    ]
    # A decision in time wins over the deadline.
    decided = await engine.create_job("ask", {})

    async def asking() -> bool:
        return (await engine.get_job(decided.job_id)).status == "waiting_for_human"

    await wait_for(asking)
    await engine.approve_job(decided.job_id, "approved", actor="ops")
    assert (await ended(engine, decided.job_id)).current_state == "done"
    await asyncio.sleep(1.5)
    assert "ApprovalTimedOut" not in await types_of(engine, decided.job_id)
