"""docs/analytics.md: every SQL recipe runs, as a read-only analytics role, and answers what the log says.

One engine plays a realistic day: orders that succeed, retry, time out, get declined,
quarantined or cancelled, a handler that crashes, fan-outs with failing branches, and
refunds that people approve, reject, let time out or leave waiting. Then each
``<!-- query: NAME -->`` block of the page runs against the ``chronik_analytics`` views,
and its rows are compared with figures computed here from the raw ``events`` table
alone: never from the views or the projection tables they read.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from chronik import Blueprint
from chronik.adapters.postgres.projection_tables import install_analytics
from chronik.core.events import ErrorInfo
from chronik.core.wire import RegisterBody, ReportedResult, TaskRef
from chronik.engine import Engine
from chronik.projections.rebuild import rebuild
from chronik.projections.setup import PROJECTORS
from tests.conftest import wait_for
from tests.integration.test_projections import caught_up

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
MARKED_BLOCK = re.compile(
    r"<!-- (?P<marker>[a-z]+)(?:: (?P<name>[a-z0-9_]+))? -->\n```sql\n(?P<sql>.*?)```", re.DOTALL
)


# -- the history ------------------------------------------------------------------------------------


def blueprints() -> list[Blueprint]:
    """A shop's orders, its thumbnail fan-outs and its refunds that need a person."""
    orders = Blueprint("orders")

    @orders.handler_for("validate", is_start=True)
    async def validate(initial_data: dict[str, Any], actions: Any) -> None:
        if initial_data.get("boom"):
            raise RuntimeError("the address service is down")
        actions.transition_to("charge")

    @orders.handler_for("charge")
    async def charge(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task(
            "charge_card",
            {"fail": initial_data.get("charge", [])},
            transitions={"success": "ship", "failure": "rejected"},
            max_retries=2,
        )

    @orders.handler_for("ship")
    async def ship(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task(
            "print_label",
            {"fail": initial_data.get("label", [])},
            transitions={"success": "shipped"},
            timeout_seconds=initial_data.get("label_timeout"),
        )

    @orders.handler_for("shipped", is_end=True)
    async def shipped() -> None: ...

    @orders.handler_for("rejected", is_end=True, is_failure=True)
    async def rejected() -> None: ...

    thumbnails = Blueprint("thumbnails")

    @thumbnails.handler_for("fan_out", is_start=True)
    async def fan_out(initial_data: dict[str, Any], actions: Any) -> None:
        tasks = [
            {"task_type": "make_thumbnail", "params": {"fail": fail}, "max_retries": 1}
            for fail in initial_data["branches"]
        ]
        actions.dispatch_parallel(tasks=tasks, aggregate_into="collect")

    @thumbnails.aggregator_for("collect")
    async def collect(aggregation_results: dict[str, Any], actions: Any) -> None:
        if any(result["status"] == "failure" for result in aggregation_results.values()):
            actions.transition_to("partial")
        else:
            actions.transition_to("published")

    @thumbnails.handler_for("published", is_end=True)
    async def published() -> None: ...

    @thumbnails.handler_for("partial", is_end=True, is_failure=True)
    async def partial() -> None: ...

    refunds = Blueprint("refunds")

    @refunds.handler_for("review", is_start=True)
    async def review(initial_data: dict[str, Any], actions: Any) -> None:
        actions.await_human_approval(
            "refund this order?",
            transitions={"approve": "refunded", "reject": "denied", "timeout": "escalated"},
            timeout_seconds=initial_data["wait"],
        )

    @refunds.handler_for("review").when("initial_data.strict == True")
    async def strict_review(initial_data: dict[str, Any], actions: Any) -> None:
        actions.await_human_approval(
            "refund this order?",
            transitions={"approve": "refunded", "reject": "denied"},
            timeout_seconds=initial_data["wait"],
        )

    @refunds.handler_for("refunded", is_end=True)
    async def refunded() -> None: ...

    @refunds.handler_for("denied", is_end=True)
    async def denied() -> None: ...

    @refunds.handler_for("escalated", is_end=True)
    async def escalated() -> None: ...

    return [orders, thumbnails, refunds]


# Each job: its blueprint, its initial data, and the status it must end in. A task's "fail" list
# is the error code of each attempt in turn ("HANG": the worker takes it and never answers); an
# attempt past the list succeeds.
ORDERS = {
    "ok1": ({}, "finished"),
    "ok2": ({}, "finished"),
    "ok3": ({}, "finished"),
    "ok4": ({}, "finished"),
    "flaky": ({"charge": ["TRANSIENT_ERROR", "RESOURCE_EXHAUSTED_ERROR"]}, "finished"),
    "slow_label": ({"label": ["HANG"], "label_timeout": 0.3}, "finished"),
    "declined": ({"charge": ["INVALID_INPUT_ERROR"]}, "failed"),
    "fraud": ({"charge": ["SECURITY_ERROR"]}, "quarantined"),
    "printer_down": ({"label": ["TRANSIENT_ERROR"] * 4}, "quarantined"),
    "boom": ({"boom": True}, "failed"),
}
THUMBNAILS = {
    "all_good": ({"branches": [[], [], []]}, "finished"),
    "one_bad": ({"branches": [[], ["TRANSIENT_ERROR"], ["INVALID_INPUT_ERROR"]]}, "failed"),
    "gave_up": ({"branches": [[], ["INTERNAL_ERROR", "INTERNAL_ERROR"]]}, "failed"),
}
REFUNDS = {
    "approved": ({"wait": 60}, "finished"),
    "rejected": ({"wait": 60}, "finished"),
    "approved_later": ({"wait": 60}, "finished"),
    "escalated": ({"wait": 0.3}, "finished"),
    "expired": ({"wait": 0.3, "strict": True}, "failed"),
    "waiting": ({"wait": 3600}, "waiting_for_human"),
    "withdrawn": ({"wait": 60}, "cancelled"),
}
WORKERS = {"w1": ["charge_card", "make_thumbnail"], "w2": ["print_label", "make_thumbnail"]}
RUN_SECONDS = {"charge_card": 0.02, "print_label": 0.04, "make_thumbnail": 0.01}


async def play_a_day(engine: Engine) -> dict[str, Any]:
    """Create every job, answer every task as planned, decide the approvals; the jobs by name."""
    jobs: dict[str, Any] = {}
    expected: dict[str, str] = {}

    # Before any worker is there: an order and a fan-out cancelled while their tasks are queued.
    for name, blueprint, data in (
        ("cancelled", "orders", {}),
        ("called_off", "thumbnails", {"branches": [[], []]}),
    ):
        job = await engine.create_job(blueprint, data)
        await wait_for(lambda job=job: _status_is(engine, job.job_id, "waiting_for_worker"))
        await engine.cancel_job(job.job_id, reason="customer changed their mind", actor="ops")
        jobs[name], expected[name] = job, "cancelled"

    for blueprint, plans in (("orders", ORDERS), ("thumbnails", THUMBNAILS), ("refunds", REFUNDS)):
        for name, (data, status) in plans.items():
            jobs[name] = await engine.create_job(blueprint, data)
            expected[name] = status

    service = engine.workers
    for worker_id, task_types in WORKERS.items():
        await service.register(RegisterBody(worker_id=worker_id, task_types=task_types, capacity=4))

    async def settled() -> bool:
        for name, status in expected.items():
            if not await _status_is(engine, jobs[name].job_id, status):
                return False
        return True

    decided = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not await settled():
        assert loop.time() < deadline, "the day did not settle in 30 s"
        people = ("approved", "rejected", "approved_later", "withdrawn")
        if not decided and all(
            [await _status_is(engine, jobs[n].job_id, "waiting_for_human") for n in people]
        ):
            await engine.approve_job(jobs["approved"].job_id, "approve", comment="ok", actor="ada")
            await engine.approve_job(jobs["rejected"].job_id, "reject", comment="no receipt", actor="grace")
            await engine.cancel_job(jobs["withdrawn"].job_id, reason="duplicate request", actor="ops")
            await asyncio.sleep(0.2)
            await engine.approve_job(jobs["approved_later"].job_id, "approve", actor="ada")
            decided = True
        for worker_id, task_types in WORKERS.items():
            task = await service.next_task(worker_id, task_types, 0.05)
            if task is None:
                continue
            fail, attempt = task.params["fail"], task.metadata.attempt
            code = fail[attempt - 1] if attempt <= len(fail) else None
            if code == "HANG":
                continue  # the task's timeout runs out; the watcher ends the attempt
            await asyncio.sleep(RUN_SECONDS[task.type])
            ref = TaskRef.parse(task.task_id)
            if code is None:
                await service.submit_result(
                    ReportedResult(ref=ref, worker_id=worker_id, status="success", data={}, error=None)
                )
            else:
                error = ErrorInfo(code=code, message=f"{task.type} failed with {code}")
                await service.submit_result(
                    ReportedResult(ref=ref, worker_id=worker_id, status="failure", data=None, error=error)
                )
    return jobs


async def _status_is(engine: Engine, job_id: Any, status: str) -> bool:
    return (await engine.get_job(job_id)).status == status


# -- what the log says, computed from the events alone ---------------------------------------------

LOST_CODES = {"timed_out": "TIMEOUT_ERROR", "lease_expired": "TRANSIENT_ERROR"}
ENDS = {"JobFinished": "finished", "JobFailed": "failed", "JobCancelled": "cancelled"}


@dataclass
class Job:
    blueprint: str
    created_at: datetime
    status: str = "running"
    ended_at: datetime | None = None
    error_code: str | None = None
    visits: list[list[Any]] = field(default_factory=list)
    """``[state, entered_at, left_at or None]`` for each stay in a state."""


@dataclass
class Task:
    job_id: UUID
    blueprint: str
    state: str
    task_type: str
    branch: bool
    attempt: int
    queued_at: datetime
    completed: bool = False
    retried: bool = False
    withdrawn: bool = False
    failed: tuple[str, datetime] | None = None
    """A branch's BranchFailed: its code and time."""


@dataclass
class Attempt:
    task_id: str
    task: Task
    ended_at: datetime
    claimed_at: datetime | None
    worker_id: str | None
    outcome: str
    error_code: str | None

    @property
    def wait(self) -> float:
        assert self.claimed_at is not None
        return (self.claimed_at - self.task.queued_at).total_seconds()

    @property
    def run(self) -> float:
        assert self.claimed_at is not None
        return (self.ended_at - self.claimed_at).total_seconds()


@dataclass
class Approval:
    job_id: UUID
    blueprint: str
    state: str
    requested_at: datetime
    answered_at: datetime | None = None
    answer: str | None = None
    decision: str | None = None
    decided_by: str | None = None


@dataclass
class Log:
    """What the recipes ask about, from ``SELECT type, data, job_id, version FROM events`` alone."""

    jobs: dict[UUID, Job] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    coded: Counter[tuple[str, str]] = field(default_factory=Counter)
    """How many events of each type carried each error code."""

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> Log:
        rows = await conn.fetch("SELECT type, data::text AS data, job_id, version FROM events")
        streams: dict[UUID, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
        for row in rows:
            streams[row["job_id"]].append((row["version"], row["type"], json.loads(row["data"])))
        log = cls()
        for job_id, events in streams.items():
            log._follow(job_id, [(kind, data) for _version, kind, data in sorted(events, key=lambda e: e[0])])
        return log

    def _follow(self, job_id: UUID, events: list[tuple[str, dict[str, Any]]]) -> None:
        (kind, created), *rest = events
        assert kind == "JobCreated"
        job = self.jobs[job_id] = Job(created["blueprint"], _time(created["at"]))
        job.visits.append([created["start_state"], job.created_at, None])
        pending: set[str] = set()
        asked: Approval | None = None
        for kind, data in rest:
            at, code = _time(data["at"]), _code(kind, data)
            if code is not None:
                self.coded[kind, code] += 1
            task = self.tasks.get(data.get("task_id", ""))
            match kind:
                case "StateEntered" | "BranchesJoined":
                    job.visits[-1][2] = at
                    job.visits.append([data["state"], at, None])
                    job.status = "running"
                case "TaskDispatched":
                    pending.update(self._queue(job_id, job, data["state"], [data], False, at))
                case "ParallelDispatched":
                    pending.update(self._queue(job_id, job, data["state"], data["branches"], True, at))
                case "TaskCompleted" | "TaskFailed" | "TaskLost":
                    assert task is not None and task.attempt == data["attempt"]
                    outcome = {"TaskCompleted": "completed", "TaskFailed": "failed"}.get(
                        kind, data.get("reason")
                    )
                    claimed = _time(data["claimed_at"]) if data.get("claimed_at") else None
                    self.attempts.append(
                        Attempt(data["task_id"], task, at, claimed, data["worker_id"] or None, outcome, code)
                    )
                    task.completed = kind == "TaskCompleted"
                    pending.discard(data["task_id"])
                case "TaskRetryScheduled":
                    assert task is not None
                    queued = at + timedelta(seconds=data["delay_seconds"])
                    self.tasks[data["task_id"]] = replace_task(task, data["attempt"], queued)
                    pending.add(data["task_id"])
                    job.status = "waiting_for_worker"
                case "JobRetried":
                    assert task is not None
                    self.tasks[data["task_id"]] = replace_task(task, data["attempt"], at)
                    pending.add(data["task_id"])
                    job.status, job.error_code = "waiting_for_worker", None
                case "JobQuarantined":
                    job.status, job.error_code = "quarantined", code
                case "BranchFailed":
                    assert task is not None and code is not None
                    task.failed = (code, at)
                case "ApprovalRequested":
                    asked = Approval(job_id, job.blueprint, data["state"], at)
                    self.approvals.append(asked)
                    job.status = "waiting_for_human"
                case "ApprovalGiven" | "ApprovalTimedOut" if asked is not None:
                    asked.answered_at = at
                    asked.answer = "decided" if kind == "ApprovalGiven" else "timed_out"
                    asked.decision, asked.decided_by = data.get("decision"), data.get("actor")
                    asked = None
            if kind in ("JobCancelled", "TimedOut"):
                for key in pending:  # whatever the job still waited for is withdrawn
                    withdrawn = self.tasks[key]
                    withdrawn.withdrawn = True
                    self.attempts.append(Attempt(key, withdrawn, at, None, None, "withdrawn", None))
                pending.clear()
            if kind in ("JobCancelled", "JobFailed", "TimedOut") and asked is not None:
                asked.answered_at, asked.answer, asked = at, "abandoned", None
            if kind in ENDS:
                job.status, job.ended_at, job.visits[-1][2] = ENDS[kind], at, at
                job.error_code = "CANCELLED" if kind == "JobCancelled" else code

    def _queue(
        self, job_id: UUID, job: Job, state: str, specs: list[dict[str, Any]], branch: bool, at: datetime
    ) -> list[str]:
        """Queue attempt 1 of each dispatched task (one, or a fan-out's branches); their ids."""
        for spec in specs:
            self.tasks[spec["task_id"]] = Task(job_id, job.blueprint, state, spec["task_type"], branch, 1, at)
        job.status = "waiting_for_worker"
        return [spec["task_id"] for spec in specs]

    def claimed(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.claimed_at is not None]


def replace_task(task: Task, attempt: int, queued_at: datetime) -> Task:
    """The task's next attempt; the attempts that ended keep the Task they ran as."""
    return Task(
        task.job_id, task.blueprint, task.state, task.task_type, task.branch, attempt, queued_at, retried=True
    )


def _code(kind: str, data: dict[str, Any]) -> str | None:
    if kind == "TaskLost":
        return LOST_CODES[data["reason"]]
    if kind == "TimedOut":
        return "JOB_TIMEOUT" if data["scope"] == "job" else "STATE_TIMEOUT"
    return (data.get("error") or {}).get("code") or data.get("error_code")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def percentile(values: Iterable[float], fraction: float) -> float:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the two closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def share(part: float, whole: float) -> float | None:
    """A percentage, unrounded (the tolerance covers the recipe's rounding); None of nothing."""
    return None if whole == 0 else 100 * part / whole


# -- the recipes' checks --------------------------------------------------------------------------------


@dataclass
class Recipe:
    """One query of the page, its rows, and what the log says."""

    name: str
    sql: str
    rows: list[dict[str, Any]]
    log: Log
    conn: asyncpg.Connection

    async def run(self, sql: str) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.conn.fetch(sql)]


CHECKS: dict[str, Callable[[Recipe], Awaitable[None]]] = {}


def checks(name: str) -> Callable[[Callable[[Recipe], Awaitable[None]]], Callable[[Recipe], Awaitable[None]]]:
    """Register the check of the page's query ``name``."""

    def register(check: Callable[[Recipe], Awaitable[None]]) -> Callable[[Recipe], Awaitable[None]]:
        CHECKS[name] = check
        return check

    return register


def expect(
    rows: list[dict[str, Any]], expected: list[dict[str, Any]], *, key: tuple[str, ...], within: float = 0.0
) -> None:
    """The rows are the expected ones (in any order): same columns, numbers within ``within``."""
    assert rows, "the query returned nothing; the check would prove nothing"
    found = {tuple(row[k] for k in key): row for row in rows}
    wanted = {tuple(row[k] for k in key): row for row in expected}
    assert len(found) == len(rows), f"{key} is not a key of the rows"
    assert sorted(found, key=repr) == sorted(wanted, key=repr)
    for at, row in found.items():
        assert set(row) == set(wanted[at]), f"columns of {at}"
        for column, value in wanted[at].items():
            got = row[column]
            if isinstance(value, float) and got is not None:
                assert math.isclose(float(got), value, abs_tol=within + 1e-9), (
                    f"{at} {column}: {got} != {value}"
                )
            else:
                assert got == value, f"{at} {column}: {got!r} != {value!r}"


def ordered_by(rows: list[dict[str, Any]], column: str, *, descending: bool = False) -> None:
    values = [row[column] for row in rows]
    assert values == sorted(values, reverse=descending), f"not ordered by {column}"


@checks("job_duration_percentiles")
async def _(recipe: Recipe) -> None:
    durations: dict[tuple[str, Any], list[float]] = defaultdict(list)
    for job in recipe.log.jobs.values():
        if job.status == "finished":
            assert job.ended_at is not None
            day = job.created_at.astimezone(UTC).date()
            durations[job.blueprint, day].append((job.ended_at - job.created_at).total_seconds())
    expected = [
        {
            "blueprint": blueprint,
            "day": day,
            "jobs": len(values),
            "p50_seconds": percentile(values, 0.5),
            "p95_seconds": percentile(values, 0.95),
        }
        for (blueprint, day), values in durations.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "day"), within=0.0005)


@checks("outcomes_per_blueprint")
async def _(recipe: Recipe) -> None:
    counts = Counter((job.blueprint, job.status) for job in recipe.log.jobs.values())
    per_blueprint = Counter(job.blueprint for job in recipe.log.jobs.values())
    expected = [
        {"blueprint": blueprint, "status": status, "jobs": n, "percent": share(n, per_blueprint[blueprint])}
        for (blueprint, status), n in counts.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "status"), within=0.05)
    assert {row["status"] for row in recipe.rows} >= {"finished", "failed", "quarantined", "cancelled"}


