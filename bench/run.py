"""Benchmark chronik against Avtomatika 1.0b30 and Procrastinate 3.10 on the same job, in one run.

    python -m bench.run                                   # everything: N=2000 jobs, C=64 clients
    python -m bench.run --jobs 300 --clients 16 --side chronik --client wait
    python -m bench.run --side chronik --client poll --processes 1 2   # chronik serve --processes

Sides (bench/sides.py), one after the other, each with one orchestrator (or none)
and one worker process on this machine:

* avtomatika / poll: its orchestrator on the local Redis and its official worker;
* chronik / poll and chronik / wait: ``chronik serve`` and ``chronik worker``, once per
  client, each time on a fresh database of the run's one embedded PostgreSQL;
* procrastinate / sql-poll: its worker on a fresh database of the same PostgreSQL.

The job: start -> one ``echo`` worker task -> end (for Procrastinate, whose jobs
are single tasks, the one task). C clients each start a job and follow it until
it ends, N jobs in all, after a warm-up of 50. The ``poll`` client asks for the
job's status every 50 ms; the ``wait`` client asks ``?wait=20`` and gets the answer
when the job ends; Procrastinate's client defers the job and reads its row every
50 ms. Printed: jobs/s over the whole run; p50/p99 of each job's time from its
create request to the answer that showed it ended; HTTP requests per job (the
clients' own count, and the worker's as the server counted them); PostgreSQL
transactions per job (pg_stat_database of the side's database); and, with
pg_stat_statements, chronik's most frequent statements per job. bench/pg.py
says how the transactions are read. Run by hand; it is not part of the test suite.

``--processes 1 2`` measures chronik once per count of engine processes
(``chronik serve --processes N``, through ``SERVE_PROCESSES``); rows of more than
one process are named ``chronik xN`` and leave out the HTTP counts the server
reports, since each process counts only its own requests.
"""

from __future__ import annotations

import argparse
import json
import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.load import LoadResult
from bench.pg import Server, Statement, start_server
from bench.sides import WORK, AvtomatikaSide, ChronikSide, ProcrastinateSide, Side, Unavailable

WARM_UP = (50, 8)


@dataclass
class Row:
    """One side and client: what the run measured, or why it did not run."""

    side: str
    client: str
    load: LoadResult | None = None
    http_client: int | None = None
    """HTTP requests the clients made (their own count)."""
    http_worker: int | None = None
    """HTTP requests the server received from the worker (None: not counted)."""
    http_client_server: int | None = None
    """HTTP requests the server received from the clients (a check on ``http_client``)."""
    client_db_calls: int | None = None
    """Database calls of a client that talks to PostgreSQL itself."""
    transactions: int | None = None
    """Transactions in the side's database: committed plus rolled back."""
    rollbacks: int | None = None
    store_commands: int | None = None
    statements: list[Statement] = field(default_factory=list)
    skipped: str = ""

    def per_job(self, count: int | None) -> float | None:
        return None if count is None or self.load is None else count / self.load.jobs


