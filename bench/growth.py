"""Does chronik stay as fast with ten million events as with ten thousand? One run, both sizes.

    python -m bench.growth                                   # 10,000 then 10,000,000 events
    python -m bench.growth --events 200000 --small 5000 --jobs 50   # a smoke run, under a minute

On a fresh database (an embedded PostgreSQL as bench/pg.py starts it, or a database
``chronik_growth`` made anew on DATABASE_URL's server), migrated by chronik's migrator:

1. Templates: ``chronik serve chronik.demo:blueprints`` and ``chronik worker chronik.demo:worker``
   (subprocesses, as bench/run.py runs them) make one real job of each kind of
   bench/seed.py's KINDS through the HTTP API; then they stop.
2. Phase A: the log is seeded by COPY up to ``--small`` events (bench/seed.py: the
   templates replayed under new ids, times and hashes, spread over the last ``--weeks``
   weeks in weekly partitions, a jobs row per job; 20 of them checked: chain and row),
   then VACUUM ANALYZE and CHECKPOINT. The orchestrator and worker start again and the
   run measures over HTTP, one request at a time: get (``GET /api/v1/jobs/{id}``) and
   history (``GET .../history``) of random seeded jobs, and list by status (``GET
   /api/v1/jobs?status=finished`` and ``failed``, ``limit=50``, the first page), taking
   turns request by request; create (``POST /api/v1/jobs/demo``, each job left to end
   before the next create); then the worker round trip: ``--jobs`` demo jobs from
   ``--clients`` clients, each created and followed (``?wait=``) until the worker's
   result finished it (bench/load.py), after a warm-up of 50.
3. Phase B: seeded on up to ``--events`` events in all, then the same measurements.
4. Phase C: the real Archiver archives the oldest seeded partition whose whole week was
   seeded into a temporary folder (``RetentionPolicy(default_days=1e-6)``: every ended job
   is past retention) and drops it.

The asynchronous projections (job_history, task_attempts) do not replay the seeded
events: their checkpoints are moved past them (bench/seed.py ``finish`` says why).

Printed: progress; each phase's events, jobs and sizes; then a table of every
operation, its p50 and p99 at each size and the slowdown (big/small for a time,
small/big for a rate), marked against the goal of 1.5; then the archive: events,
jobs, seconds, events/s, the file's bytes, the partition's size
(pg_total_relation_size) and the database's (pg_database_size) before and after, and
how long the retention plan took. A JSON copy goes to bench/.work/growth-last-run.json.
The database is removed at the end unless ``--keep``. Run by hand on a quiet machine:
seeding ten million events takes minutes (about 40,000 events/s on 2 CPUs). Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import aiohttp
import asyncpg
import httpx
import psycopg
from psycopg import sql

from bench import seed
from bench.growth_report import ArchiveRun, Figure, Phase, mb, report, report_archive
from bench.load import WAIT_SECONDS, run_load
from bench.pg import start_server
from bench.sides import CLIENT_TOKEN, WORK, WORKER_ID, WORKER_TOKEN, free_port, processes, wait_ready
from chronik import Settings
from chronik._runtime.retention import Archiver, RetentionPolicy
from chronik._runtime.setup import prepare_database
from chronik.adapters.archive_store import FolderArchive
from chronik.adapters.postgres import jobs, upkeep
from chronik.adapters.postgres.archive import count_events
from chronik.adapters.postgres.database import Database
from chronik.adapters.telemetry.logs import configure_logging
from chronik.core.records import JobFilter

DATABASE = "chronik_growth"
WARM = 20
ROUND_TRIP_WARM = 50
SEED_END = timedelta(hours=1)
"""The newest seeded job is this old: every seeded job has ended long before the run."""


@contextmanager
def fresh_database(name: str, *, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A fresh database ``name``'s URL, and where it is: on DATABASE_URL's server (made there, any
    database of that name dropped first), or on an embedded server of its own, stopped at the end.
    Unless ``keep``, the database (or the embedded server's data folder) is removed at the end."""
    url = os.environ.get("DATABASE_URL")
    if url:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(drop)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield urlunsplit(urlsplit(url)._replace(path=f"/{name}")), "DATABASE_URL's server"
        finally:
            if not keep:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(drop)
        return
    data = WORK / f"{name}-pgdata"
    server = start_server(data)
    try:
        yield server.fresh_database(name), "embedded"
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