@checks("slowest_states")
async def _(recipe: Recipe) -> None:
    stays: dict[tuple[str, str], list[float]] = defaultdict(list)
    for job in recipe.log.jobs.values():
        for state, entered, left in job.visits:
            if left is not None:
                stays[job.blueprint, state].append((left - entered).total_seconds())
    expected = [
        {
            "blueprint": blueprint,
            "state": state,
            "visits": len(values),
            "avg_seconds": sum(values) / len(values),
            "p95_seconds": percentile(values, 0.95),
            "max_seconds": max(values),
        }
        for (blueprint, state), values in stays.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "state"), within=0.0005)
    ordered_by(recipe.rows, "p95_seconds", descending=True)


@checks("failure_causes_last_7_days")
async def _(recipe: Recipe) -> None:
    by_code: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in recipe.log.attempts:
        if attempt.error_code is not None:
            by_code[attempt.error_code].append(attempt)
    expected = [
        {
            "error_code": code,
            "failed_attempts": len(found),
            "jobs": len({a.task.job_id for a in found}),
            "in_fan_outs": sum(a.task.branch for a in found),
            "first_seen": min(a.ended_at for a in found),
            "last_seen": max(a.ended_at for a in found),
        }
        for code, found in by_code.items()
    ]
    expect(recipe.rows, expected, key=("error_code",))
    assert {"TRANSIENT_ERROR", "TIMEOUT_ERROR", "INVALID_INPUT_ERROR", "SECURITY_ERROR"} <= set(by_code)
    ordered_by(recipe.rows, "failed_attempts", descending=True)


