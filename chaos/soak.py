"""Scenario 8, the soak: a long run at 80 % of the measured maximum, watching for slow leaks.

First the maximum: the closed-loop load with more and more clients (16, 32, 64, ...),
each step measured after a short warm-up, until a step adds less than 10 % (the
cluster is saturated); the best step's jobs ended per second is the maximum. Then the
soak: the open-loop load starts a job every ``1 / (0.8 * maximum)`` seconds for
``minutes`` minutes, whatever the cluster's pace, each job followed to its end by a
client of its own. Every ``every`` seconds it samples each process's resident memory
and open file descriptors (``/proc``), and the database's sessions by application. At
the end: the least-squares slope of each series over the run after its first
``settle`` seconds (pools and caches fill first), the latency of a job (create to
observed end) in the first and the last minute, the invariant checks of every other
scenario, and the log lines nothing explains.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from chaos.checks import Findings, check
from chaos.cluster import WEBHOOK_SECRET, Cluster, Process
from chaos.load import Load
from chaos.pg import start_controlled
from chaos.receiver import Receiver
from chaos.scenarios import drain, migrate, read_logs

__all__ = ["SoakResult", "run_soak"]

LOAD_SHARE = 0.8
RAMP = (16, 32, 64, 128)
RAMP_WARMUP = 5.0
RAMP_STEP = 15.0
SATURATED = 1.1
"""A ramp step that adds less than 10 % over the best so far ends the ramp."""


@dataclass
class Sample:
    """One look at the cluster, ``at`` seconds into the soak."""

    at: float
    rss_mb: dict[str, float]
    fds: dict[str, int]
    sessions: dict[str, int]
    ended: int
    in_flight: int


@dataclass
class SoakResult:
    """The soak's figures."""

    minutes: float
    ramp: dict[int, float] = field(default_factory=dict)
    """Clients -> jobs ended per second in that ramp step."""
    maximum: float = 0.0
    rate: float = 0.0
    """Jobs started per second during the soak (``LOAD_SHARE`` of the maximum)."""
    achieved: float = 0.0
    """Jobs ended per second over the soak."""
    samples: list[Sample] = field(default_factory=list)
    slopes: dict[str, float] = field(default_factory=dict)
    """Series -> change per 10 minutes (MB for memory, count for descriptors and sessions)."""
    latency: dict[str, float] = field(default_factory=dict)
    """p50 and p99 seconds from create to end, in the first and in the last minute."""
    statuses: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    log_explained: dict[str, int] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)

    @property
    def scenario(self) -> str:
        return "soak"

    @property
    def ok(self) -> bool:
        return self.findings.ok and not self.server_errors and not self.log_problems

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


async def run_soak(
    folder: Path, *, minutes: float = 10.0, every: float = 10.0, settle: float = 60.0
) -> SoakResult:
    """Measure the maximum, soak at 80 % of it for ``minutes``, and check everything."""
    result = SoakResult(minutes)
    pg = await asyncio.to_thread(start_controlled, folder / "pgdata")
    cluster = Cluster(pg.dsn, folder)
    receiver = Receiver(WEBHOOK_SECRET)
    hook = ""
    loads: list[Load] = []
    try:
        await migrate(pg.dsn)
        await asyncio.to_thread(cluster.start)
        hook = await receiver.start()
        result.ramp = await _ramp(cluster, hook, loads)
        result.maximum = max(result.ramp.values())
        result.rate = LOAD_SHARE * result.maximum
        print(f"  maximum {result.maximum:.2f} jobs/s; soak at {result.rate:.2f}", flush=True)
        # No job is left waiting on purpose: a soak outlasts the decisions' deadlines.
        load = Load(cluster.urls, rate=result.rate, webhook_url=hook, park_every=0)
        loads.append(load)
        running = asyncio.create_task(load.run())
        began = time.monotonic()
        conn = await asyncpg.connect(pg.dsn)
        try:
            while time.monotonic() - began < minutes * 60:
                result.samples.append(await _sample(conn, cluster, load, time.monotonic() - began))
                await asyncio.sleep(every - (time.monotonic() - began) % every)
        finally:
            await conn.close()
        ended = time.monotonic()
        result.achieved = load.rate_between(began, ended)
        result.latency = _latency(load, began, ended)
        result.slopes = _slopes(result.samples, settle)
        load.stop(drain=90)
        await running
        await drain(pg.dsn, {})
        await asyncio.to_thread(cluster.stop)
        for one in loads:
            for status, count in one.statuses.items():
                result.statuses[str(status)] = result.statuses.get(str(status), 0) + count
            result.server_errors += one.server_errors
        accepted = {key: job for one in loads for key, job in one.accepted.items()}
        unanswered = set().union(*(one.unanswered for one in loads))
        result.findings = await check(pg.dsn, accepted, unanswered, receiver=receiver)
    finally:
        await receiver.stop()
        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(pg.close)
    result.log_problems, result.log_explained = read_logs(cluster)
    return result