@contextmanager
def orchestrator(dsn: str, label: str) -> Iterator[str]:
    """``chronik serve`` of the demo blueprints and ``chronik worker`` of the demo worker; the URL.

    Their logs go to bench/.work/growth-<label>-{server,worker}.log; errors logged there are
    counted when they stop, since a failing background loop would skew what was measured."""
    url = f"http://127.0.0.1:{free_port()}"
    WORK.mkdir(parents=True, exist_ok=True)
    config = WORK / "growth-workers.toml"
    config.write_text(f'[{WORKER_ID}]\ntoken = "{WORKER_TOKEN}"\n')
    server_env = {
        "DATABASE_URL": dsn,
        "CLIENT_TOKEN": CLIENT_TOKEN,
        "WORKERS_CONFIG_PATH": str(config),
        "LOG_LEVEL": "WARNING",
    }
    worker_env = {"WORKER_ID": WORKER_ID, "WORKER_TOKEN": WORKER_TOKEN, "LOG_LEVEL": "WARNING"}
    port = url.rsplit(":", 1)[1]
    serve = ["serve", "chronik.demo:blueprints", "--host", "127.0.0.1", "--port", port]
    work = ["worker", "chronik.demo:worker", "--url", url]
    logs = [WORK / f"growth-{label}-{side}.log" for side in ("server", "worker")]
    with processes(
        ([sys.executable, "-m", "chronik", *serve], server_env, logs[0]),
        ([sys.executable, "-m", "chronik", *work], worker_env, logs[1]),
    ):
        wait_ready(f"{url}/_public/ready")
        yield url
    for log in logs:
        errors = [line for line in log.read_text(errors="replace").splitlines() if '"level": "error"' in line]
        if errors:
            print(f"  WARNING: {len(errors)} errors in {log}; the first: {errors[0][:300]}", flush=True)


def make_templates(url: str) -> list[tuple[seed.Kind, UUID]]:
    """One real job of each kind, through the API, each followed until it ended."""
    made = []
    with httpx.Client(base_url=url, headers={"X-Client-Token": CLIENT_TOKEN}, timeout=60) as http:
        for kind in seed.KINDS:
            created = http.post(f"/api/v1/jobs/{kind.endpoint}", json={"initial_data": kind.initial_data})
            created.raise_for_status()
            job_id = UUID(created.json()["job_id"])
            ended = http.get(f"/api/v1/jobs/{job_id}", params={"wait": WAIT_SECONDS}).json()
            if ended["status"] not in ("finished", "failed"):
                raise RuntimeError(
                    f"template {kind.label}: the job is {ended['status']} after {WAIT_SECONDS} s"
                )
            made.append((kind, job_id))
    return made


async def capture_templates(dsn: str, made: list[tuple[seed.Kind, UUID]]) -> list[seed.Template]:
    conn = await asyncpg.connect(dsn)
    try:
        return [await seed.capture(conn, kind, job_id) for kind, job_id in made]
    finally:
        await conn.close()


async def seed_to(dsn: str, seeder: seed.Seeder, *, total: int, since: datetime) -> tuple[float, float]:
    """Seed until the log holds about ``total`` events; seconds seeding, seconds vacuuming."""
    conn = await asyncpg.connect(dsn)
    try:
        missing = total - await count_events(conn)
        started = time.perf_counter()
        if missing > 0:
            await seed.seed(
                conn,
                seeder,
                events=missing,
                since=since,
                until=datetime.now(UTC) - SEED_END,
                partition_days=Settings().partition_days,
            )
        seeded = time.perf_counter()
        await seed.finish(conn)
        vacuumed = time.perf_counter()
    finally:
        await conn.close()
    await seed.check(dsn, seeder.pick.sample(seeder.sample, min(20, len(seeder.sample))))
    return seeded - started, vacuumed - seeded


async def describe(dsn: str) -> tuple[int, int, int, int, int]:
    """The log's events, the jobs rows, and the sizes of the database, the log and ``jobs``."""
    conn = await asyncpg.connect(dsn)
    try:
        return (
            await count_events(conn),
            await jobs.count_jobs(conn, JobFilter()),
            await upkeep.database_size(conn),
            await upkeep.relation_size(conn, "events"),
            await upkeep.relation_size(conn, "jobs"),
        )
    finally:
        await conn.close()