@checks("failed_jobs_by_cause")
async def _(recipe: Recipe) -> None:
    counts = Counter(
        (job.blueprint, job.status, job.error_code)
        for job in recipe.log.jobs.values()
        if job.status in ("failed", "quarantined")
    )
    expected = [
        {"blueprint": blueprint, "status": status, "error_code": code, "jobs": n}
        for (blueprint, status, code), n in counts.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "status", "error_code"))


@checks("retry_and_quarantine_rates")
async def _(recipe: Recipe) -> None:
    coded, all_attempts = recipe.log.coded, len(recipe.log.attempts)
    expected = []
    for code in {code for _kind, code in coded}:
        failed = coded["TaskFailed", code] + coded["TaskLost", code]
        retried, quarantined = coded["TaskRetryScheduled", code], coded["JobQuarantined", code]
        expected.append(
            {
                "error_code": code,
                "failed_attempts": failed,
                "retried": retried,
                "quarantined": quarantined,
                "failed_branches": coded["BranchFailed", code],
                "failed_jobs": coded["JobFailed", code],
                "retry_percent": share(retried, failed),
                "quarantine_percent": share(quarantined, failed),
                "percent_of_attempts": share(failed, all_attempts),
            }
        )
    expect(recipe.rows, expected, key=("error_code",), within=0.05)
    transient = next(row for row in recipe.rows if row["error_code"] == "TRANSIENT_ERROR")
    assert transient["retried"] > 0 and transient["quarantined"] == 1
    ordered_by(recipe.rows, "failed_attempts", descending=True)


