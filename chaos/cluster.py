"""Two orchestrator instances and two workers as subprocesses, which the harness may kill and restart.

Both instances run ``chronik serve`` of chronik's demo and the harness's blueprints on one
DATABASE_URL, each on a port of its own; each worker talks to one instance. Every
process's stdout and stderr go to one log file per process under the run's folder
(appended to across restarts), read by ``log_problems`` at the end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["CLIENT_TOKEN", "WEBHOOK_SECRET", "Cluster", "Process"]

ROOT = Path(__file__).resolve().parents[1]
CLIENT_TOKEN = "chaos-client-token"
WORKER_TOKEN = "chaos-worker-token"
WEBHOOK_SECRET = "chaos-webhook-secret"
APP = "chaos.flows:blueprints"
WORKER_APP = "chaos.flows:worker"

SETTINGS = {
    # A killed instance's claimed steps and a killed worker's tasks come back when their lease
    # ends: 300 s and 60 s by default, longer than the harness's 30 s recovery window. Shorter
    # leases here so that recovery is measured rather than the lease; docs/reliability.md says so.
    "STEP_LEASE_SECONDS": "10",
    "TASK_LEASE_SECONDS": "10",
    "WATCHER_INTERVAL_SECONDS": "1",
    # The receiver (chaos/receiver.py) refuses one request in ten; the first retry comes within
    # half a second instead of two, so that a run's notifications are all in when it ends.
    "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One subprocess of the cluster, restartable: its command, environment and log."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        with self.log.open("ab") as out:
            out.write(f"--- chaos: {self.name} killed with SIGKILL and started again ---\n".encode())
        self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Cluster:
    """Two ``chronik serve`` instances and two ``chronik worker`` processes on one database."""

    dsn: str
    folder: Path
    instances: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {
            "DATABASE_URL": self.dsn,
            "CLIENT_TOKEN": CLIENT_TOKEN,
            "GLOBAL_WORKER_TOKEN": WORKER_TOKEN,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOG_LEVEL": "INFO",
            **SETTINGS,
        }
        for n in (1, 2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            self.urls.append(url)
            argv = [sys.executable, "-m", "chronik", "serve", APP, "--host", "127.0.0.1", "--port", str(port)]
            self.instances.append(Process(f"instance-{n}", argv, env, self.folder / f"instance-{n}.log"))
        for process in self.instances:
            process.start()
        for url in self.urls:
            wait_ready(url)
        for n, url in enumerate(self.urls, 1):
            argv = [sys.executable, "-m", "chronik", "worker", WORKER_APP, "--url", url]
            worker_env = {"WORKER_ID": f"chaos-worker-{n}", "WORKER_TOKEN": WORKER_TOKEN, "LOG_LEVEL": "INFO"}
            self.workers.append(Process(f"worker-{n}", argv, worker_env, self.folder / f"worker-{n}.log"))
        for process in self.workers:
            process.start()

    def stop(self) -> None:
        for process in [*self.workers, *self.instances]:
            process.stop()

    def log_problems(self) -> list[tuple[str, str]]:
        """Every line of every log that reports an error or a traceback: (process, line)."""
        found = []
        for process in [*self.instances, *self.workers]:
            if not process.log.exists():
                continue
            for line in process.log.read_text(errors="replace").splitlines():
                if _PROBLEM.search(line):
                    found.append((process.name, line))
        return found


_PROBLEM = re.compile(r'Traceback|"level": "(error|critical)"|\b(ERROR|CRITICAL)\b')


def wait_ready(url: str, *, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_public/ready", timeout=2).status_code < 300:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")