async def _call(http: aiohttp.ClientSession, method: str, path: str, body: object = None) -> Any:
    async with http.request(method, path, json=body) as response:
        response.raise_for_status()
        return await response.json()


def _figure(times: list[float]) -> Figure:
    ordered = sorted(times)
    return Figure(
        statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    )


async def _reads(http: aiohttp.ClientSession, paths: dict[str, list[str]], count: int) -> dict[str, Figure]:
    """``count`` GETs of each operation (after ``WARM`` untimed ones), each cycling through its
    paths, one request at a time; ms. The operations take turns, request by request, so a
    disturbance of the machine (a checkpoint, another process) falls on all of them alike."""
    for n in range(WARM):
        for found in paths.values():
            await _call(http, "GET", found[-1 - n % len(found)])
    times: dict[str, list[float]] = {name: [] for name in paths}
    for n in range(count):
        for name, found in paths.items():
            began = time.perf_counter()
            await _call(http, "GET", found[n % len(found)])
            times[name].append((time.perf_counter() - began) * 1000)
    return {name: _figure(taken) for name, taken in times.items()}


async def _creates(http: aiohttp.ClientSession, count: int) -> Figure:
    """``count`` creates of a demo job (after ``WARM``), each timed until its 202; ms.

    Each job is followed to its end (untimed) before the next create: otherwise a create
    would share the orchestrator's event loop with the previous job's handler and the
    worker's requests, and measure those too (here: 4-7 ms instead of about 2).
    """
    times = []
    for n in range(WARM + count):
        began = time.perf_counter()
        answer = await _call(http, "POST", "/api/v1/jobs/demo", {"initial_data": {"name": "growth"}})
        elapsed = (time.perf_counter() - began) * 1000
        await _call(http, "GET", f"/api/v1/jobs/{answer['job_id']}?wait={WAIT_SECONDS:g}")
        if n >= WARM:
            times.append(elapsed)
    return _figure(times)


async def measure(
    url: str, sample: list[UUID], *, requests: int, jobs: int, clients: int
) -> dict[str, Figure]:
    """The five operations over HTTP, as the module's docstring describes them."""
    pick = random.Random(len(sample))
    ids = pick.sample(sample, len(sample))
    half = max(1, len(ids) // 2)
    figures: dict[str, Figure] = {}
    headers = {"X-Client-Token": CLIENT_TOKEN}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=WAIT_SECONDS + 30)
    async with aiohttp.ClientSession(base_url=url, headers=headers, timeout=timeout) as http:
        # Different jobs for get and history: a history read right after a get of the same job
        # would find its row cached.
        paths = {
            "get": [f"/api/v1/jobs/{job_id}" for job_id in ids[:half]],
            "history": [f"/api/v1/jobs/{job_id}/history" for job_id in ids[half:] or ids],
            "list finished": ["/api/v1/jobs?status=finished&limit=50"],
            "list failed": ["/api/v1/jobs?status=failed&limit=50"],
        }
        figures.update(await _reads(http, paths, requests))
        figures["create"] = await _creates(http, requests)
    for count in (ROUND_TRIP_WARM, jobs):  # a warm-up, then the measured run
        load = await run_load(
            url, endpoint="demo", token=CLIENT_TOKEN, jobs=count, clients=clients, wait=WAIT_SECONDS
        )
    figures["round trip"] = Figure(load.p50 * 1000, load.percentile(99) * 1000, load.failed)
    figures["round trip rate"] = Figure(load.jobs_per_second, None, load.failed)
    return figures


def run_phase(
    dsn: str, seeder: seed.Seeder, *, total: int, since: datetime, args: argparse.Namespace, name: str
) -> Phase:
    print(f"\nphase {name}: seeding up to {total:,} events (COPY)", flush=True)
    seconds, vacuum = asyncio.run(seed_to(dsn, seeder, total=total, since=since))
    events, jobs, size, events_size, jobs_size = asyncio.run(describe(dsn))
    print(
        f"  {events:,} events, {jobs:,} jobs, database {mb(size)} (events {mb(events_size)}, "
        f"jobs {mb(jobs_size)}); seeding {seconds:.1f} s, "
        f"VACUUM ANALYZE + CHECKPOINT {vacuum:.1f} s; 20 seeded jobs checked (chain, row = fold)",
        flush=True,
    )
    with orchestrator(dsn, name) as url:
        print(f"  measuring over HTTP ({args.requests} requests an operation, {args.jobs} round trips)")
        figures = asyncio.run(
            measure(url, list(seeder.sample), requests=args.requests, jobs=args.jobs, clients=args.clients)
        )
    return Phase(events, jobs, size, events_size, jobs_size, figures, seconds, vacuum)