@checks("task_wait_and_run_times")
async def _(recipe: Recipe) -> None:
    by_type: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in recipe.log.claimed():
        by_type[attempt.task.task_type].append(attempt)
    expected = []
    for task_type, found in by_type.items():
        waits, runs = [a.wait for a in found], [a.run for a in found]
        expected.append(
            {
                "task_type": task_type,
                "attempts": len(found),
                "wait_p50": percentile(waits, 0.5),
                "wait_p95": percentile(waits, 0.95),
                "run_p50": percentile(runs, 0.5),
                "run_p95": percentile(runs, 0.95),
            }
        )
    expect(recipe.rows, expected, key=("task_type",), within=0.0005)
    # The worker slept RUN_SECONDS on each answered attempt; the hung one ran until its timeout.
    for row in recipe.rows:
        assert float(row["run_p50"]) >= RUN_SECONDS[row["task_type"]]


@checks("worker_throughput_per_hour")
async def _(recipe: Recipe) -> None:
    by_hour: dict[tuple[str, datetime], list[Attempt]] = defaultdict(list)
    for attempt in recipe.log.claimed():
        assert attempt.worker_id is not None
        hour = attempt.ended_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        by_hour[attempt.worker_id, hour].append(attempt)
    expected = []
    for (worker_id, hour), found in by_hour.items():
        completed, busy = sum(a.outcome == "completed" for a in found), sum(a.run for a in found)
        expected.append(
            {
                "worker_id": worker_id,
                "hour": hour,
                "attempts": len(found),
                "completed": completed,
                "not_completed": len(found) - completed,
                "completed_percent": share(completed, len(found)),
                "busy_seconds": busy,
                "utilisation": busy / 3600,
            }
        )
    expect(recipe.rows, expected, key=("worker_id", "hour"), within=0.05)
    for row in recipe.rows:  # the tolerance above is the percentage's; these are finer
        wanted = next(e for e in expected if (e["worker_id"], e["hour"]) == (row["worker_id"], row["hour"]))
        assert math.isclose(float(row["busy_seconds"]), wanted["busy_seconds"], abs_tol=0.0005)
        assert math.isclose(float(row["utilisation"]), wanted["utilisation"], abs_tol=0.00005)
    assert {row["worker_id"] for row in recipe.rows} == set(WORKERS)


