"""The ``chronik`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from chronik.adapters.config import load_schedules
from chronik.adapters.telemetry.logs import configure_logging
from chronik.adapters.telemetry.tracing import configure_tracing
from chronik.api.schemas import HistoryEntry, JobView
from chronik.core.audit import facts_of
from chronik.core.errors import ChronikError
from chronik.core.evolve import evolve, replay
from chronik.core.graph import to_dot, to_mermaid
from chronik.projections.rebuild import rebuild as rebuild_projection
from chronik.projections.rebuild import status as projection_status
from chronik.projections.setup import PROJECTORS, projector_named

from ._runtime.archive import export_events, import_events
from ._runtime.replay import divergences
from ._runtime.scheduler import check_blueprints, describe, trigger_of
from .engine import Engine
from .loader import load_blueprints, load_worker
from .server import serve
from .settings import Settings

__all__ = ["main"]

DEMO_APP = "chronik.demo:blueprints"
DEMO_WORKER = "chronik.demo:worker"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="chronik",
        description="chronik: an event-sourced workflow orchestrator on PostgreSQL. "
        "Without DATABASE_URL it runs on an embedded PostgreSQL kept in CHRONIK_DATA_DIR "
        "(default ./.chronik/pgdata).",
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"), help="default: INFO")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="run an orchestrator for development (embedded PostgreSQL unless DATABASE_URL is set)",
        description="Start PostgreSQL (embedded unless DATABASE_URL is set), migrate, and serve the API. "
        "Uses CLIENT_TOKEN, or generates one and prints it with a curl line that creates a job. "
        "With the demo it also starts the demo's worker as a separate process (GLOBAL_WORKER_TOKEN, "
        "or a generated one, is handed to it).",
    )
    dev.add_argument(
        "app", nargs="?", default=DEMO_APP, help=f"module:attribute of blueprints (default: {DEMO_APP})"
    )
    dev.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    dev.add_argument("--port", type=int, default=8080, help="default: 8080")
    dev.add_argument(
        "--worker",
        metavar="WORKER_APP",
        help=f"also run this chronik.Worker (module:attribute) as a separate process "
        f"(default: {DEMO_WORKER} with the demo, none with your APP)",
    )
    dev.add_argument("--no-worker", action="store_true", help="start no worker process")

    srv = commands.add_parser(
        "serve",
        help="run an orchestrator instance (needs CLIENT_TOKEN or CLIENTS_CONFIG_PATH)",
        description="Migrate and serve the API for APP's blueprints. CLIENT_TOKEN or CLIENTS_CONFIG_PATH "
        "(a clients.toml of named clients) must be set.",
    )
    srv.add_argument("app", help="module:attribute of blueprints, e.g. myflows:blueprints")
    srv.add_argument("--host", default="0.0.0.0", help="default: 0.0.0.0")
    srv.add_argument("--port", type=int, default=8080, help="default: 8080")

    wrk = commands.add_parser(
        "worker",
        help="run a worker process (chronik.Worker)",
        description="Run the chronik.Worker named by APP. The orchestrator's URL comes from --url or "
        "ORCHESTRATOR_URL (default http://127.0.0.1:8080), its token from WORKER_TOKEN, the worker's id "
        "from WORKER_ID (default host-pid). SIGTERM finishes in-flight tasks, a second one exits at once.",
    )
    wrk.add_argument("app", help="module:attribute of a chronik.Worker, e.g. myworkers:worker")
    wrk.add_argument("--url", help="the orchestrator's URL (default: ORCHESTRATOR_URL)")

    blueprint = commands.add_parser("blueprint", help="blueprint commands").add_subparsers(
        dest="blueprint_command", required=True
    )
    graph = blueprint.add_parser(
        "graph",
        help="print a blueprint's state machine as Mermaid (or Graphviz dot)",
        description="Print the state machine of blueprint NAME, with its task transitions, as a Mermaid "
        "stateDiagram (default) or Graphviz dot. Needs no database.",
    )
    graph.add_argument("name", help="the blueprint's name")
    graph.add_argument(
        "--app", default=DEMO_APP, help=f"module:attribute of blueprints (default: {DEMO_APP})"
    )
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid", help="default: mermaid")

    db = commands.add_parser("db", help="database commands").add_subparsers(dest="db_command", required=True)
    db.add_parser("migrate", help="apply pending migrations (idempotent; safe to run from several instances)")

    jobs = commands.add_parser("jobs", help="inspect jobs").add_subparsers(dest="jobs_command", required=True)
    get = jobs.add_parser("get", help="print a job's current state as JSON")
    get.add_argument("job_id", help="the job's id")
    history = jobs.add_parser(
        "history", help="print a job's events: when, what, who did it, in words (--json: the raw events)"
    )
    history.add_argument("job_id", help="the job's id")
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay = jobs.add_parser(
        "replay", help="print the job's state after each of its events (the fold, step by step)"
    )
    replay.add_argument("job_id", help="the job's id")
    replay.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay.add_argument(
        "--blueprint",
        metavar="APP",
        help="instead, run APP's handlers (module:attribute of blueprints) over the job's history and "
        "report each handler run where today's code decides differently; exit 1 when one does",
    )

    projections = commands.add_parser("projections", help="the asynchronous projections").add_subparsers(
        dest="projections_command", required=True
    )
    projections.add_parser(
        "status", help="print each projection's checkpoint and how far behind the log it is"
    )
    rebuild = projections.add_parser(
        "rebuild",
        help="refold a projection from the whole log into a shadow table and swap it in "
        "(while the orchestrator keeps running)",
    )
    rebuild.add_argument("name", nargs="?", help="one projection (default: all)")

    schedules = commands.add_parser("schedules", help="the schedules.toml").add_subparsers(
        dest="schedules_command", required=True
    )
    listing = schedules.add_parser(
        "list",
        help="check a schedules.toml and print each schedule's next fire time (TZ, default UTC)",
    )
    listing.add_argument("--file", help="default: SCHEDULES_CONFIG_PATH")
    listing.add_argument("--app", help="also check that each blueprint is one of APP's (module:attribute)")

    events = commands.add_parser("events", help="export and import the event log").add_subparsers(
        dest="events_command", required=True
    )
    export = events.add_parser(
        "export", help="write the log as JSON lines (one event a line, in position order)"
    )
    export.add_argument("--since", type=int, default=0, metavar="POSITION", help="only events after it")
    export.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    load = events.add_parser(
        "import",
        help="load an export into an empty database, then rebuild every projection, queue and timer",
    )
    load.add_argument("file", help="a file written by chronik events export ('-': standard input)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; errors print one line naming what to fix and exit with 2."""
    args = build_parser().parse_args(argv)
    configure_tracing()
    # People read chronik dev's logs; machines read everything else's.
    default_format = "text" if args.command == "dev" else "json"
    try:
        configure_logging(args.log_level, os.environ.get("LOG_FORMAT") or default_format)
    except ChronikError as exc:
        _fail(exc.message)
    try:
        settings = Settings.from_env()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_dispatch(args, settings))
    except ChronikError as exc:
        _fail(exc.message)
    except (OSError, asyncpg.PostgresError) as exc:
        where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "the embedded PostgreSQL"
        _fail(f"cannot use the database ({where}): {exc}")
    except KeyboardInterrupt:
        pass


