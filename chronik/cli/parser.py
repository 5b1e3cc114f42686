"""The ``chronik`` argument parser: every subcommand, its options and its ``--help`` text."""

from __future__ import annotations

import argparse
import os

__all__ = ["DEMO_APP", "DEMO_WORKER", "build_parser"]

DEMO_APP = "chronik.demo:blueprints"
"""The blueprints ``chronik dev`` serves when given no APP."""

DEMO_WORKER = "chronik.demo:worker"
"""The worker ``chronik dev`` starts beside the demo."""


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
        "Uses CLIENT_TOKEN (and WEBHOOK_SECRET), or generates one and prints it with a curl line that "
        "creates a job. "
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
        "(a clients.toml of named clients) must be set. With TLS_CERT_PATH it serves HTTPS, and with "
        "TLS_CA_PATH it authenticates workers by their client certificates (WORKER_AUTH_MODE).",
    )
    srv.add_argument("app", help="module:attribute of blueprints, e.g. myflows:blueprints")
    srv.add_argument("--host", default="0.0.0.0", help="default: 0.0.0.0")
    srv.add_argument("--port", type=int, default=8080, help="default: 8080")
    srv.add_argument(
        "--processes",
        type=_positive,
        metavar="N",
        help="run N engine processes on the port, one per core (default: SERVE_PROCESSES, else 1); "
        "they are stopped together, and if one exits the others stop and the command fails",
    )
    # How the processes of --processes start their children: not for people.
    srv.add_argument("--socket-fd", type=int, help=argparse.SUPPRESS)
    srv.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)

    wrk = commands.add_parser(
        "worker",
        help="run a worker process (chronik.Worker)",
        description="Run the chronik.Worker named by APP. The orchestrator's URL comes from --url or "
        "ORCHESTRATOR_URL (default http://127.0.0.1:8080), its token from WORKER_TOKEN, the worker's id "
        "from WORKER_ID (default host-pid); over HTTPS, its client certificate from TLS_CERT_PATH and "
        "TLS_KEY_PATH and the orchestrator's CA from TLS_CA_PATH. SIGTERM finishes in-flight tasks, a "
        "second one exits at once.",
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

    events = commands.add_parser(
        "events", help="export, import, archive and verify the event log"
    ).add_subparsers(dest="events_command", required=True)
    export = events.add_parser(
        "export", help="write the log as JSON lines (one event a line, in position order)"
    )
    export.add_argument("--since", type=int, default=0, metavar="POSITION", help="only events after it")
    export.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    load = events.add_parser(
        "import",
        help="load an export into an empty database, then rebuild every projection, queue and timer",
    )
    load.add_argument(
        "file",
        help="a file written by chronik events export ('-': standard input), or an archive file "
        "(*.jsonl.gz) to restore: its jobs come back into the log",
    )
    archive = events.add_parser(
        "archive",
        help="archive the partitions past retention (RETENTION_DAYS) to ARCHIVE_URL, verify, then drop them",
    )
    archive.add_argument(
        "--plan", action="store_true", help="only show each closed partition: would it leave, and if not, why"
    )
    archive.add_argument("--partition", metavar="NAME", help="archive this partition only (it must be due)")
    archive.add_argument(
        "--app",
        required=True,
        help="the blueprints (module:attribute) whose own retention_days are part of the policy",
    )
    verify = events.add_parser(
        "verify", help="walk the hash chains; name the first job and version that does not match"
    )
    target = verify.add_mutually_exclusive_group(required=True)
    target.add_argument("job_id", nargs="?", help="one job's chain in the database")
    target.add_argument("--all", action="store_true", help="every job's chain in the database")
    target.add_argument(
        "--archive",
        metavar="FILE",
        help="an archive file (its manifest beside it): size, SHA-256, every chain",
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value