@checks("approval_response_times")
async def _(recipe: Recipe) -> None:
    decided: dict[tuple[str, str, str | None, str | None], list[float]] = defaultdict(list)
    for approval in recipe.log.approvals:
        if approval.answer == "decided":
            assert approval.answered_at is not None
            seconds = (approval.answered_at - approval.requested_at).total_seconds()
            decided[approval.blueprint, approval.state, approval.decided_by, approval.decision].append(
                seconds
            )
    expected = [
        {
            "blueprint": blueprint,
            "state": state,
            "decided_by": actor,
            "decision": decision,
            "decisions": len(values),
            "avg_seconds": sum(values) / len(values),
            "max_seconds": max(values),
        }
        for (blueprint, state, actor, decision), values in decided.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "state", "decided_by", "decision"), within=0.0005)
    assert {(row["decided_by"], row["decisions"]) for row in recipe.rows} == {("ada", 2), ("grace", 1)}


@checks("approval_outcomes")
async def _(recipe: Recipe) -> None:
    answered: dict[tuple[str, str, str | None], list[float]] = defaultdict(list)
    for approval in recipe.log.approvals:
        if approval.answered_at is not None:
            seconds = (approval.answered_at - approval.requested_at).total_seconds()
            answered[approval.blueprint, approval.state, approval.answer].append(seconds)
    expected = [
        {
            "blueprint": blueprint,
            "state": state,
            "answer": answer,
            "approvals": len(values),
            "p50_seconds": percentile(values, 0.5),
        }
        for (blueprint, state, answer), values in answered.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "state", "answer"), within=0.0005)
    assert {row["answer"] for row in recipe.rows} == {"decided", "timed_out", "abandoned"}


