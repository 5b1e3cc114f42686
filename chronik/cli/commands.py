"""``chronik``'s entry point: parse, run the chosen command, and turn failures into one line and exit 2.

Commands that need the database go through the ``Engine`` facade; what they
print is in ``render``, ``chronik dev`` in ``dev``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID
from zoneinfo import ZoneInfo

from chronik._runtime.replay import divergences
from chronik._runtime.scheduler import check_blueprints
from chronik._runtime.verify import verify_archive_file, verify_chains, verify_job
from chronik.adapters.config import load_schedules
from chronik.adapters.postgres.database import DATABASE_ERRORS
from chronik.adapters.scheduling import describe, next_fire
from chronik.adapters.telemetry.logs import configure_logging
from chronik.adapters.telemetry.tracing import configure_tracing
from chronik.core.errors import ChronikError
from chronik.core.evolve import replay
from chronik.core.graph import to_dot, to_mermaid
from chronik.engine import Engine
from chronik.loader import load_blueprints, load_worker
from chronik.server import serve, serve_processes
from chronik.settings import Settings

from . import render
from .dev import run_dev
from .parser import build_parser

__all__ = ["main"]


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
    except DATABASE_ERRORS as exc:
        where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "the embedded PostgreSQL"
        _fail(f"cannot use the database ({where}): {exc}")
    except KeyboardInterrupt:
        pass


async def _dispatch(args: argparse.Namespace, settings: Settings) -> None:
    match args.command:
        case "dev":
            await run_dev(args, settings)
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
            processes = args.processes or settings.serve_processes
            if processes > 1:
                await serve_processes(
                    args.app,
                    host=args.host,
                    port=args.port,
                    processes=processes,
                    settings=settings,
                    log_level=args.log_level,
                )
                return
            sock = None if args.socket_fd is None else socket.socket(fileno=args.socket_fd)
            await serve(engine, host=args.host, port=args.port, sock=sock, parent_fd=args.parent_fd)
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
            # Archiving needs the blueprints: their own retention_days are part of the policy.
            app = getattr(args, "app", None)
            engine = Engine(blueprints=load_blueprints(app) if app else (), settings=settings)
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
        render.print_job(await engine.get_job(job_id))
    elif args.jobs_command == "replay" and args.blueprint:
        await _divergences(engine, job_id, args)
    elif args.jobs_command == "replay":
        recorded = await engine.job_history(job_id)
        render.print_replay(recorded, replay([r.event for r in recorded]), as_json=args.json)
    else:
        render.print_history(await engine.job_history(job_id), as_json=args.json)


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
    render.print_divergences(job_id, job.blueprint, runs, differing, as_json=args.json)
    if differing:
        sys.exit(1)


def _schedules(args: argparse.Namespace, settings: Settings) -> None:
    path = args.file or settings.schedules_config_path
    if not path:
        raise ChronikError("no schedules file: pass --file or set SCHEDULES_CONFIG_PATH")
    entries = load_schedules(path)
    if args.app:
        check_blueprints(entries, {bp.name: bp for bp in load_blueprints(args.app)}, path)
    tz = ZoneInfo(settings.timezone)
    now = datetime.now(tz)
    rows = []
    for entry in entries:
        upcoming = next_fire(entry, tz, now)
        shown = upcoming.isoformat() if upcoming is not None else "never"
        rows.append(
            render.ScheduleRow(
                name=entry.name, blueprint=entry.blueprint, when=describe(entry), next_fire=shown
            )
        )
    render.print_schedules(rows, timezone=settings.timezone)


async def _projections(engine: Engine, args: argparse.Namespace) -> None:
    if args.projections_command == "status":
        render.print_projection_status(await engine.projection_status())
        return
    try:
        reached = await engine.rebuild_projections(args.name)
    except KeyError as exc:
        if not args.name:
            raise
        # The engine's KeyError names the known projections.
        raise ChronikError(str(exc.args[0])) from None
    render.print_rebuilt(reached)


async def _events(engine: Engine, args: argparse.Namespace) -> None:
    if args.events_command == "archive":
        await _archive(engine, args)
        return
    if args.events_command == "verify":
        await _verify(engine, args)
        return
    if args.events_command == "export":
        with contextlib.ExitStack() as stack:
            out = sys.stdout if not args.output else stack.enter_context(_open(args.output, "w"))
            count = await engine.export_events(out, since=args.since)
        print(f"exported {count} event(s)", file=sys.stderr)
        return
    restore = args.file.endswith(".gz")
    with contextlib.ExitStack() as stack:
        if args.file == "-":
            source: Any = sys.stdin
        elif restore:
            source = stack.enter_context(_open_archive(args.file))
        else:
            source = stack.enter_context(_open(args.file, "r"))
        imported = await engine.import_events(source, name=args.file, restore=restore)
    done = "restored" if restore else "imported"
    print(f"{done} {imported.events} event(s) of {imported.jobs} job(s); projections rebuilt")


async def _archive(engine: Engine, args: argparse.Namespace) -> None:
    archiver = engine.instance.archiver
    await archiver.ensure_partitions()
    plans = await archiver.plan()
    if args.plan:
        render.print_archive_plan(plans)
        return
    due = [plan for plan in plans if plan.leaves and (args.partition in (None, plan.name))]
    if args.partition and not due:
        known = {plan.name: plan for plan in plans}
        why = known[args.partition].reason if args.partition in known else "it is not a closed live partition"
        raise ChronikError(f"{args.partition} does not leave now: {why}")
    for plan in due:
        render.print_archived(await archiver.archive(plan.name))
    if not due:
        print("no partition is due to leave (see --plan)")


async def _verify(engine: Engine, args: argparse.Namespace) -> None:
    if args.archive:
        report = verify_archive_file(Path(args.archive))
    elif args.all:
        report = await verify_chains(engine.database)
    else:
        try:
            job_id = UUID(args.job_id)
        except ValueError:
            raise ChronikError(f"job id {args.job_id!r} is not a UUID") from None
        report = await verify_job(engine.database, job_id)
    render.print_chain_report(report)
    if report.first_break is not None or report.problems:
        sys.exit(1)


def _open_archive(path: str) -> Any:
    try:
        return gzip.open(path, "rt", encoding="utf-8")
    except OSError as exc:
        raise ChronikError(f"cannot open {path}: {exc.strerror}") from None


def _open(path: str, mode: str) -> Any:
    # Blocking file I/O is fine here: the command does nothing else meanwhile.
    try:
        return open(path, mode)  # closed by the caller's ExitStack
    except OSError as exc:
        raise ChronikError(f"cannot open {path}: {exc.strerror}") from None


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
