"""Each scenario: a fresh PostgreSQL and cluster, a baseline, one fault under load, recovery, the checks.

A run goes: start a server (chaos/pg.py) and migrate it, start two instances and
two workers (chaos/cluster.py), start the load (chaos/load.py); after a warm-up,
measure the baseline throughput (jobs ended per second); inject the fault while the
load goes on; from the moment the fault ends, find the first window of
``window`` seconds whose throughput is at least 90 % of the baseline (recovery
time: from the fault's end to that window's start; at most 30 s counts), and
measure the throughput over the same length as the baseline from there. Then the
load stops creating, every job it made is followed to its end, the processes stop,
and chaos/checks.py checks the database, and the logs are read.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from chaos.checks import Findings, check, listeners, notifications_pending, tasks_held, unfinished
from chaos.cluster import WEBHOOK_SECRET, Cluster, wait_ready
from chaos.load import Load
from chaos.pg import ControlledPostgres, start_controlled
from chaos.receiver import Receiver
from chronik._runtime.setup import prepare_database

__all__ = ["SCENARIOS", "Result", "Timing", "drain", "migrate", "read_logs", "run_scenario"]

RECOVERY_LIMIT = 30.0
RECOVERED = 0.9


@dataclass(frozen=True)
class Timing:
    """How long each phase lasts and how hard the load pushes."""

    warmup: float = 8.0
    baseline: float = 20.0
    window: float = 5.0
    clients: int = 8
    down: float = 30.0
    terminate_for: float = 20.0
    orchestrator_kills: int = 10
    worker_kills: int = 6
    lock_for: float = 20.0

    @classmethod
    def short(cls) -> Timing:
        return cls(
            warmup=4.0,
            baseline=8.0,
            window=4.0,
            clients=6,
            down=10.0,
            terminate_for=8.0,
            orchestrator_kills=3,
            worker_kills=2,
            lock_for=12.0,
        )


@dataclass
class Result:
    """One scenario's figures."""

    scenario: str
    faults: int = 0
    fault_detail: str = ""
    before: float = 0.0
    """Jobs ended per second in the baseline."""
    after: float = 0.0
    """Jobs ended per second once recovered (or over the last window when it did not recover)."""
    recovery: float | None = None
    """Seconds from the fault's end to the first window at >= 90 % of the baseline; None: not in 30 s."""
    fault_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    connection_errors: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    """Error lines and tracebacks in the processes' logs that nothing explains."""
    log_explained: dict[str, int] = field(default_factory=dict)
    listeners: str = ""
    """The instances' LISTEN sessions before the fault and after recovery, and how many are new."""
    listener_problem: str = ""
    """Set when an instance had no LISTEN session after recovery, or kept one the fault ended."""
    findings: Findings = field(default_factory=Findings)

    @property
    def http_500s(self) -> int:
        return sum(count for status, count in self.statuses.items() if int(status) >= 500 and status != "503")

    @property
    def ok(self) -> bool:
        return (
            self.findings.ok
            and not self.listener_problem
            and not self.server_errors
            and not self.log_problems
            and self.recovery is not None
            and self.recovery <= RECOVERY_LIMIT
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {"http_500s": self.http_500s, "ok": self.ok}
        return data


Fault = Callable[[ControlledPostgres, Cluster, Timing, Result], Awaitable[None]]


async def _restart(pg: ControlledPostgres, mode: str, result: Result) -> None:
    await asyncio.to_thread(pg.restart, mode)
    result.faults, result.fault_detail = 1, f"pg_ctl restart -m {mode}"


async def restart_fast(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    await _restart(pg, "fast", result)


async def restart_immediate(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    await _restart(pg, "immediate", result)


async def down(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    await asyncio.to_thread(pg.stop, "fast")
    await asyncio.sleep(timing.down)
    await asyncio.to_thread(pg.start)
    result.faults, result.fault_detail = 1, f"stopped {timing.down:g} s"


async def terminate(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    sessions = 0
    ends = time.monotonic() + timing.terminate_for
    while time.monotonic() < ends:
        sessions += await asyncio.to_thread(pg.terminate_sessions)
        result.faults += 1
        await asyncio.sleep(2.0)
    result.fault_detail = f"{sessions} sessions terminated"


async def kill_orchestrator(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    victim = cluster.instances[0]
    url = cluster.urls[0]
    for _ in range(timing.orchestrator_kills):
        await asyncio.sleep(random.uniform(1.0, 2.0))
        await asyncio.to_thread(victim.restart)
        result.faults += 1
        await asyncio.to_thread(wait_ready, url)
    result.fault_detail = f"kill -9 of {victim.name}, started again each time"


async def kill_worker(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    mid_task = 0
    for n in range(timing.worker_kills):
        victim = cluster.workers[n % 2]
        await asyncio.sleep(random.uniform(1.0, 2.0))
        worker_id = victim.env["WORKER_ID"]
        for _ in range(50):  # kill it while it holds a task
            if await tasks_held(pg.dsn, worker_id):
                mid_task += 1
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(victim.kill)
        result.faults += 1
        await asyncio.sleep(1.0)
        await asyncio.to_thread(victim.restart)
    result.fault_detail = f"kill -9 of a worker, {mid_task} of them holding a task"


async def lock_jobs(pg: ControlledPostgres, cluster: Cluster, timing: Timing, result: Result) -> None:
    await asyncio.to_thread(pg.hold_lock, "jobs", timing.lock_for)
    result.faults = 1
    result.fault_detail = f"LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE, {timing.lock_for:g} s, another session"


SCENARIOS: dict[str, Fault] = {
    "restart-fast": restart_fast,
    "restart-immediate": restart_immediate,
    "down-30s": down,
    "terminate": terminate,
    "kill-orchestrator": kill_orchestrator,
    "kill-worker": kill_worker,
    "lock-jobs": lock_jobs,
}

ENDS_SESSIONS = {"restart-fast", "restart-immediate", "down-30s", "terminate"}
"""Scenarios whose fault ends every session: each LISTEN session after recovery must be a new one."""

# Log lines the faults make on purpose, and why each is no defect. Anything else is reported.
EXPLAINED: dict[str, re.Pattern[str]] = {}


async def run_scenario(name: str, folder: Path, timing: Timing) -> Result:
    """Run scenario ``name`` with its server, processes and logs under ``folder``."""
    result = Result(name)
    pg = await asyncio.to_thread(start_controlled, folder / "pgdata")
    cluster = Cluster(pg.dsn, folder)
    receiver = Receiver(WEBHOOK_SECRET)
    try:
        await migrate(pg.dsn)
        await asyncio.to_thread(cluster.start)
        load = Load(cluster.urls, clients=timing.clients, webhook_url=await receiver.start())
        running = asyncio.create_task(load.run())
        await asyncio.sleep(timing.warmup)
        began = time.monotonic()
        await asyncio.sleep(timing.baseline)
        result.before = load.rate_between(began, time.monotonic())
        listening = await listeners(pg.dsn)
        fault_began = time.monotonic()
        await SCENARIOS[name](pg, cluster, timing, result)
        ended = time.monotonic()
        result.fault_seconds = ended - fault_began
        result.recovery, result.after = await _recovery(load, ended, result.before, timing)
        _check_listeners(result, listening, await listeners(pg.dsn), len(cluster.instances))
        load.stop(drain=90)
        await running
        await drain(pg.dsn, load.parked)
        await asyncio.to_thread(cluster.stop)
        result.statuses = {str(status): count for status, count in sorted(load.statuses.items())}
        result.connection_errors = dict(load.errors)
        result.server_errors = load.server_errors
        result.findings = await check(
            pg.dsn, load.accepted, load.unanswered, parked=load.parked, receiver=receiver
        )
    finally:
        await receiver.stop()
        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(pg.close)
    result.log_problems, result.log_explained = read_logs(cluster)
    return result


async def migrate(dsn: str) -> None:
    """Bring the harness's fresh database to chronik's schema."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_database(conn)
    finally:
        await conn.close()


async def drain(dsn: str, parked: dict[str, str], *, within: float = 60.0) -> None:
    """Wait (at most ``within`` s) until every job the load made has ended, but those it left waiting
    on purpose, and every webhook notification is delivered: the load has followed its jobs; what
    is left should end soon."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not await unfinished(dsn, parked) and not await notifications_pending(dsn):
            return
        await asyncio.sleep(0.5)


def _check_listeners(
    result: Result, before: list[tuple[int, Any]], after: list[tuple[int, Any]], instances: int
) -> None:
    new = len({pid for pid, _ in after} - {pid for pid, _ in before})
    result.listeners = f"{len(before)} before, {len(after)} after recovery, {new} new"
    if len(after) != instances:
        result.listener_problem = f"{len(after)} LISTEN sessions after recovery for {instances} instances"
    elif result.scenario in ENDS_SESSIONS and new != instances:
        result.listener_problem = f"only {new} of {instances} LISTEN sessions are new after the fault"


def read_logs(cluster: Cluster) -> tuple[list[str], dict[str, int]]:
    """Every error line and traceback of the processes' logs: (those nothing explains, explained
    ones counted by reason)."""
    problems: list[str] = []
    explained: dict[str, int] = {}
    for process, line in cluster.log_problems():
        reason = next((why for why, pattern in EXPLAINED.items() if pattern.search(line)), None)
        if reason is None:
            problems.append(f"{process}: {line[:400]}")
        else:
            explained[reason] = explained.get(reason, 0) + 1
    return problems, explained


async def _recovery(load: Load, ended: float, before: float, timing: Timing) -> tuple[float | None, float]:
    """(seconds to the first window at >= 90 % of ``before``, or None; throughput from there)."""
    start = ended
    while start <= ended + RECOVERY_LIMIT:
        until = start + timing.window
        if time.monotonic() < until:
            await asyncio.sleep(until - time.monotonic())
        if load.rate_between(start, until) >= RECOVERED * before:
            await asyncio.sleep(max(0.0, start + timing.baseline - time.monotonic()))
            return start - ended, load.rate_between(start, start + timing.baseline)
        start += 0.5
    return None, load.rate_between(start - 0.5, start - 0.5 + timing.window)