@checks("approvals_waiting")
async def _(recipe: Recipe) -> None:
    now = datetime.now(UTC)
    expected = [
        {
            "job_id": a.job_id,
            "blueprint": a.blueprint,
            "state": a.state,
            "requested_at": a.requested_at,
            "waiting_minutes": (now - a.requested_at).total_seconds() / 60,
        }
        for a in recipe.log.approvals
        if a.answered_at is None
    ]
    expect(recipe.rows, expected, key=("job_id",), within=0.15)
    ordered_by(recipe.rows, "requested_at")


@checks("stuck_jobs")
async def _(recipe: Recipe) -> None:
    threshold = "interval '15 minutes'"
    assert recipe.sql.count(threshold) == 1, "the check varies the recipe's threshold; keep it in the query"

    def stuck_for(minutes: float) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [
            {
                "job_id": job_id,
                "blueprint": job.blueprint,
                "state": state,
                "status": job.status,
                "entered_at": entered,
                "minutes_in_state": (now - entered).total_seconds() / 60,
            }
            for job_id, job in recipe.log.jobs.items()
            for state, entered, left in job.visits
            if left is None and now - entered > timedelta(minutes=minutes)
        ]

    # The day is a few seconds old: nothing is stuck for 15 minutes. With no threshold, every job
    # still in a state is, whatever it waits for.
    assert recipe.rows == stuck_for(15) == []
    rows = await recipe.run(recipe.sql.replace(threshold, "interval '0 minutes'"))
    expect(rows, stuck_for(0), key=("job_id",), within=0.15)
    assert {row["status"] for row in rows} == {"quarantined", "waiting_for_human"}
    ordered_by(rows, "entered_at")


