"""What the hash chain costs: commit throughput with the real ``chronik_chain_v1`` and without hashing.

    python -m bench.chain_cost                           # 1,000 jobs a round, 3 rounds of each
    python -m bench.chain_cost --jobs 200 --rounds 2     # a smoke run

On one fresh database (an embedded PostgreSQL as bench/pg.py starts it, or a database
``chronik_chain_cost`` made on DATABASE_URL's server), migrated by chronik's migrator,
an ``Engine`` in this process (no HTTP; its executor runs the handlers) creates
``--jobs`` jobs of chronik.demo's ``review`` blueprint (``amount`` 10: check ->
approved, three events: JobCreated, StateEntered, JobFinished) from ``--concurrency``
tasks, each creating a job and waiting for it to finish. A round's rate is its jobs
over the time from the first create to the last finish, after a warm-up.

Two variants of ``chronik_chain_v1``, the function every append calls to chain its
events' hashes, alternate A B A B ... (``--rounds`` of each), each round on a new
Engine (a new pool: no session keeps a plan or a compiled function across a swap):

* A, chained: the migration's own function (restored from ``pg_get_functiondef``);
* B, unchained: a stand-in returning as many constant 32-byte hashes (see ``UNCHAINED``).

Printed: each round's jobs/s and events/s and, when the server has pg_stat_statements
(the embedded one does: bench/pg.py preloads it), the mean server time of the append
statement (``commit_job``, the one statement that calls ``chronik_chain_v1``) over the
round's commits; the median of each variant and the chain's cost (1 - A/B of jobs/s,
and B - A of the append's time, in % of A); and the server's time to hash one event
(``chronik_event_hash_v1`` over every event of the run, with EXPLAIN ANALYZE). The
append's time is the steadier figure on a busy machine: jobs/s moves with anything
else the machine does. Run by hand; not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from dataclasses import dataclass

import asyncpg

from bench.growth import fresh_database
from chronik import Engine, Settings
from chronik._runtime.setup import prepare_database
from chronik.adapters.postgres import upkeep
from chronik.adapters.postgres.archive import count_events
from chronik.adapters.telemetry.logs import configure_logging
from chronik.demo import review

DATABASE = "chronik_chain_cost"
WARM = 50

# Bench-only SQL, run on the scratch database this bench made and nowhere else: it replaces a
# function of chronik's schema, which is never done to a database that holds real history (the
# chain would be constant from then on). Same signature and result shape as the real one, one
# hash per event, so the append statement runs unchanged; only the hashing (and the head it
# chains from) is gone.
UNCHAINED = """
CREATE OR REPLACE FUNCTION chronik_chain_v1(prev bytea, job_id uuid, versions integer[], types text[],
                                            data jsonb[], meta jsonb[], recorded_at timestamptz[])