async def archive_one(dsn: str, since: datetime) -> ArchiveRun:
    """Archive the oldest seeded partition whose whole range is seeded, with the real Archiver."""
    database = await Database.open(dsn, max_size=4)
    folder = Path(tempfile.mkdtemp(prefix="chronik-growth-archive-"))
    archiver = Archiver(
        database,
        store=FolderArchive(folder),
        policy=RetentionPolicy(default_days=1e-6),
        partition_days=Settings().partition_days,
        interval=3600,
    )
    try:
        began = time.perf_counter()
        plans = await archiver.plan()
        plan_seconds = time.perf_counter() - began
        due = [p for p in plans if p.leaves and p.lo is not None and p.lo >= since and p.jobs]
        if not due:
            why = "; ".join(f"{p.name}: {p.reason}" for p in plans)
            return ArchiveRun(skipped=f"no seeded partition may leave ({why})")
        name = due[0].name
        async with database.connection() as conn:
            partition_size = await upkeep.relation_size(conn, name)
            before = await upkeep.database_size(conn)
        done = await archiver.archive(name)
        async with database.connection() as conn:
            after = await upkeep.database_size(conn)
    finally:
        await database.close()
        shutil.rmtree(folder, ignore_errors=True)
    return ArchiveRun(
        partition=name,
        events=done.events,
        jobs=done.jobs,
        seconds=done.seconds,
        bytes=done.bytes,
        dropped=done.dropped,
        reason=done.reason,
        partition_size=partition_size,
        database_before=before,
        database_after=after,
        plan_seconds=plan_seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the log for phase B")
    parser.add_argument("--small", type=int, default=10_000, help="events in the log for phase A")
    parser.add_argument("--jobs", type=int, default=500, help="round trips measured at each size")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the round trip")
    parser.add_argument("--requests", type=int, default=300, help="timed requests of each other operation")
    parser.add_argument("--weeks", type=int, default=10, help="weeks of job creations the seed spans")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args()
    configure_logging("WARNING", "text")
    if not 0 < args.small < args.events:
        parser.error("--small must be more than 0 and less than --events")
    since = datetime.now(UTC) - timedelta(weeks=args.weeks)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; phase A {args.small:,} events, B {args.events:,}")
    with fresh_database(DATABASE, keep=args.keep) as (dsn, where):
        asyncio.run(_prepare(dsn, where))
        with orchestrator(dsn, "templates") as url:
            made = make_templates(url)
        templates = asyncio.run(capture_templates(dsn, made))
        seeder = seed.Seeder(templates, sample_size=max(2000, 3 * (args.requests + WARM)))
        print(
            f"templates: {', '.join(f'{t.kind.label} ({len(t.events)} events)' for t in templates)}; "
            f"{seeder.mean_events:.2f} events a seeded job"
        )
        small = run_phase(dsn, seeder, total=args.small, since=since, args=args, name="A")
        big = run_phase(dsn, seeder, total=args.events, since=since, args=args, name="B")
        within = report(small, big)
        print("\nphase C: archiving one seeded partition", flush=True)
        archived = asyncio.run(archive_one(dsn, since))
        report_archive(archived)
    saved = WORK / "growth-last-run.json"
    saved.write_text(
        json.dumps(
            {"small": asdict(small), "big": asdict(big), "archive": asdict(archived), "within": within},
            indent=1,
        )
    )
    print(f"\n(details: {saved})")


async def _prepare(dsn: str, where: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_database(conn)
        # bench-only: the settings that decide what a read or a commit costs, for the header line
        shown = [await upkeep.setting(conn, name) for name in _SHOWN]
    finally:
        await conn.close()
    settings = ", ".join(f"{name} {value}" for name, value in zip(_SHOWN[1:], shown[1:], strict=True))
    print(f"PostgreSQL {shown[0]} ({where}; {settings}); migrated by chronik's migrator")


_SHOWN = ("server_version", "shared_buffers", "synchronous_commit", "fsync")


if __name__ == "__main__":
    main()