@checks("fan_out_branch_outcomes")
async def _(recipe: Recipe) -> None:
    groups: dict[tuple[str, str, str], list[Task]] = defaultdict(list)
    for task in recipe.log.tasks.values():
        if task.branch:
            groups[task.blueprint, task.state, task.task_type].append(task)
    expected = [
        {
            "blueprint": blueprint,
            "state": state,
            "task_type": task_type,
            "branches": len(found),
            "completed": sum(t.completed for t in found),
            "withdrawn": sum(t.withdrawn for t in found),
            "failed_for_good": sum(t.failed is not None for t in found),
            "retried": sum(t.retried for t in found),
            "jobs_hit": len({t.job_id for t in found if t.failed is not None}),
        }
        for (blueprint, state, task_type), found in groups.items()
    ]
    expect(recipe.rows, expected, key=("blueprint", "state", "task_type"))
    assert (recipe.rows[0]["failed_for_good"], recipe.rows[0]["withdrawn"]) == (2, 2)


@checks("failed_branches")
async def _(recipe: Recipe) -> None:
    attempts = Counter(attempt.task_id for attempt in recipe.log.attempts)
    expected = []
    for task_id, task in recipe.log.tasks.items():
        if task.failed is not None:
            code, at = task.failed
            expected.append(
                {
                    "job_id": task.job_id,
                    "blueprint": task.blueprint,
                    "task_type": task.task_type,
                    "task_id": UUID(task_id),
                    "attempts": attempts[task_id],
                    "error_code": code,
                    "failed_at": at,
                }
            )
    expect(recipe.rows, expected, key=("task_id",))
    assert {row["error_code"] for row in recipe.rows} == {"INVALID_INPUT_ERROR", "INTERNAL_ERROR"}
    ordered_by(recipe.rows, "failed_at", descending=True)


# -- the page ---------------------------------------------------------------------------------------