async def _ramp(cluster: Cluster, hook: str, loads: list[Load]) -> dict[int, float]:
    """Jobs ended per second with more and more closed-loop clients, until it stops growing."""
    found: dict[int, float] = {}
    for clients in RAMP:
        load = Load(cluster.urls, clients=clients, webhook_url=hook, park_every=0)
        loads.append(load)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(RAMP_WARMUP)
        began = time.monotonic()
        await asyncio.sleep(RAMP_STEP)
        found[clients] = load.rate_between(began, time.monotonic())
        load.stop(drain=60)
        await running
        print(f"  ramp: {clients} clients, {found[clients]:.2f} jobs/s", flush=True)
        best_before = max((rate for n, rate in found.items() if n != clients), default=0.0)
        if best_before and found[clients] < SATURATED * best_before:
            break
    return found


async def _sample(conn: asyncpg.Connection, cluster: Cluster, load: Load, at: float) -> Sample:
    processes = [*cluster.instances, *cluster.workers]
    rows = await conn.fetch(
        "SELECT coalesce(nullif(application_name, ''), backend_type) AS who, count(*) AS n"
        " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
    )
    return Sample(
        at=round(at, 1),
        rss_mb={p.name: _rss_mb(p) for p in processes},
        fds={p.name: _fds(p) for p in processes},
        sessions={r["who"]: r["n"] for r in rows},
        ended=len(load.completions),
        in_flight=len(load.accepted) - len(load.completions),
    )


def _rss_mb(process: Process) -> float:
    if process.proc is None:
        return 0.0
    for line in Path(f"/proc/{process.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(process: Process) -> int:
    return 0 if process.proc is None else len(list(Path(f"/proc/{process.proc.pid}/fd").iterdir()))


def _slopes(samples: list[Sample], settle: float) -> dict[str, float]:
    """Each series' least-squares slope per 10 minutes, over the samples after ``settle`` seconds."""
    kept = [s for s in samples if s.at >= settle]
    if len(kept) < 3:
        return {}
    xs = [s.at / 600 for s in kept]
    applications = sorted({who for s in kept for who in s.sessions})
    series: dict[str, list[float]] = {}
    for s in kept:
        for name, mb in s.rss_mb.items():
            series.setdefault(f"rss_mb {name}", []).append(mb)
        for name, count in s.fds.items():
            series.setdefault(f"fds {name}", []).append(count)
        # The load's keep-alive connections move between the instances; their sum is what must stay flat.
        instances = sum(count for name, count in s.fds.items() if name.startswith("instance"))
        series.setdefault("fds instances together", []).append(instances)
        for who in applications:
            series.setdefault(f"sessions {who}", []).append(s.sessions.get(who, 0))
    return {name: round(statistics.linear_regression(xs, ys).slope, 2) for name, ys in series.items()}


def _latency(load: Load, began: float, ended: float) -> dict[str, float]:
    """p50 and p99 of create-to-end seconds, for jobs that ended in the first and in the last minute."""
    figures = {}
    for label, since, until in (("first minute", began, began + 60), ("last minute", ended - 60, ended)):
        times = sorted(seconds for at, seconds in load.latencies if since <= at < until)
        if len(times) >= 2:
            cuts = statistics.quantiles(times, n=100)
            figures[f"{label} p50"] = round(cuts[49], 3)
            figures[f"{label} p99"] = round(cuts[98], 3)
    return figures