async def _dispatch(args: argparse.Namespace, settings: Settings) -> None:
    match args.command:
        case "dev":
            if not settings.client_token:
                settings = msgspec.structs.replace(settings, client_token=secrets.token_urlsafe(24))
            if not settings.global_worker_token and not settings.workers_config_path:
                settings = msgspec.structs.replace(settings, global_worker_token=secrets.token_urlsafe(24))
            engine = Engine(blueprints=load_blueprints(args.app), settings=settings)
            worker_app = (
                None if args.no_worker else args.worker or (DEMO_WORKER if args.app == DEMO_APP else None)
            )
            if worker_app is not None:
                load_worker(worker_app)  # fail now, naming the module, rather than in the child
            async with _worker_process(worker_app, engine, args) as start_worker:

                def ready() -> None:
                    start_worker()
                    _banner(engine, args, worker_app)

                await serve(engine, host=args.host, port=args.port, on_ready=ready)
        case "worker":
            worker = load_worker(args.app)
            if args.url:
                worker.url = args.url
            await worker.serve_until_signalled()
        case "serve":
            engine = Engine(blueprints=load_blueprints(args.app), settings=settings)
            if not settings.client_token and not settings.clients_config_path:
                raise ChronikError(
                    "CLIENT_TOKEN is not set (nor CLIENTS_CONFIG_PATH); clients authenticate with it "
                    "(X-Client-Token)"
                )
            await serve(engine, host=args.host, port=args.port)
        case "blueprint":
            found = {bp.name: bp for bp in load_blueprints(args.app)}
            if args.name not in found:
                raise ChronikError(
                    f"APP {args.app!r} has no blueprint named {args.name!r} "
                    f"(it has: {', '.join(sorted(found))})"
                )
            print((to_dot if args.format == "dot" else to_mermaid)(found[args.name]), end="")
        case "db":
            engine = Engine(settings=settings)
            await engine.start(run_executor=False)
            await engine.stop()
            print("database is up to date")
        case "jobs":
            engine = Engine(settings=settings)
            await engine.start(run_migrations=False, run_executor=False)
            try:
                await _jobs(engine, args)
            finally:
                await engine.stop()
        case "schedules":
            _schedules(args, settings)
        case "projections" | "events":
            engine = Engine(settings=settings)
            await engine.start(run_executor=False)
            try:
                if args.command == "projections":
                    await _projections(engine, args)
                else:
                    await _events(engine, args)
            finally:
                await engine.stop()