def sql_blocks(text: str) -> dict[tuple[str, str], str]:
    """Every ```sql block of the page by its marker: ``("query", name)`` or ``("grants", part)``."""
    blocks: dict[tuple[str, str], str] = {}
    for found in MARKED_BLOCK.finditer(text):
        label = (found["marker"], found["name"] or "")
        assert label not in blocks, f"{label} appears twice on the page"
        blocks[label] = found["sql"]
    unmarked = text.count("```sql") - len(blocks)
    assert unmarked == 0, (
        f"{unmarked} sql block(s) of the page have no <!-- query: name --> marker; test them"
    )
    return blocks


def views_only(sql: str) -> None:
    """The recipe reads the chronik_analytics views (and its own CTEs), nothing else."""
    ctes = set(re.findall(r"(?:WITH|,)\s+([a-z_]+) AS \(", sql))
    for source in re.findall(r"\b(?:FROM|JOIN)\s+([a-z_][\w.]*)\b(?!\s*\()", sql):
        assert source.startswith("chronik_analytics.") or source in ctes, f"reads {source}"


async def make_reader(
    conn: asyncpg.Connection, blocks: dict[tuple[str, str], str], reader: str, database: str
) -> bool:
    """Create the page's read-only role as ``reader``; False when this login cannot create roles."""
    if not await conn.fetchval("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"):
        return False
    role = blocks["grants", "role"]
    assert "CREATE ROLE analytics_reader " in role
    await conn.execute(role.replace("analytics_reader", reader))
    await grant(conn, blocks, reader, database)
    return True


async def drop_role(conn: asyncpg.Connection, reader: str) -> None:
    """Roles belong to the server, not to this test's database: leave none behind."""
    await conn.execute("RESET ROLE")
    if await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", reader):
        await conn.execute(f"DROP OWNED BY {reader}")
        await conn.execute(f"DROP ROLE {reader}")


async def grant(
    conn: asyncpg.Connection, blocks: dict[tuple[str, str], str], reader: str, database: str
) -> None:
    access = blocks["grants", "access"]
    assert "ON DATABASE chronik TO analytics_reader" in access
    await conn.execute(
        access.replace("ON DATABASE chronik", f'ON DATABASE "{database}"').replace("analytics_reader", reader)
    )


async def test_every_recipe_answers_what_the_log_says(make_engine: Any, database_url: str) -> None:
    blocks = sql_blocks(DOC.read_text("utf-8"))
    recipes = {name: sql for (marker, name), sql in blocks.items() if marker == "query"}
    assert len(recipes) >= 8
    assert sorted(recipes) == sorted(CHECKS), "every query of the page needs a check, and every check a query"
    engine = await make_engine(
        *blueprints(), projection_interval=0.1, retry_base_seconds=0.0, watcher_interval=0.1
    )
    await play_a_day(engine)
    await caught_up(engine)

    conn = await asyncpg.connect(database_url)
    database = await conn.fetchval("SELECT current_database()")
    reader = f"analytics_reader_{uuid4().hex[:12]}"
    try:
        as_reader = await make_reader(conn, blocks, reader, database)
        log = await Log.read(conn)
        await conn.execute("SET TIME ZONE 'UTC'")
        if as_reader:
            await conn.execute(f"SET ROLE {reader}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT job_id FROM public.jobs LIMIT 1")
        for name, sql in recipes.items():
            views_only(sql)
            rows = [dict(row) for row in await conn.fetch(sql)]
            await CHECKS[name](Recipe(name, sql, rows, log, conn))

        if as_reader:
            # A rebuild recreates the views (and an upgrade may): the reader keeps its access.
            await conn.execute("RESET ROLE")
            await rebuild(conn, PROJECTORS[0])
            await install_analytics(conn)
            await conn.execute(f"SET ROLE {reader}")
            assert await conn.fetch(recipes["outcomes_per_blueprint"])
        else:
            pytest.skip("this login cannot create roles: the read-only role's checks did not run")
    finally:
        await drop_role(conn, reader)
        await conn.close()


async def test_an_approval_still_waiting_has_no_answer(make_engine: Any) -> None:
    engine = await make_engine(*blueprints(), projection_interval=0.1)
    job = await engine.create_job("refunds", {"wait": 3600})
    await wait_for(lambda: _status_is(engine, job.job_id, "waiting_for_human"))
    await caught_up(engine)
    async with engine.database.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT answered_at, answer FROM chronik_analytics.approvals WHERE job_id = $1", job.job_id
        )
    assert tuple(row) == (None, None)
