"""The console's reads on a big table: every list filter, a batch's count, and a long history.

    python -m bench.console_data                       # 1,000,000 jobs, a job of 20,000 events
    python -m bench.console_data --jobs 100000 --runs 5

On a fresh embedded PostgreSQL (bench/pg.py), migrated as chronik migrates, it
COPYs ``--jobs`` rows into ``jobs`` (10 blueprints, the statuses in proportions
like a busy deployment's, 20 clients, a few ``initial_data`` and ``metadata``
keys, 30 days of creation times), each row a real job state as ``JobRow.of``
writes it, and one job of ``--events`` events into ``events`` (a UUIDv7 id, in its
partition, hash-chained as the append chains) with its ``jobs`` row the fold of
them. The secondary indexes are dropped for the COPY and made again from their
own definitions (``pg_get_indexdef``, through ``adapters/postgres/upkeep``), then
the table is analyzed: the indexes are those of the migrations, built the fast way.

Then, for each filter of ``GET /api/v1/jobs`` (the first page, 50 jobs, newest
first, the same ``list_jobs`` statement the API runs) and for the first history
page (100 events) of the long job, it prints the median over ``--runs`` of:
the server's time (planning plus execution, from ``EXPLAIN (ANALYZE, TIMING
OFF)``); the client's (the adapter's call, the rows decoded, over a unix socket;
the statement prepared once, as the API's connections do, so a plan PostgreSQL
would swap for a generic one after five runs shows here); the matching jobs'
count (``count_jobs``, a batch's dry run) and its server time; and the indexes
the page's plan reads. Run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from bench.pg import start_server
from bench.sides import WORK
from chronik import Blueprint, Engine, Settings
from chronik._runtime.setup import prepare_database
from chronik.adapters.postgres import event_store, jobs, partitions, upkeep
from chronik.adapters.postgres.queries import QUERIES
from chronik.api.app import create_app
from chronik.core.chain import event_hash
from chronik.core.effects import JobRow
from chronik.core.events import AnyEvent, ErrorInfo, JobCreated, StateEntered, encode_event_data
from chronik.core.evolve import fold
from chronik.core.ids import job_time, new_job_id
from chronik.core.records import JobFilter, id_range
from chronik.core.state import JobState, JobStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=30)
BLUEPRINTS = [f"bp{n}" for n in range(10)]
CLIENTS = [f"c{n:02d}" for n in range(20)]
REGIONS = ["eu", "us", "apac", "latam", "mena", "ca", "uk", "au"]
TEAMS = [f"t{n}" for n in range(12)]
# Per 1,000 jobs: most ended, a few waiting, very few quarantined (the rare status a console seeks).
STATUSES = (
    [JobStatus.FINISHED] * 800
    + [JobStatus.FAILED] * 80
    + [JobStatus.CANCELLED] * 40
    + [JobStatus.WAITING_FOR_WORKER] * 50
    + [JobStatus.RUNNING] * 10
    + [JobStatus.WAITING_FOR_HUMAN] * 15
    + [JobStatus.QUARANTINED] * 5
)
COLUMNS = ["job_id", "blueprint", "status", "current_state", "version", "created_at", "updated_at",
           "finished_at", "state"]  # fmt: skip
CHUNK = 50_000


def job_state(i: int, total: int, job_id: UUID, pick: random.Random) -> JobState:
    """The ``i``-th job of ``total`` (0 is the newest), as its row would hold it.

    Its blueprint, status, client and keys are drawn at random (seeded), not by ``i``'s
    residues: ANALYZE samples rows, and values that repeat with a period of ``i`` would
    line up with its sample and mislead the planner, as no real data does.
    """
    created = NOW - SPAN * (i / total)
    status = STATUSES[pick.randrange(len(STATUSES))]
    ended = status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)
    updated = created + timedelta(seconds=pick.randrange(2, 60))
    return JobState(
        job_id=job_id,
        blueprint=pick.choice(BLUEPRINTS),
        status=status,
        current_state="done" if status == JobStatus.FINISHED else "work",
        initial_data={
            "order": i,
            "customer": f"cust-{pick.randrange(5000)}",
            "region": pick.choice(REGIONS),
            "priority": pick.randrange(3),
        },
        state_history={"checked": True, "score": pick.randrange(100)}
        | ({"done": {"ok": True}} if ended else {}),
        version=6 if ended else 3,
        created_at=created,
        updated_at=updated,
        finished_at=updated if ended else None,
        error=ErrorInfo(code="HANDLER_ERROR", message="boom") if status == JobStatus.FAILED else None,
        client=pick.choice(CLIENTS),
        metadata={"team": pick.choice(TEAMS), "source": pick.choice(("api", "api", "api", "batch"))},
        transitions=2,
        max_transitions=100,
    )


def rows(total: int, start: int, pick: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(start, min(start + CHUNK, total)):
        yield jobs.columns_of(
            JobRow.of(job_state(i, total, UUID(int=pick.getrandbits(128), version=4), pick))
        )


def long_history(count: int) -> list[AnyEvent]:
    """A job that went back and forth between two states ``count - 1`` times."""
    at = NOW - timedelta(days=2)
    job_id = new_job_id(at)  # a UUIDv7: its creation time picks the log's partition
    events: list[AnyEvent] = [
        JobCreated(
            at=at,
            job_id=job_id,
            blueprint="bp0",
            start_state="ping",
            initial_data={"order": -1},
            client="c00",
            max_transitions=1_000_000,
        )
    ]
    for n in range(1, count):
        here, there = ("ping", "pong") if n % 2 else ("pong", "ping")
        events.append(
            StateEntered(at=at + timedelta(seconds=n), state=there, from_state=here, updates={"n": n})
        )
    return events


EVENT_COLUMNS = ["job_id", "job_time", "version", "type", "data", "meta", "recorded_at", "hash"]


def _chained(job_id: UUID, history: list[AnyEvent]) -> tuple[list[tuple[Any, ...]], bytes | None]:
    """The job's events as rows of the log, each hashed onto the one before as the append does; and
    the last hash (the job's ``chain_head``)."""
    records: list[tuple[Any, ...]] = []
    prev: bytes | None = None
    meta = '{"instance": "bench"}'
    for version, event in enumerate(history, start=1):
        tag, data = type(event).__struct_config__.tag, encode_event_data(event).decode()
        prev = event_hash(
            prev, job_id=job_id, version=version, type=tag, data=data, meta=meta, recorded_at=event.at
        )
        records.append((job_id, job_time(job_id), version, tag, data, meta, event.at, prev))
    return records, prev


async def seed(conn: asyncpg.Connection, total: int, events: int) -> UUID:
    """COPY the jobs and the long job's events; rebuild the secondary indexes; analyze."""
    indexes = await upkeep.secondary_indexes(conn, "jobs")
    await upkeep.drop_indexes(conn, indexes)
    started = time.perf_counter()
    pick = random.Random(7)
    for start in range(0, total, CHUNK):
        await conn.copy_records_to_table("jobs", records=rows(total, start, pick), columns=COLUMNS)
    history = long_history(events)
    state = fold(history)
    assert state is not None
    created = state.created_at
    await partitions.ensure(conn, since=created, until=created, days=Settings().partition_days)
    records, head = _chained(state.job_id, history)
    await conn.copy_records_to_table("events", records=records, columns=EVENT_COLUMNS)
    await conn.copy_records_to_table(
        "jobs", records=[(*jobs.columns_of(JobRow.of(state)), head)], columns=[*COLUMNS, "chain_head"]
    )
    copied = time.perf_counter()
    await upkeep.make_indexes(conn, indexes)
    await upkeep.vacuum_analyze(conn, "jobs", "events")
    built = time.perf_counter()
    size = f"{await upkeep.relation_size(conn, 'jobs') / 2**20:,.0f} MB"
    print(
        f"seeded {total:,} jobs + 1 job of {events:,} events: COPY {copied - started:.1f} s, "
        f"{len(indexes)} indexes {built - copied:.1f} s; jobs with its indexes: {size}",
        flush=True,
    )
    differences = await jobs.refold_differences(conn, state.job_id)
    assert not differences, differences  # the long job's row is the fold of its events
    return state.job_id


async def server_ms(conn: asyncpg.Connection, query: str, args: tuple[Any, ...]) -> tuple[float, Any]:
    """Planning plus execution time of one run of ``query``, as the server measured it, and the plan."""
    found = await upkeep.explain(conn, query, *args)
    return float(found["Planning Time"]) + float(found["Execution Time"]), found["Plan"]


def reads(plan: dict[str, Any]) -> list[str]:
    """The indexes (and sequential scans) a plan reads, outermost first."""
    found: list[str] = []
    if "Index Name" in plan:
        found.append(plan["Index Name"])
    elif plan.get("Node Type") == "Seq Scan":
        found.append(f"Seq Scan {plan.get('Relation Name')}")
    for child in plan.get("Plans", []):
        found += [name for name in reads(child) if name not in found]
    return found


async def median_ms(runs: int, call: Callable[[], Awaitable[Any]]) -> float:
    await call()  # warm
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def measure(url: str, runs: int, long_job: UUID, total: int, events: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        middle = NOW - SPAN / 2
        some = await upkeep.job_id_at(conn, total // 3)
        prefix4, prefix2 = str(some)[:4], str(some)[:2]
        cases: list[tuple[str, JobFilter]] = [
            ("none (newest first)", JobFilter()),
            ("status=quarantined (0.5%)", JobFilter(status=JobStatus.QUARANTINED)),
            ("status=failed (8%)", JobFilter(status=JobStatus.FAILED)),
            ("blueprint=bp3 (10%)", JobFilter(blueprint="bp3")),
            (
                "created in one hour",
                JobFilter(created_after=middle, created_before=middle + timedelta(hours=1)),
            ),
            (f"id_prefix={prefix4}", JobFilter(id_prefix=prefix4)),
            (f"id_prefix={prefix2}", JobFilter(id_prefix=prefix2)),
            ("data.order=123456 (1 job)", JobFilter(data={"order": 123456})),
            ("data.customer=cust-42 (0.02%)", JobFilter(data={"customer": "cust-42"})),
            ("data.region=eu (12.5%)", JobFilter(data={"region": "eu"})),
            ("metadata.team=t7 (8%)", JobFilter(metadata={"team": "t7"})),
            ("client c07 (5%)", JobFilter(client="c07")),
            ("client c07, status=quarantined", JobFilter(client="c07", status=JobStatus.QUARANTINED)),
            ("client c07, data.region=eu", JobFilter(client="c07", data={"region": "eu"})),
            ("batch cancel scope, client c07", JobFilter(client="c07", statuses=_UNENDED)),
            ("batch retry scope, everyone", JobFilter(statuses=(JobStatus.QUARANTINED,))),
        ]
        print(f"\nmedian of {runs} runs; page: list_jobs, 50 jobs; count: count_jobs (a batch's dry run)")
        print(
            f"{'filter':<33}{'matches':>9}{'page srv ms':>12}{'page cli ms':>12}{'count srv ms':>13}"
            "  page reads"
        )
        for name, where in cases:
            args = jobs.listing_arguments(where, limit=51, after=None)
            page_server = statistics.median(
                [(await server_ms(conn, QUERIES["list_jobs"], args))[0] for _ in range(runs)]
            )
            _ms, plan = await server_ms(conn, QUERIES["list_jobs"], args)
            client = await median_ms(
                runs, lambda where=where: jobs.list_states(conn, where, limit=50, after=None)
            )
            count = await jobs.count_jobs(conn, where)
            count_args = _count_arguments(where)
            count_server = statistics.median(
                [(await server_ms(conn, QUERIES["count_jobs"], count_args))[0] for _ in range(runs)]
            )
            print(
                f"{name:<33}{count:>9,}{page_server:>12.2f}{client:>12.2f}{count_server:>13.2f}"
                f"  {', '.join(reads(plan))}",
                flush=True,
            )
        history_args = (long_job, 0, 100)
        server = statistics.median(
            [(await server_ms(conn, QUERIES["read_stream"], history_args))[0] for _ in range(runs)]
        )
        _ms, plan = await server_ms(conn, QUERIES["read_stream"], history_args)
        client = await median_ms(runs, lambda: event_store.read_stream(conn, long_job, limit=100))
        page = await event_store.read_stream(conn, long_job, limit=100)
        tail = max(0, events - 100)
        last = await event_store.read_stream(conn, long_job, after_version=tail, limit=100)
        deep = statistics.median(
            [(await server_ms(conn, QUERIES["read_stream"], (long_job, tail, 100)))[0] for _ in range(runs)]
        )
        print(
            f"\nhistory of the job of {events:,} events, first page ({len(page)} events): server "
            f"{server:.2f} ms, client {client:.2f} ms, reads {', '.join(reads(plan))}; last page "
            f"({len(last)} events, after_version={tail}): server {deep:.2f} ms"
        )
    finally:
        await conn.close()


_UNENDED = (
    JobStatus.RUNNING,
    JobStatus.WAITING_FOR_WORKER,
    JobStatus.WAITING_FOR_HUMAN,
    JobStatus.WAITING_FOR_TIMER,
    JobStatus.WAITING_FOR_CHILD,
    JobStatus.QUARANTINED,
)


def _count_arguments(where: JobFilter) -> tuple[Any, ...]:
    """``count_jobs``'s parameters (as ``jobs.count_jobs`` passes them)."""
    low, high = id_range(where.id_prefix) if where.id_prefix is not None else (None, None)
    return (
        where.blueprint,
        where.status,
        where.state,
        where.created_after,
        where.created_before,
        where.client,
        low,
        high,
        None if where.data is None else json.dumps(where.data),
        None if where.metadata is None else json.dumps(where.metadata),
        None if where.statuses is None else list(where.statuses),
    )


async def run(url: str, total: int, events: int, runs: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await prepare_database(conn)
        version = await upkeep.setting(conn, "server_version")
        print(f"PostgreSQL {version} (embedded), {platform.machine()}, {os.cpu_count()} CPUs", flush=True)
        long_job = await seed(conn, total, events)
    finally:
        await conn.close()
    await measure(url, runs, long_job, total, events)
    await measure_pages(url, runs, long_job)


def ping_pong(name: str) -> Blueprint:
    """The seeded jobs' blueprints (the console filters by registered ones); the long job's is bp0."""
    bp = Blueprint(name)

    @bp.handler_for("ping", is_start=True)
    async def ping(actions: Any) -> None:
        actions.transition_to("pong")

    @bp.handler_for("pong")
    async def pong(actions: Any) -> None:
        actions.transition_to("ping")

    return bp


async def measure_pages(url: str, runs: int, long_job: UUID) -> None:
    """The console's pages as a browser gets them: the app in-process (httpx's ASGI transport, so
    the time is the server's: routing, session, queries, templates), signed in as an admin."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would bury the figures
    engine = Engine(
        url,
        blueprints=[ping_pong(name) for name in BLUEPRINTS],
        settings=Settings(client_token="bench-token-0123456789"),
    )
    await engine.start(run_executor=False)
    app = create_app(engine, client_token="bench-token-0123456789", manage_engine=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as browser:
            signed = await browser.post("/console/login", data={"token": "bench-token-0123456789"})
            assert signed.status_code in (200, 303), signed.text
            pages = [
                (f"job page, {long_job} (first response)", f"/console/jobs/{long_job}"),
                ("job page, failures only", f"/console/jobs/{long_job}?failures=1"),
                ("jobs list, no filter", "/console/jobs"),
                ("jobs list, status=quarantined", "/console/jobs?status=quarantined"),
                ("jobs list, blueprint=bp3", "/console/jobs?blueprint=bp3"),
                ("jobs list, data order=123456", "/console/jobs?data=order%3D123456"),
                ("overview", "/console"),
            ]
            print("\nconsole pages (median of", runs, "requests, server time in ms, bytes):")
            for name, path in pages:
                first = await browser.get(path)
                assert first.status_code == 200, (path, first.status_code, first.text[:300])

                async def get(path: str = path) -> None:
                    await browser.get(path)

                print(f"  {name:<60} {await median_ms(runs, get):8.1f}  {len(first.content):>9,}")
    finally:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    server = start_server(WORK / "console-pgdata")
    try:
        url = server.fresh_database("chronik_console")
        asyncio.run(run(url, args.jobs, args.events, args.runs))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