async def _jobs(engine: Engine, args: argparse.Namespace) -> None:
    try:
        job_id = UUID(args.job_id)
    except ValueError:
        raise ChronikError(f"job id {args.job_id!r} is not a UUID") from None
    if args.jobs_command == "get":
        view = JobView.of(await engine.get_job(job_id))
        print(json.dumps(msgspec.to_builtins(view), indent=2))
        return
    if args.jobs_command == "replay" and args.blueprint:
        await _divergences(engine, job_id, args)
        return
    if args.jobs_command == "replay":
        recorded = await engine.job_history(job_id)
        states = replay([r.event for r in recorded])
        if args.json:
            steps = [{"version": r.version, "type": r.type, "state": msgspec.to_builtins(JobView.of(s))}
                     for r, s in zip(recorded, states, strict=True)]  # fmt: skip
            print(json.dumps(steps, indent=2))
            return
        print(f"{'VERSION':>7}  {'EVENT':<18}  {'STATUS':<18}  {'STATE':<16}  STATE_HISTORY")
        for r, s in zip(recorded, states, strict=True):
            history = json.dumps(s.state_history, separators=(",", ":"), sort_keys=True)
            print(f"{r.version:>7}  {r.type:<18}  {s.status:<18}  {s.current_state:<16}  {history}")
        return
    recorded = await engine.job_history(job_id)
    if args.json:
        print(json.dumps(msgspec.to_builtins([HistoryEntry.of(e) for e in recorded]), indent=2))
        return
    print(f"{'VERSION':>7}  {'AT':<32}  {'TYPE':<18}  {'ACTOR':<12}  WHAT HAPPENED")
    state = None
    for entry in recorded:
        facts = facts_of(entry.event, state, entry.meta)
        state = evolve(state, entry.event)
        print(
            f"{entry.version:>7}  {entry.event.at.isoformat():<32}  {entry.type:<18}  {facts.actor:<12}  "
            f"{facts.summary}"
        )


async def _divergences(engine: Engine, job_id: UUID, args: argparse.Namespace) -> None:
    found = {bp.name: bp for bp in load_blueprints(args.blueprint)}
    job = await engine.get_job(job_id)
    blueprint = found.get(job.blueprint)
    if blueprint is None:
        raise ChronikError(
            f"APP {args.blueprint!r} has no blueprint named {job.blueprint!r}, the blueprint of job {job_id} "
            f"(it has: {', '.join(sorted(found)) or 'none'})"
        )
    events = [recorded.event for recorded in await engine.job_history(job_id)]
    runs, differing = await divergences(blueprint, events, blueprints=found)
    if args.json:
        print(json.dumps({"handler_runs": runs, "divergences": msgspec.to_builtins(differing)}, indent=2))
    elif not differing:
        print(f"job {job_id}: today's {job.blueprint!r} decides as history did at all {runs} handler run(s)")
    else:
        print(f"job {job_id}: {len(differing)} of {runs} handler run(s) would be decided differently today")
        for divergence in differing:
            print(f"\n  at version {divergence.version}, in state {divergence.state!r}:")
            print(f"    history:  {_describe(divergence.recorded)}")
            print(f"    today:    {_describe(divergence.decided)}")
    if differing:
        sys.exit(1)


def _describe(events: list[dict[str, Any]]) -> str:
    shown = []
    for event in events:
        fields = {k: v for k, v in event.items() if k not in ("type", "at") and v not in ({}, [], None, "")}
        shown.append(f"{event['type']} {json.dumps(fields, separators=(',', ':'), sort_keys=True)}")
    return "; ".join(shown)


