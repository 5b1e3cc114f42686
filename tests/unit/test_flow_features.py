"""Fan-out/fan-in, child jobs and deadlines in the pure core: actions, deciders, the fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from chronik.core.actions import Actions, Branch, DispatchParallel, RunBlueprint
from chronik.core.blueprint import Blueprint
from chronik.core.deadlines import decide_due, stamp_state_deadlines, wakes_at
from chronik.core.decide import (
    HandlerOutcome,
    decide_cancel,
    decide_child_ended,
    decide_create,
    decide_step,
)
from chronik.core.effects import abandoned_child, step_change, task_changes
from chronik.core.errors import ActionError, BlueprintError
from chronik.core.events import (
    BranchesJoined,
    BranchFailed,
    ChildEnded,
    ChildStarted,
    ErrorInfo,
    JobFailed,
    JobFinished,
    StateEntered,
    TaskCompleted,
    TaskFailed,
    TaskRetryScheduled,
    TimedOut,
)
from chronik.core.evolve import fold
from chronik.core.graph import to_mermaid
from chronik.core.ids import new_job_id
from chronik.core.retry import RetryPolicy
from chronik.core.state import JobState, JobStatus
from chronik.core.tasks import TaskResult, decide_task_result

NOW = datetime(2026, 5, 5, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=1.0, max_seconds=10.0)


def flow() -> Blueprint:
    bp = Blueprint("flow", timeout_seconds=3600)

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.dispatch_parallel(tasks=[{"task_type": "t"}], aggregate_into="join")

    @bp.aggregator_for("join", timeout_seconds=30, on_timeout="late")
    async def join(actions: Any) -> None:
        actions.run_blueprint("child", transitions={"success": "done", "failure": "late"})

    @bp.handler_for("late", is_end=True, is_failure=True)
    async def late() -> None: ...

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def created(bp: Blueprint) -> JobState:
    state = fold(decide_create(uuid4(), bp, {}, NOW))
    assert state is not None
    return state


def fanned_out(branches: int, *, max_retries: int = 3) -> tuple[JobState, list[UUID]]:
    bp = flow()
    base = created(bp)
    ids = [uuid4() for _ in range(branches)]
    pool = iter(ids)
    action = DispatchParallel(
        branches=tuple(
            Branch(task_type="t", params={"i": i}, max_retries=max_retries) for i in range(branches)
        ),
        aggregate_into="join",
    )
    outcome = HandlerOutcome(state="start", action=action)
    state = fold(decide_step(base, bp, outcome, NOW, new_id=lambda: next(pool)), base)
    assert state is not None and state.fan_out is not None
    return state, ids


def result(task_id: UUID, status: str = "success", *, attempt: int = 1, **extra: Any) -> TaskResult:
    return TaskResult(task_id=task_id, attempt=attempt, worker_id="w", status=status, **extra)


def settle(state: JobState, task_result: TaskResult) -> tuple[JobState, tuple[Any, ...]]:
    events = decide_task_result(state, task_result, NOW, policy=POLICY, rand=0.5)
    after = fold(events, state)
    assert after is not None
    return after, events


# -- actions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([], "non-empty list"),
        ("t", "non-empty list"),
        ([{"params": {}}], "tasks[0] needs a task type"),
        ([{"task_type": "t", "colour": 1}], "unknown keys ['colour']"),
        ([{"task_type": "t", "max_retries": -1}], "max_retries must be an int"),
        ([{"task_type": "t"}, {"task_type": "t", "timeout_seconds": 0}], "tasks[1]: timeout_seconds"),
    ],
)
def test_dispatch_parallel_refuses_malformed_tasks(tasks: Any, message: str) -> None:
    with pytest.raises(ActionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Actions("s").dispatch_parallel(tasks, aggregate_into="join")


def test_run_blueprint_needs_known_outcomes() -> None:
    with pytest.raises(ActionError, match="not \\['finished'\\]"):
        Actions("s").run_blueprint("child", transitions={"finished": "x"})
    actions = Actions("s")
    actions.run_blueprint("child", {"a": 1}, transitions={"success": "x"})
    assert actions.taken == RunBlueprint(
        blueprint="child", initial_data={"a": 1}, transitions={"success": "x"}
    )


# -- fan-out and fan-in ----------------------------------------------------------


def test_the_last_branch_joins_with_every_outcome() -> None:
    state, (first, second) = fanned_out(2)
    assert state.status == JobStatus.WAITING_FOR_WORKER and state.fan_out is not None
    assert state.fan_out.pending == 2
    state, events = settle(state, result(first, data={"a": 1}))
    assert [type(e) for e in events] == [TaskCompleted]
    assert state.status == JobStatus.WAITING_FOR_WORKER and state.fan_out is not None
    assert state.fan_out.pending == 1
    state, events = settle(state, result(second, "custom", data=[2]))
    assert [type(e) for e in events] == [TaskCompleted, BranchesJoined]
    assert state.status == JobStatus.RUNNING and state.current_state == "join"
    assert state.fan_out is None
    assert state.aggregation_results == {
        str(first): {"task_type": "t", "status": "success", "data": {"a": 1}},
        str(second): {"task_type": "t", "status": "custom", "data": [2]},
    }
    # Branch results are the aggregator's: nothing is merged into state_history.
    assert state.state_history == {}
    after = fold([StateEntered(at=NOW, state="done", from_state="join")], state)
    assert after is not None and after.aggregation_results is None


def test_a_branch_retries_and_then_fails_alone() -> None:
    state, (flaky, fine) = fanned_out(2, max_retries=1)
    transient = ErrorInfo(code="TRANSIENT_ERROR", message="try again")
    state, events = settle(state, result(flaky, "failure", error=transient))
    assert [type(e) for e in events] == [TaskFailed, TaskRetryScheduled]
    assert state.fan_out is not None and state.fan_out.branches[str(flaky)].attempt == 2
    # A result of the superseded attempt changes nothing.
    assert [type(e).__name__ for e in settle(state, result(flaky, attempt=1))[1]] == ["TaskResultIgnored"]
    state, events = settle(state, result(flaky, "failure", attempt=2, error=transient))
    assert [type(e) for e in events] == [TaskFailed, BranchFailed]
    assert isinstance(events[1], BranchFailed) and "gave up after 2 attempt(s)" in events[1].error.message
    state, events = settle(state, result(fine))
    assert [type(e) for e in events] == [TaskCompleted, BranchesJoined]
    assert state.aggregation_results is not None
    assert state.aggregation_results[str(flaky)]["status"] == "failure"
    assert state.aggregation_results[str(flaky)]["error"]["code"] == "TRANSIENT_ERROR"


@pytest.mark.parametrize("code", ["INVALID_INPUT_ERROR", "PERMANENT_ERROR", "SECURITY_ERROR"])
def test_errors_no_retry_fixes_fail_the_branch_not_the_job(code: str) -> None:
    state, (only,) = fanned_out(1)
    state, events = settle(state, result(only, "failure", error=ErrorInfo(code=code, message="no")))
    assert [type(e) for e in events] == [TaskFailed, BranchFailed, BranchesJoined]
    assert state.status == JobStatus.RUNNING and state.current_state == "join"


def test_the_task_queue_follows_only_the_branches_that_change() -> None:
    state, ids = fanned_out(3)
    dispatched = task_changes(created(flow()), state)
    assert sorted(task.task_id for task in dispatched.queued) == sorted(ids)
    after, events = settle(state, result(ids[0]))
    changes = task_changes(state, after, events)
    assert (list(changes.queued), list(changes.dropped), list(changes.cancelled)) == ([], [ids[0]], [])
    retried, events = settle(after, result(ids[1], "failure", error=ErrorInfo(code="X", message="x")))
    changes = task_changes(after, retried, events)
    assert [(task.task_id, task.attempt) for task in changes.queued] == [(ids[1], 2)]
    cancelled = fold(decide_cancel(retried, NOW), retried)
    assert cancelled is not None
    changes = task_changes(retried, cancelled, ())
    assert sorted(changes.cancelled) == sorted(ids[1:]) and not changes.dropped


def test_a_fan_out_to_an_unknown_state_fails_the_job() -> None:
    bp = flow()
    action = DispatchParallel(branches=(Branch(task_type="t"),), aggregate_into="nowhere")
    events = decide_step(created(bp), bp, HandlerOutcome(state="start", action=action), NOW)
    assert isinstance(events[-1], JobFailed) and "'nowhere'" in events[-1].error.message


# -- child jobs ---------------------------------------------------------------------


def waiting_parent() -> tuple[JobState, UUID]:
    bp = flow()
    parent = fold([BranchesJoined(at=NOW, state="join", from_state="start")], fanned_out(1)[0])
    assert parent is not None
    # A child's id is a UUIDv7 of the decision's time (its partition of the log): given one, it stays.
    child_id = new_job_id(NOW)
    action = RunBlueprint(blueprint="child", transitions={"success": "done", "failure": "late"})
    unknown = decide_step(parent, bp, HandlerOutcome(state="join", action=action), NOW)
    assert isinstance(unknown[-1], JobFailed) and "unknown blueprint 'child'" in unknown[-1].error.message
    events = decide_step(
        parent,
        bp,
        HandlerOutcome(state="join", action=action),
        NOW,
        new_id=lambda: child_id,
        blueprints={"child"},
    )
    assert [type(e) for e in events] == [ChildStarted]
    state = fold(events, parent)
    assert state is not None and state.status == JobStatus.WAITING_FOR_CHILD
    assert state.children == (child_id,)
    return state, child_id


def child_of(parent: JobState, child_id: UUID, *end: Any) -> JobState:
    child_bp = Blueprint("child")

    @child_bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("done")

    @child_bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    child = fold([*decide_create(child_id, child_bp, {}, NOW, parent_job_id=parent.job_id), *end])
    assert child is not None and child.parent_job_id == parent.job_id
    return child


def test_a_finished_child_hands_its_result_to_the_parent() -> None:
    parent, child_id = waiting_parent()
    running = child_of(parent, child_id)
    assert decide_child_ended(parent, running, NOW) == ()
    finished = child_of(
        parent, child_id, JobFinished(at=NOW, state="start", updates={"start": {"total": 7}, "x": 1})
    )
    events = decide_child_ended(parent, finished, NOW)
    assert events == (
        ChildEnded(at=NOW, child_job_id=child_id, status="finished", result={"total": 7}),
        StateEntered(at=NOW, state="done", from_state="join", updates={"total": 7}),
    )
    after = fold(events, parent)
    assert after is not None and after.child is None and after.state_history["total"] == 7


def test_a_failed_or_cancelled_child_follows_failure_or_fails_the_parent() -> None:
    parent, child_id = waiting_parent()
    error = ErrorInfo(code="HANDLER_ERROR", message="boom")
    failed = child_of(parent, child_id, JobFailed(at=NOW, state="start", error=error))
    _ended, entered = decide_child_ended(parent, failed, NOW)
    assert isinstance(entered, StateEntered) and entered.state == "late"
    cancelled = child_of(parent, child_id, *decide_cancel(child_of(parent, child_id), NOW))
    assert isinstance(decide_child_ended(parent, cancelled, NOW)[1], StateEntered)  # "failure" serves
    assert parent.child is not None
    no_failure = msgspec.structs.replace(
        parent, child=msgspec.structs.replace(parent.child, transitions={"success": "done"})
    )
    _ended, failed_parent = decide_child_ended(no_failure, failed, NOW)
    assert isinstance(failed_parent, JobFailed) and failed_parent.error.code == "CHILD_FAILED"


def test_a_parent_that_stops_waiting_abandons_its_child() -> None:
    parent, child_id = waiting_parent()
    events = decide_cancel(parent, NOW)
    after = fold(events, parent)
    assert after is not None and abandoned_child(parent, after, events) == child_id
    finished = child_of(parent, child_id, JobFinished(at=NOW, state="start"))
    ended = decide_child_ended(parent, finished, NOW)
    resumed = fold(ended, parent)
    assert resumed is not None and abandoned_child(parent, resumed, ended) is None


# -- deadlines ------------------------------------------------------------------------


def test_deadlines_are_written_into_the_events() -> None:
    bp = flow()
    state = created(bp)
    assert state.deadline_at == NOW + timedelta(hours=1)
    own = fold(decide_create(uuid4(), bp, {}, NOW, timeout_seconds=5))
    assert own is not None and own.deadline_at == NOW + timedelta(seconds=5)
    (joined,) = stamp_state_deadlines(bp, (BranchesJoined(at=NOW, state="join", from_state="start"),))
    assert isinstance(joined, BranchesJoined)
    assert joined.state_deadline_at == NOW + timedelta(seconds=30) and joined.on_timeout == "late"
    (entered,) = stamp_state_deadlines(bp, (StateEntered(at=NOW, state="done", from_state="join"),))
    assert isinstance(entered, StateEntered) and entered.state_deadline_at is None


def test_the_earliest_due_deadline_fires_first() -> None:
    bp = flow()
    state, _ids = fanned_out(1)
    assert wakes_at(state) == NOW + timedelta(hours=1)
    in_join = fold(
        stamp_state_deadlines(bp, (BranchesJoined(at=NOW, state="join", from_state="start"),)), state
    )
    assert in_join is not None and wakes_at(in_join) == NOW + timedelta(seconds=30)
    assert decide_due(in_join, NOW + timedelta(seconds=29), NOW) == ()
    timed_out, moved = decide_due(in_join, NOW + timedelta(seconds=30), NOW)
    assert isinstance(timed_out, TimedOut) and timed_out.scope == "state"
    assert moved == StateEntered(at=NOW, state="late", from_state="join")
    late = decide_due(in_join, NOW + timedelta(hours=2), NOW)
    assert isinstance(late[0], TimedOut) and late[0].scope == "job"
    assert isinstance(late[1], JobFailed) and late[1].error.code == "JOB_TIMEOUT"
    # A state timeout abandons the branches: their rows are withdrawn, not dropped.
    after = fold(late, in_join)
    assert after is not None and wakes_at(after) is None
    assert step_change(in_join, after) == ("delete", None)


def test_timeouts_are_checked_when_registered() -> None:
    bp = Blueprint("t")
    with pytest.raises(BlueprintError, match="on_timeout needs timeout_seconds"):
        bp.handler_for("a", on_timeout="b")(lambda: None)
    with pytest.raises(BlueprintError, match="timeout_seconds must be positive"):
        bp.handler_for("a", timeout_seconds=-1)(lambda: None)
    with pytest.raises(BlueprintError, match="timeout_seconds must be positive"):
        Blueprint("t", timeout_seconds=0)

    @bp.handler_for("a", is_start=True, timeout_seconds=1, on_timeout="nowhere", transitions=())
    async def a() -> None: ...

    with pytest.raises(BlueprintError, match="unknown state 'nowhere'"):
        bp.validate()


def test_graph_shows_fan_out_children_and_timeouts() -> None:
    chart = to_mermaid(flow())
    assert "start --> join : fan-out: all branches in" in chart
    assert "join --> done : child child: success" in chart
    assert "join --> late : timeout 30 s" in chart


def test_handler_runs_are_told_apart_from_a_results_own_moves() -> None:
    from chronik.core.divergence import handler_runs
    from chronik.core.events import JobCreated, TaskDispatched

    job_id, task_id = uuid4(), uuid4()
    events = [
        JobCreated(at=NOW, job_id=job_id, blueprint="b", start_state="start"),
        TaskDispatched(
            at=NOW, task_id=task_id, task_type="t", state="start", transitions={"success": "done"}
        ),
        TaskCompleted(at=NOW, task_id=task_id, attempt=1, worker_id="w", status="success"),
        StateEntered(at=NOW, state="done", from_state="start"),  # the result's move, not a handler's
        JobFinished(at=NOW, state="done"),
    ]
    runs = list(handler_runs(events))
    assert [(run.version, run.before.current_state, [type(e) for e in run.events]) for run in runs] == [
        (2, "start", [TaskDispatched]),
        (5, "done", [JobFinished]),
    ]


def test_graphs_draw_any_state_name() -> None:
    from chronik.core.graph import to_dot

    bp = Blueprint('odd "names"', api_endpoint="odd")

    @bp.handler_for("start here", is_start=True, transitions=('done "now"',))
    async def start(actions: Any) -> None: ...

    @bp.handler_for('done "now"', is_end=True)
    async def done() -> None: ...

    mermaid = to_mermaid(bp)
    assert 'state "start here" as s_start_here' in mermaid
    assert "[*] --> s_start_here" in mermaid and "s_start_here --> s_done__now_" in mermaid
    dot = to_dot(bp)
    assert 'digraph "odd \\"names\\"" {' in dot
    assert '"start here" -> "done \\"now\\""' in dot


def test_files_stored_records_are_not_taken_for_handler_decisions() -> None:
    from chronik.core.divergence import handler_runs
    from chronik.core.events import FilesStored, JobCreated

    job_id = uuid4()
    events = [
        JobCreated(at=NOW, job_id=job_id, blueprint="b", start_state="start"),
        FilesStored(at=NOW, keys=(f"jobs/{job_id}/a.bin",), by="handler:start"),
        StateEntered(at=NOW, state="done", from_state="start"),
        FilesStored(at=NOW, keys=(f"jobs/{job_id}/b.bin",), by="handler:done"),
        JobFinished(at=NOW, state="done"),
    ]
    runs = [
        (run.version, run.before.current_state, [type(e) for e in run.events]) for run in handler_runs(events)
    ]
    assert runs == [(3, "start", [StateEntered]), (5, "done", [JobFinished])]