def measure(side: Side, server: Server | None, jobs: int, clients: int) -> Row:
    """Start ``side``, warm it up, then run N jobs and read every counter before and after."""
    row = Row(side.name, side.client)
    database = side.database if server is not None else None
    before = (0, 0)
    try:
        with side.started():
            warm = side.load(jobs=WARM_UP[0], clients=WARM_UP[1])
            if warm.failed:
                raise RuntimeError(f"{side.name}/{side.client}: {warm.failed} warm-up jobs did not finish")
            if server is not None and database is not None:
                server.settle()
                before = server.transactions(database)
                server.reset_statements()
            http_before, store_before = side.http_counts(), side.store_commands()
            load = side.load(jobs=jobs, clients=clients)
            http_after, store_after = side.http_counts(), side.store_commands()
            if server is not None and database is not None:
                row.statements = server.statements(database)
    except Unavailable as why:
        row.skipped = str(why)
        print(f"  {side.name:<13} {side.client:<8} skipped: {why}", flush=True)
        return row
    except Exception as error:  # one side's failure must not lose the others' figures
        traceback.print_exc()
        row.skipped = f"failed: {error!r}"[:200]
        print(f"  {side.name:<13} {side.client:<8} {row.skipped}", flush=True)
        return row
    row.load = load
    if http_before is not None and http_after is not None:
        row.http_client = load.requests
        row.http_client_server = http_after["client"] - http_before["client"]
        if side.worker_counted:
            row.http_worker = http_after["worker"] - http_before["worker"]
    else:  # no HTTP at all: the client and the worker talk to PostgreSQL
        row.http_client, row.http_worker, row.client_db_calls = 0, 0, load.requests
    if store_before is not None and store_after is not None:
        row.store_commands = store_after - store_before
    if server is not None and database is not None:
        # The side's processes have stopped: every backend has reported its counters.
        server.wait_until_idle(database)
        after = server.transactions(database)
        row.transactions = after[0] + after[1] - before[0] - before[1]
        row.rollbacks = after[1] - before[1]
    print(f"  {side.name:<13} {side.client:<8} done: {load.jobs_per_second:8.1f} jobs/s", flush=True)
    return row


