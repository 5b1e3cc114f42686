"""Forks and the console's filters, in the pure core: what a fork records and starts, what it leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from chronik._runtime.batches import APPLIES_TO
from chronik.api.filters import BatchFilter, containment
from chronik.core.audit import facts_of
from chronik.core.blueprint import Blueprint
from chronik.core.divergence import handler_runs
from chronik.core.effects import change_of
from chronik.core.errors import InvalidInput
from chronik.core.events import (
    ForkedFrom,
    JobCreated,
    JobFinished,
    JobForked,
    StateEntered,
    TaskCompleted,
    TaskDispatched,
)
from chronik.core.evolve import evolve, fold
from chronik.core.forks import decide_fork, only_recorded_since
from chronik.core.records import id_range
from chronik.core.state import TERMINAL_STATUSES, JobState, JobStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB = UUID(int=1)
TASK = UUID(int=2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def flow() -> Blueprint:
    bp = Blueprint("flow")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("work")

    @bp.handler_for("work", timeout_seconds=30)
    async def work(actions: Any) -> None:
        actions.dispatch_task("t", {}, transitions={"success": "done"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def history() -> list[Any]:
    """A job that went start -> work (a task) -> done, with a webhook and a job timeout."""
    return [
        JobCreated(
            at=T0,
            job_id=JOB,
            blueprint="flow",
            start_state="start",
            initial_data={"order": 7},
            deadline_at=at(3600),
            webhook_url="https://example.test/hook",
            client="billing",
            metadata={"team": "red"},
            max_transitions=50,
        ),
        StateEntered(at=at(1), state="work", from_state="start", updates={"seen": 1}),
        TaskDispatched(at=at(2), task_id=TASK, task_type="t", state="work", transitions={"success": "done"}),
        TaskCompleted(at=at(3), task_id=TASK, attempt=1, worker_id="w", status="success", data={"r": 1}),
        StateEntered(at=at(3), state="done", from_state="work", updates={"r": 1}),
        JobFinished(at=at(4), state="done"),
    ]


def test_a_fork_starts_in_the_state_of_that_version_with_its_data() -> None:
    events = history()
    source = fold(events)
    then = fold(events[:3])  # waiting for the worker in "work"
    assert source is not None and then is not None and then.status == JobStatus.WAITING_FOR_WORKER
    new_id = uuid4()
    fork = decide_fork(source, then, flow(), new_id, at(100), actor="ops", max_transitions=100)
    assert fork.recorded == (JobForked(at=at(100), new_job_id=new_id, from_version=3, actor="ops"),)
    (created,) = fork.created
    assert isinstance(created, JobCreated)
    assert created.start_state == "work" and created.state_history == {"seen": 1}
    assert created.initial_data == {"order": 7} and created.metadata == {"team": "red"}
    assert created.client == "billing" and created.max_transitions == 50
    assert created.forked_from == ForkedFrom(job_id=JOB, version=3)
    assert created.webhook_url is None  # not taken over: the source's receiver knows nothing of it
    assert created.parent_job_id is None
    assert created.deadline_at == at(100 + 3600)  # the same job timeout, from now
    assert created.state_deadline_at == at(130)  # the state's timeout, as on entering it
    job = fold(fork.created)
    assert job is not None
    assert (job.status, job.current_state, job.state_history, job.version) == (
        "running",
        "work",
        {"seen": 1},
        1,
    )
    assert job.forked_from == ForkedFrom(job_id=JOB, version=3) and job.transitions == 0


def test_a_fork_refuses_a_state_the_blueprint_lost() -> None:
    events = history()
    source, then = fold(events), fold(events[:2])
    assert source is not None and then is not None
    bp = Blueprint("flow")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("start")

    with pytest.raises(InvalidInput, match="no longer has"):
        decide_fork(source, then, bp, uuid4(), at(9))


def test_job_forked_changes_nothing_but_the_version_and_the_forks_even_on_an_ended_job() -> None:
    ended = fold(history())
    assert ended is not None and ended.status == JobStatus.FINISHED
    new_id = uuid4()
    after = evolve(ended, JobForked(at=at(500), new_job_id=new_id, from_version=2))
    assert after.version == ended.version + 1 and after.forks == (new_id,)
    assert (after.status, after.updated_at, after.finished_at) == (
        ended.status,
        ended.updated_at,
        ended.finished_at,
    )
    assert only_recorded_since(ended, after) and not only_recorded_since(after, ended)
    change = change_of(
        ended, after, [JobForked(at=at(500), new_job_id=new_id, from_version=2)], meta={}, files=True
    )
    # No webhook again, no wake-up, no files to remove, no step or task rows touched.
    assert change.webhook is None and change.wake is None and not change.remove_files
    assert change.step == "keep" and change.step_due is None
    assert not change.tasks.queued and not change.tasks.dropped and not change.tasks.cancelled


def test_a_fork_of_a_running_job_keeps_its_step_and_tasks_as_they_are() -> None:
    events = history()
    waiting = fold(events[:3])
    running = fold(events[:2])
    assert waiting is not None and running is not None
    for before in (waiting, running):
        forked = JobForked(at=at(9), new_job_id=uuid4(), from_version=1)
        change = change_of(before, evolve(before, forked), [forked], meta={}, files=False)
        assert change.step == "keep" and not change.tasks.queued and not change.tasks.cancelled
    # A real change after the fork is not "only recorded".
    moved = evolve(evolve(running, JobForked(at=at(9), new_job_id=uuid4(), from_version=1)), events[2])
    assert not only_recorded_since(running, moved)


def test_the_audit_trail_and_replay_treat_a_fork_as_a_record() -> None:
    new_id = uuid4()
    forked = JobForked(at=at(1), new_job_id=new_id, from_version=1, actor="ops")
    events = [history()[0], forked, *history()[1:]]
    assert facts_of(forked, fold(events[:1]), {}).summary == f"forked at version 1 into job {new_id}"
    assert facts_of(forked, None, {}).actor == "ops"
    runs = list(handler_runs(events))
    assert [run.events[0] for run in runs] == [events[2], events[3], events[6]]  # the fork: nobody's
    copy = JobCreated(
        at=T0,
        job_id=new_id,
        blueprint="flow",
        start_state="work",
        forked_from=ForkedFrom(job_id=JOB, version=2),
    )
    assert facts_of(copy, None, {}).summary == f"forked from job {JOB} at version 2, in state 'work'"


def test_an_id_prefix_is_a_range_of_ids() -> None:
    assert id_range("AB-12") == (
        UUID("ab120000-0000-0000-0000-000000000000"),
        UUID("ab12ffff-ffff-ffff-ffff-ffffffffffff"),
    )
    whole = "0f8e2c1a-0000-4000-8000-00000000000a"
    assert id_range(whole) == (UUID(whole), UUID(whole))
    for bad in ("", "xyz", "g1", "0" * 33):
        with pytest.raises(InvalidInput, match="id_prefix"):
            id_range(bad)


def test_data_and_metadata_filters_parse_values_as_json_or_strings() -> None:
    pairs = [
        ("data.order", "7"),
        ("data.region", "eu"),
        ("data.code", '"7"'),
        ("data.tags", '["a"]'),
        ("metadata.team", "red"),
        ("status", "running"),
        ("database", "x"),
    ]
    assert containment(pairs, "data") == {"order": 7, "region": "eu", "code": "7", "tags": ["a"]}
    assert containment(pairs, "metadata") == {"team": "red"}
    assert containment([("status", "x")], "data") is None
    with pytest.raises(InvalidInput, match="twice"):
        containment([("data.a", "1"), ("data.a", "2")], "data")
    with pytest.raises(InvalidInput, match="key after the dot"):
        containment([("data.", "1")], "data")
    with pytest.raises(InvalidInput, match="time zone"):
        BatchFilter(created_after=datetime(2026, 1, 1)).to_filter()
    assert BatchFilter(data={}, id_prefix="ab").to_filter().data is None


def test_batch_actions_apply_to_the_jobs_they_can_act_on() -> None:
    every = {value for name, value in vars(JobStatus).items() if name.isupper()}
    assert set(APPLIES_TO["cancel"]) == every - TERMINAL_STATUSES
    assert APPLIES_TO["retry"] == (JobStatus.QUARANTINED,)


def test_a_forked_job_round_trips_as_a_stored_row() -> None:
    import msgspec

    events = history()
    source, then = fold(events), fold(events[:2])
    assert source is not None and then is not None
    fork = decide_fork(source, then, flow(), uuid4(), at(50))
    job = fold(fork.created)
    assert job is not None
    assert msgspec.json.decode(msgspec.json.encode(job), type=JobState) == job
