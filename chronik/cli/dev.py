"""``chronik dev``: an orchestrator for development, its worker process, and a banner on using them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import msgspec

from chronik.engine import Engine
from chronik.loader import load_blueprints, load_worker
from chronik.server import serve
from chronik.settings import Settings

from .parser import DEMO_APP, DEMO_WORKER

__all__ = ["run_dev"]


async def run_dev(args: argparse.Namespace, settings: Settings) -> None:
    """Serve APP's blueprints with generated tokens where none are set, beside a worker process."""
    if not settings.client_token:
        settings = msgspec.structs.replace(settings, client_token=secrets.token_urlsafe(24))
    if not settings.global_worker_token and not settings.workers_config_path:
        settings = msgspec.structs.replace(settings, global_worker_token=secrets.token_urlsafe(24))
    if not settings.webhook_secret:
        # Webhooks are signed, so a create with a webhook_url needs one; a newcomer gets it printed.
        settings = msgspec.structs.replace(settings, webhook_secret=secrets.token_urlsafe(24))
    engine = Engine(blueprints=load_blueprints(args.app), settings=settings)
    worker_app = None if args.no_worker else args.worker or (DEMO_WORKER if args.app == DEMO_APP else None)
    if worker_app is not None:
        load_worker(worker_app)  # fail now, naming the module, rather than in the child
    async with _worker_process(worker_app, engine, args) as start_worker:

        def ready() -> None:
            start_worker()
            _banner(engine, args, worker_app)

        await serve(engine, host=args.host, port=args.port, on_ready=ready)


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
            # The worker never outlives chronik dev: it drains and exits once this process is gone.
            "CHRONIK_PARENT_PID": str(os.getpid()),
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
    endpoint = next(iter(sorted(engine.blueprints.endpoints)), "demo")
    console = f"{url}/console (sign in with the client token)"
    if not engine.settings.console_enabled:
        console = "off (CONSOLE_ENABLED=false)"
    elif not engine.settings.enable_client_api:  # it signs in with client tokens: none without the API
        console = "off (ENABLE_CLIENT_API=false)"
    print(
        f"\nchronik is serving {', '.join(sorted(engine.blueprints))} at {url}\n"
        f"  database:     {_redact(engine.database_url)}\n"
        f"  worker:       {worker_app or 'none started (run: chronik worker APP)'}\n"
        f"  client token: {token}\n"
        f"  webhook secret: {engine.settings.webhook_secret} (signs X-Chronik-Signature)\n"
        f"  API docs:     {url}/_public/docs\n"
        f"  web console:  {console}\n\n"
        "Create a job:\n"
        f"  curl -s -X POST {url}/api/v1/jobs/{endpoint} -H 'X-Client-Token: {token}' "
        '-H \'Content-Type: application/json\' -d \'{"initial_data": {"name": "Ada"}}\'\n'
        "Then follow it:\n"
        f"  curl -s '{url}/api/v1/jobs/JOB_ID?wait=30' -H 'X-Client-Token: {token}'\n"
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