RETURNS bytea[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_fill(decode(repeat('ab', 32), 'hex'), ARRAY[coalesce(cardinality(versions), 0)])
$$
"""
_DEFINITION = "SELECT pg_get_functiondef('chronik_chain_v1'::regproc)"
# Hashes every event of the log once; the bench reads the server's time for it (EXPLAIN ANALYZE).
_HASH_ALL = (
    "SELECT count(chronik_event_hash_v1(NULL, job_id, version, type, data, meta, recorded_at)) FROM events"
)
# The append statement's calls and time since the last reset, from pg_stat_statements.
_STATEMENTS = "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
_RESET = "SELECT pg_stat_statements_reset()"
_APPENDS = (
    "SELECT coalesce(sum(calls), 0)::bigint AS calls, coalesce(sum(total_exec_time), 0) AS ms"
    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND query LIKE '%chronik_chain_v1(%'"
)
_VARIANTS = ("chained", "unchained")


@dataclass
class Round:
    """One round of one variant."""

    variant: str
    rate: float
    """Jobs/s."""
    events: int
    """Events appended by the round's jobs."""
    appends: int = 0
    append_ms: float | None = None
    """Mean server time of one append (pg_stat_statements), None without it."""


async def prepare(dsn: str) -> tuple[str, str, bool]:
    """Migrate; the real chronik_chain_v1's definition, the server's version, and whether
    pg_stat_statements answers (bench-only: the extension is made in this scratch database)."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_database(conn)
        definition, version = await conn.fetchval(_DEFINITION), await upkeep.setting(conn, "server_version")
        try:
            await conn.execute(_STATEMENTS)
            await conn.fetchrow(_APPENDS)
        except asyncpg.PostgresError:  # not preloaded on DATABASE_URL's server, or not allowed
            return definition, version, False
        return definition, version, True
    finally:
        await conn.close()


async def use(dsn: str, definition: str) -> None:
    """Make ``definition`` the database's chronik_chain_v1."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(definition)
    finally:
        await conn.close()


async def one_round(dsn: str, variant: str, *, jobs: int, concurrency: int, statements: bool) -> Round:
    """``jobs`` review jobs from ``concurrency`` tasks on a new Engine, after a warm-up."""
    engine = Engine(dsn, blueprints=[review], settings=Settings())
    counters = await asyncpg.connect(dsn)  # the bench's own: the engine's pool stays chronik's
    await engine.start()
    try:
        await _run(engine, WARM, concurrency)
        before = await count_events(counters)
        if statements:
            await counters.execute(_RESET)
        began = time.perf_counter()
        await _run(engine, jobs, concurrency)
        seconds = time.perf_counter() - began
        appended = await count_events(counters) - before
        found = Round(variant, jobs / seconds, appended)
        if statements:
            row = await counters.fetchrow(_APPENDS)
            found.appends = row["calls"]
            found.append_ms = row["ms"] / row["calls"] if row["calls"] else None
    finally:
        await engine.stop()
        await counters.close()
    return found


async def _run(engine: Engine, jobs: int, concurrency: int) -> None:
    remaining = jobs

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            job = await engine.create_job(review, {"amount": 10})
            state, _progress = await engine.wait_for_job(job.job_id, 60)
            if state.status != "finished":
                raise RuntimeError(f"job {job.job_id} is {state.status}, not finished, after 60 s")

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def hash_cost(dsn: str) -> tuple[int, float]:
    """Events in the log, and the server's microseconds to hash one of them."""
    conn = await asyncpg.connect(dsn)
    try:
        events = await count_events(conn)
        found = await upkeep.explain(conn, _HASH_ALL)
    finally:
        await conn.close()
    return events, float(found["Execution Time"]) * 1000 / max(1, events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each variant, alternating")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks creating and awaiting jobs")
    args = parser.parse_args()
    configure_logging("WARNING", "text")
    rounds: list[Round] = []
    with fresh_database(DATABASE) as (dsn, where):
        chained, version, statements = asyncio.run(prepare(dsn))
        print(
            f"PostgreSQL {version} ({where}), {platform.machine()}, {os.cpu_count()} CPUs; "
            f"{args.jobs} review jobs a round from {args.concurrency} tasks, in-process Engine"
        )
        if not statements:
            print("  (no append times: pg_stat_statements is not loaded on this server)")
        print(f"{'round':<7}{'variant':<11}{'jobs/s':>9}{'events/s':>10}{'appends':>9}{'ms/append':>11}")
        for n in range(1, args.rounds + 1):
            for variant, definition in zip(_VARIANTS, (chained, UNCHAINED), strict=True):
                asyncio.run(use(dsn, definition))
                found = asyncio.run(
                    one_round(
                        dsn, variant, jobs=args.jobs, concurrency=args.concurrency, statements=statements
                    )
                )
                rounds.append(found)
                ms = "n/a" if found.append_ms is None else f"{found.append_ms:.3f}"
                print(
                    f"{n:<7}{variant:<11}{found.rate:>9.1f}{found.rate * found.events / args.jobs:>10.1f}"
                    f"{found.appends:>9}{ms:>11}",
                    flush=True,
                )
        asyncio.run(use(dsn, chained))
        events, micros = asyncio.run(hash_cost(dsn))
    report(rounds)
    print(
        f"chronik_event_hash_v1: {micros:.1f} us of server time an event (over the run's {events:,} events)"
    )


def report(rounds: list[Round]) -> None:
    """The medians of each variant and what the chain costs."""
    rate = {v: [r.rate for r in rounds if r.variant == v] for v in _VARIANTS}
    a, b = (statistics.median(rate[v]) for v in _VARIANTS)
    spread = ", ".join(f"{v} {min(rate[v]):.0f}-{max(rate[v]):.0f}" for v in _VARIANTS)
    print(
        f"\nmedian jobs/s: chained {a:.1f}, unchained {b:.1f} (rounds: {spread});"
        f" the chain costs {100 * (1 - a / b):+.1f}% of jobs/s"
    )
    times = {
        v: [r.append_ms for r in rounds if r.variant == v and r.append_ms is not None] for v in _VARIANTS
    }
    if all(times.values()):
        ta, tb = (statistics.median(times[v]) for v in _VARIANTS)
        print(
            f"median server time of an append (commit_job): chained {ta:.3f} ms, unchained {tb:.3f} ms;"
            f" the chain costs {1000 * (ta - tb):+.1f} us an append ({100 * (ta - tb) / ta:+.1f}%)"
        )


if __name__ == "__main__":
    main()