def _schedules(args: argparse.Namespace, settings: Settings) -> None:
    path = args.file or settings.schedules_config_path
    if not path:
        raise ChronikError("no schedules file: pass --file or set SCHEDULES_CONFIG_PATH")
    entries = load_schedules(path)
    if args.app:
        check_blueprints(entries, {bp.name: bp for bp in load_blueprints(args.app)}, path)
    tz = ZoneInfo(settings.timezone)
    now = datetime.now(tz)
    print(f"{'SCHEDULE':<24}  {'BLUEPRINT':<20}  {'WHEN':<28}  NEXT FIRE ({settings.timezone})")
    for entry in entries:
        upcoming = trigger_of(entry, tz).get_next_fire_time(None, now)
        shown = upcoming.isoformat() if upcoming is not None else "never"
        print(f"{entry.name:<24}  {entry.blueprint:<20}  {describe(entry):<28}  {shown}")


async def _projections(engine: Engine, args: argparse.Namespace) -> None:
    async with engine.store.pool.acquire() as conn:
        if args.projections_command == "status":
            header = ("PROJECTION", "VERSION", "POSITION", "LAG EVENTS", "LAG S", "UPDATED AT")
            print("{:<16}  {:>7}  {:>10}  {:>10}  {:>8}  {}".format(*header))
            for found in await projection_status(conn):
                print(
                    f"{found.name:<16}  {found.version:>7}  {found.position:>10}  {found.lag_events:>10}  "
                    f"{found.lag_seconds:>8.1f}  {found.updated_at.isoformat()}"
                )
            return
        try:
            chosen = [projector_named(args.name)] if args.name else list(PROJECTORS)
        except KeyError as exc:
            raise ChronikError(str(exc.args[0])) from None
        for projector in chosen:
            reached = await rebuild_projection(conn, projector)
            print(f"{projector.name}: rebuilt from the log up to position {reached.position}")


async def _events(engine: Engine, args: argparse.Namespace) -> None:
    if args.events_command == "export":
        with contextlib.ExitStack() as stack:
            out = sys.stdout if not args.output else stack.enter_context(_open(args.output, "w"))
            count = await export_events(engine.store, out, since=args.since)
        print(f"exported {count} event(s)", file=sys.stderr)
        return
    with contextlib.ExitStack() as stack:
        source = sys.stdin if args.file == "-" else stack.enter_context(_open(args.file, "r"))
        imported = await import_events(engine.store, source, name=args.file)
    print(f"imported {imported.events} event(s) of {imported.jobs} job(s); projections rebuilt")


def _open(path: str, mode: str) -> Any:
    # Blocking file I/O is fine here: the command does nothing else meanwhile.
    try:
        return open(path, mode)  # closed by the caller's ExitStack
    except OSError as exc:
        raise ChronikError(f"cannot open {path}: {exc.strerror}") from None


@contextlib.asynccontextmanager
async def _worker_process(
    worker_app: str | None, engine: Engine, args: argparse.Namespace
) -> AsyncIterator[Callable[[], None]]:
    """A function that starts ``chronik worker WORKER_APP`` against this server; stopped on exit."""
    children: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        if worker_app is None:
            return
        env = {
            **os.environ,
            "ORCHESTRATOR_URL": f"http://{args.host}:{args.port}",
            "WORKER_TOKEN": engine.settings.global_worker_token or "",
        }
        children.append(subprocess.Popen([sys.executable, "-m", "chronik", "worker", worker_app], env=env))

    try:
        yield start
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                await asyncio.to_thread(child.wait, 30)
            except subprocess.TimeoutExpired:
                child.kill()


def _banner(engine: Engine, args: argparse.Namespace, worker_app: str | None) -> None:
    url = f"http://{args.host}:{args.port}"
    token = engine.settings.client_token
    endpoint = next(iter(sorted(engine._endpoints)), "demo")
    print(
        f"\nchronik is serving {', '.join(sorted(engine.blueprints))} at {url}\n"
        f"  database:     {_redact(engine.database_url)}\n"
        f"  worker:       {worker_app or 'none started (run: chronik worker APP)'}\n"
        f"  client token: {token}\n"
        f"  API docs:     {url}/_public/docs\n\n"
        "Create a job:\n"
        f"  curl -s -X POST {url}/api/v1/jobs/{endpoint} -H 'X-Client-Token: {token}' "
        '-H \'Content-Type: application/json\' -d \'{"initial_data": {"name": "Ada"}}\'\n'
        "Then follow it:\n"
        f"  curl -s {url}/api/v1/jobs/JOB_ID -H 'X-Client-Token: {token}'\n"
        f"  curl -s {url}/api/v1/jobs/JOB_ID/history -H 'X-Client-Token: {token}'\n",
        flush=True,
    )


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (not on Windows): the HTTP and database I/O runs markedly faster on it."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _fail(message: str) -> NoReturn:
    print(f"chronik: error: {message}", file=sys.stderr)
    sys.exit(2)
