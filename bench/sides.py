"""The three sides of the benchmark, each as processes to start, a load to run and counters to read.

* chronik: ``chronik serve`` and ``chronik worker`` on a fresh database of the shared
  PostgreSQL (bench/pg.py), followed by the polling client or by the wait client;
* Avtomatika 1.0b30: its orchestrator on the local Redis and its official worker
  (bench/avtomatika/), followed by the polling client;
* Procrastinate 3.10: its worker on a fresh database of the same PostgreSQL, and a
  client that defers jobs and polls their rows (bench/procrastinate/).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import psycopg

from bench.load import WAIT_SECONDS, LoadResult, run_load
from bench.pg import Server

__all__ = ["AvtomatikaSide", "ChronikSide", "ProcrastinateSide", "Side", "Unavailable"]

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
CLIENT_TOKEN = "bench-client-token"
WORKER_ID = "bench-worker"
WORKER_TOKEN = "bench-worker-own-token"


class Unavailable(Exception):
    """A side (or one of its clients) cannot run here; the message says why."""


class Side(ABC):
    """One side and one client: how to start it, load it and read its counters."""

    name: str
    client: str
    database: str | None = None
    """The PostgreSQL database whose transactions are the side's, if it has one."""
    worker_counted: bool = True
    """Whether ``http_counts`` includes the worker's requests."""

    @abstractmethod
    def started(self) -> AbstractContextManager[None]:
        """Start the side's processes (on a fresh store) and stop them when the block ends."""

    @abstractmethod
    def load(self, *, jobs: int, clients: int) -> LoadResult:
        """Run ``jobs`` jobs from ``clients`` concurrent clients."""

    def http_counts(self) -> dict[str, int] | None:
        """Requests the server has received so far, by route group; None without HTTP."""
        return None

    def store_commands(self) -> int | None:
        """Commands a non-PostgreSQL store has run so far (Redis for Avtomatika)."""
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, *, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 300:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