def _cell(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def report(rows: list[Row]) -> None:
    """Print the table, the notes under it, the ratios and chronik's statements per job."""
    width = max([10, *(len(row.client) + 2 for row in rows)])
    print(
        f"\n{'side':<14}{'client':<{width}}{'jobs/s':>8}{'p50 (s)':>9}{'p99 (s)':>9}{'failed':>8}"
        f"{'HTTP/job':>10}{'client':>8}{'worker':>8}{'xact/job':>10}"
    )
    for row in rows:
        if row.load is None:
            print(f"{row.side:<14}{row.client:<{width}}  skipped: {row.skipped}")
            continue
        load = row.load
        http = (
            None if row.http_client is None or row.http_worker is None else row.http_client + row.http_worker
        )
        print(
            f"{row.side:<14}{row.client:<{width}}{load.jobs_per_second:>8.1f}{load.p50:>9.3f}"
            f"{load.percentile(99):>9.3f}{load.failed:>8}{_cell(row.per_job(http), 10)}"
            f"{_cell(row.per_job(row.http_client), 8)}{_cell(row.per_job(row.http_worker), 8)}"
            f"{_cell(row.per_job(row.transactions), 10)}"
        )
    for row in rows:
        if row.load is None:
            continue
        if row.client_db_calls is not None:
            print(
                f"{row.side}: no HTTP; its client made {row.per_job(row.client_db_calls):.1f} database calls"
                " per job (a defer, then a status read every 50 ms)."
            )
        if row.store_commands is not None:
            print(
                f"{row.side}: no PostgreSQL; Redis ran {row.per_job(row.store_commands):.1f} commands per job"
                " (INFO total_commands_processed)."
            )
        if row.rollbacks:
            print(
                f"{row.side}/{row.client}: {row.per_job(row.rollbacks):.2f} transactions per job rolled back."
            )
        if row.http_client_server is not None and row.http_client_server != row.http_client:
            print(
                f"{row.side}/{row.client}: the server counted {row.http_client_server} client requests,"
                f" the clients {row.http_client}."
            )
    _ratios(rows)
    _statements(rows)


def _ratios(rows: list[Row]) -> None:
    rate = {(r.side, r.client): r.load.jobs_per_second for r in rows if r.load is not None}
    pairs = [
        (("chronik", "wait"), ("procrastinate", "sql-poll")),
        (("chronik", "poll"), ("avtomatika", "poll")),
    ]
    for a, b in pairs:
        if a in rate and b in rate:
            print(f"{'/'.join(a)} vs {'/'.join(b)}: {rate[a] / rate[b]:.2f}x the jobs/s")


def _statements(rows: list[Row], top: int = 10) -> None:
    chronik = [r for r in rows if r.side == "chronik" and r.statements and r.load is not None]
    if not chronik:
        return
    # Keyed by shape: a run may store a statement's constants as written, another as $n.
    per_job = {r.client: {s.shape: s.calls / r.load.jobs for s in r.statements} for r in chronik if r.load}
    clients = list(per_job)
    queries = sorted(
        {q for calls in per_job.values() for q in calls},
        key=lambda q: -sum(c.get(q, 0) for c in per_job.values()),
    )
    print(f"\nchronik: statements per job (pg_stat_statements, top {top})")
    print("  ".join(f"({n}) {c}" for n, c in enumerate(clients, start=1)))
    print("".join(f"{f'({n})':>8}" for n in range(1, len(clients) + 1)) + "  statement")
    print("".join(f"{sum(per_job[c].values()):>8.1f}" for c in clients) + "  (all statements)")
    for query in queries[:top]:
        print("".join(f"{per_job[c].get(query, 0):>8.2f}" for c in clients) + f"  {query[:90]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--side", choices=["all", "chronik", "avtomatika", "procrastinate"], default="all")
    parser.add_argument("--client", choices=["both", "poll", "wait"], default="both", help="chronik's client")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1], metavar="N", help="chronik serve --processes N, each"
    )
    parser.add_argument(
        "--limits",
        choices=["default", "raised", "both"],
        default="default",
        help="chronik's worker limits: as a newcomer meets them, raised out of the way, or both",
    )
    args = parser.parse_args()
    on = {args.side} if args.side != "all" else {"chronik", "avtomatika", "procrastinate"}
    chronik_clients = ["poll", "wait"] if args.client == "both" else [args.client]
    print(f"N={args.jobs} jobs, C={args.clients} clients, one orchestrator and one worker process per side")
    if args.processes != [1]:
        counts = " and ".join(map(str, args.processes))
        print(f"chronik's orchestrator: chronik serve --processes N, N = {counts}")
    rows: list[Row] = []
    if "avtomatika" in on:
        rows.append(measure(AvtomatikaSide(), None, args.jobs, args.clients))
    server = start_server(WORK / "pgdata") if on & {"chronik", "procrastinate"} else None
    try:
        if server is not None and not server.has_statements:
            print(f"  (no statement counts: {server.why_no_statements})")
        if server is not None and "chronik" in on:
            limits = ["default", "raised"] if args.limits == "both" else [args.limits]
            for client in chronik_clients:
                for count in args.processes:
                    for limit in limits:
                        rows.append(_measure_processes(count, server, client, args.jobs, args.clients, limit))
        if server is not None and "procrastinate" in on:
            rows.append(measure(ProcrastinateSide(server), server, args.jobs, args.clients))
    finally:
        if server is not None:
            server.stop()
    report(rows)
    saved = WORK / "last-run.json"
    saved.write_text(json.dumps([_summary(r) for r in rows], indent=1))
    print(f"\n(details: {saved.relative_to(Path.cwd()) if saved.is_relative_to(Path.cwd()) else saved})")


def _measure_processes(
    count: int, server: Server, client: str, jobs: int, clients: int, limits: str = "default"
) -> Row:
    """chronik's row with ``count`` engine processes (``SERVE_PROCESSES``, which the side's
    ``chronik serve`` inherits)."""
    os.environ["SERVE_PROCESSES"] = str(count)
    try:
        row = measure(ChronikSide(server, client, limits=limits), server, jobs, clients)
    finally:
        del os.environ["SERVE_PROCESSES"]
    if limits == "raised":
        row.client = f"{row.client}, limits raised"
    if count > 1:
        row.side = f"chronik x{count}"
        row.http_worker = row.http_client_server = None  # one process's counts, not the server's
    return row


def _summary(row: Row) -> dict[str, object]:
    found = asdict(row)
    if row.load is not None:
        found["load"] = {
            "jobs": row.load.jobs,
            "clients": row.load.clients,
            "seconds": row.load.seconds,
            "jobs_per_second": row.load.jobs_per_second,
            "p50": row.load.p50,
            "p99": row.load.percentile(99),
            "failed": row.load.failed,
            "requests": row.load.requests,
        }
    return found


if __name__ == "__main__":
    main()