@contextmanager
def processes(*commands: tuple[list[str], dict[str, str], Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start each command (its environment on top of ours, output to its log); SIGTERM them at the end."""
    WORK.mkdir(parents=True, exist_ok=True)
    started = []
    try:
        for argv, env, log in commands:
            started.append(
                subprocess.Popen(
                    argv, env={**os.environ, **env}, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
                )
            )
            time.sleep(0.5)
        yield started
    finally:
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(started):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


class ChronikSide(Side):
    """``chronik serve`` and ``chronik worker`` on a fresh database ``chronik_<client>``."""

    def __init__(self, server: Server, client: str, *, limits: str = "default") -> None:
        self.name, self.client = "chronik", client
        self.limits = limits
        """``default``: every setting as a newcomer meets it; ``raised``: worker limits out of the way."""
        self.server = server
        self.database = self._database = f"chronik_{client}"
        self.url = f"http://127.0.0.1:{free_port()}"

    @contextmanager
    def started(self) -> Iterator[None]:
        dsn = self.server.fresh_database(self._database)
        WORK.mkdir(parents=True, exist_ok=True)
        config = WORK / "chronik-workers.toml"
        config.write_text(f'[{WORKER_ID}]\ntoken = "{WORKER_TOKEN}"\n')
        server_env = {
            "DATABASE_URL": dsn,
            "CLIENT_TOKEN": CLIENT_TOKEN,
            "WORKERS_CONFIG_PATH": str(config),
            "LOG_LEVEL": "WARNING",
        }
        if self.limits == "raised":
            # Avtomatika's side raises its limits out of the way (bench/avtomatika/orchestrator.py);
            # chronik's defaults count only wasted requests, and --limits both shows they cost nothing.
            server_env |= {
                "WORKER_RATE_LIMIT_HEARTBEATS": "1000000000",
                "WORKER_RATE_LIMIT_POLLS": "1000000000",
                "WORKER_RATE_LIMIT_OTHER": "1000000000",
            }
        worker_env = {"WORKER_ID": WORKER_ID, "WORKER_TOKEN": WORKER_TOKEN, "LOG_LEVEL": "WARNING"}
        port = self.url.rsplit(":", 1)[1]
        serve = ["serve", "bench.flows:blueprints", "--host", "127.0.0.1", "--port", port]
        work = ["worker", "bench.flows:worker", "--url", self.url]
        with processes(
            (
                [sys.executable, "-m", "chronik", *serve],
                server_env,
                WORK / f"chronik-{self.client}-server.log",
            ),
            (
                [sys.executable, "-m", "chronik", *work],
                worker_env,
                WORK / f"chronik-{self.client}-worker.log",
            ),
        ):
            wait_ready(f"{self.url}/_public/ready")
            if self.client == "wait":
                self._check_wait_endpoint()
            yield

    def _check_wait_endpoint(self) -> None:
        # Without the parameter the server would answer at once and the client would spin.
        schema = httpx.get(f"{self.url}/_public/docs/openapi.json", timeout=10).json()
        operation = schema.get("paths", {}).get("/api/v1/jobs/{job_id}", {}).get("get", {})
        if not any(p.get("name") == "wait" for p in operation.get("parameters", [])):
            raise Unavailable("GET /api/v1/jobs/{job_id} takes no `wait` parameter in this build")

    def load(self, *, jobs: int, clients: int) -> LoadResult:
        wait = WAIT_SECONDS if self.client == "wait" else None
        return asyncio.run(
            run_load(self.url, endpoint="flow", token=CLIENT_TOKEN, jobs=jobs, clients=clients, wait=wait)
        )

    def http_counts(self) -> dict[str, int]:
        text = httpx.get(f"{self.url}/_public/metrics", timeout=10).text
        found = re.findall(r'^chronik_http_requests_total\{route="(\w+)"\} (\S+)$', text, re.MULTILINE)
        return {group: int(float(value)) for group, value in found}


class AvtomatikaSide(Side):
    """Avtomatika 1.0b30 on Redis: its orchestrator and one official worker, each in its own venv.

    bench/avtomatika/setup.sh makes the venvs (once) and checks that Redis runs.
    Configured as a competent user would: per-worker tokens, text logs at WARNING,
    uvloop, and rate limits raised so that they do not throttle one busy worker
    (see bench/avtomatika/orchestrator.py for every setting and why).
    """

    def __init__(self) -> None:
        from bench.avtomatika import env as avt

        self.avt = avt
        self.name, self.client = "avtomatika", "poll"
        avt.ensure()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.redis = (os.environ.get("REDIS_HOST") or "127.0.0.1", int(os.environ.get("REDIS_PORT") or 6379))

    @contextmanager
    def started(self) -> Iterator[None]:
        avt = self.avt
        port = int(self.url.rsplit(":", 1)[1])
        server_env = avt.orchestrator_env(port=port, client_token=CLIENT_TOKEN)
        worker_env = avt.worker_env(self.url, worker_id="avt-worker-1")
        with processes(
            (avt.orchestrator_cmd(), server_env, WORK / "avtomatika-server.log"),
            (avt.worker_cmd(), worker_env, WORK / "avtomatika-worker.log"),
        ):
            wait_ready(f"{self.url}/_public/status")
            avt.wait_ready(self.url, need_worker=True, client_token=CLIENT_TOKEN, timeout=60)
            yield

    def load(self, *, jobs: int, clients: int) -> LoadResult:
        return asyncio.run(
            run_load(self.url, endpoint="flow", token=CLIENT_TOKEN, jobs=jobs, clients=clients)
        )

    def http_counts(self) -> dict[str, int]:
        # Counted by the middleware that bench/avtomatika/orchestrator.py adds.
        counts: dict[str, int] = httpx.get(f"{self.url}/_bench/requests", timeout=10).json()
        return counts

    def store_commands(self) -> int:
        """Redis's total_commands_processed (server-wide: nothing else uses this Redis during a run)."""
        with socket.create_connection(self.redis, timeout=10) as sock:
            sock.sendall(b"INFO stats\r\n")
            info = _read_bulk(sock)
        match = re.search(rb"total_commands_processed:(\d+)", info)
        if match is None:
            raise RuntimeError(f"no total_commands_processed in Redis's INFO: {info[:200]!r}")
        return int(match.group(1))


def _read_bulk(sock: socket.socket) -> bytes:
    """One RESP bulk string, ``$<length>\\r\\n<payload>\\r\\n``: its payload."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"Redis closed the connection after {data[:200]!r}")
        data += chunk
        header, found, rest = data.partition(b"\r\n")
        if found and header.startswith(b"$") and len(rest) >= int(header[1:]) + 2:
            return rest[: int(header[1:])]


class ProcrastinateSide(Side):
    """Procrastinate 3.10's worker on a fresh database ``procrastinate``, its client as a subprocess.

    bench/procrastinate/setup.sh makes the venv (once). The client runs in that venv
    too (it needs Procrastinate), one process, like the HTTP load generator.
    """

    def __init__(self, server: Server) -> None:
        from bench.procrastinate import env as pro

        self.pro = pro
        self.name, self.client = "procrastinate", "sql-poll"
        self.server = server
        self.database = self._database = "procrastinate"
        self.worker_counted = False
        pro.ensure()

    @contextmanager
    def started(self) -> Iterator[None]:
        pro = self.pro
        self.dsn = self.server.fresh_database(self._database)
        schema = subprocess.run(
            pro.schema_cmd(), env=pro.process_env(self.dsn), cwd=ROOT, capture_output=True
        )
        if schema.returncode:
            raise RuntimeError(f"procrastinate schema --apply failed:\n{schema.stderr.decode()[-2000:]}")
        with processes(
            (
                pro.worker_cmd(),
                pro.process_env(self.dsn, pool_size=pro.WORKER_POOL),
                WORK / "procrastinate-worker.log",
            )
        ):
            self._wait_for_worker()
            yield

    def _wait_for_worker(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
                if row is not None and row[0] > 0:
                    return
                time.sleep(0.2)
        raise RuntimeError(f"no Procrastinate worker registered within {within} s")

    def load(self, *, jobs: int, clients: int) -> LoadResult:
        pro = self.pro
        done = subprocess.run(
            pro.load_cmd(jobs=jobs, clients=clients),
            env=pro.process_env(self.dsn, pool_size=pro.CLIENT_POOL),
            cwd=ROOT,
            capture_output=True,
        )
        if done.returncode:
            raise RuntimeError(f"procrastinate client failed:\n{done.stderr.decode()[-2000:]}")
        found = json.loads(done.stdout)
        return LoadResult(
            jobs, clients, found["seconds"], found["latencies"], found["failed"], found["queries"]
        )
