"""Benchmark chronik against Avtomatika 1.0b30 on the same flow, in the same run.

    python -m bench.run                      # both sides, N=2000 jobs, C=64 clients
    python -m bench.run --jobs 500 --clients 16 --side chronik

Each side runs one orchestrator process and one worker process on this machine:
chronik on its embedded PostgreSQL (a fresh data folder each run), Avtomatika on
the local Redis (see bench/avtomatika/). The same load generator drives both: C
clients, each creating a job (start -> one worker task -> finished) and polling
its status every 50 ms until it ends. Printed: jobs/s over the whole run, and
the p50/p99 of each job's latency from its create request to the poll that saw
it finished. Run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.load import LoadResult, run_load

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
CLIENT_TOKEN = "bench-client-token"
WORKER_ID = "bench-worker"
WORKER_TOKEN = "bench-worker-own-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, *, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


@contextmanager
def processes(*commands: tuple[list[str], dict[str, str], Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
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


def chronik_side() -> tuple[str, Callable[[], object]]:
    """Commands for chronik: ``chronik serve`` on a fresh embedded PostgreSQL, and ``chronik worker``."""
    port = free_port()
    data = WORK / "chronik-pgdata"
    shutil.rmtree(data, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    config = WORK / "chronik-workers.toml"
    config.write_text(f'[{WORKER_ID}]\ntoken = "{WORKER_TOKEN}"\n')
    url = f"http://127.0.0.1:{port}"
    server_env = {
        "CLIENT_TOKEN": CLIENT_TOKEN,
        "WORKERS_CONFIG_PATH": str(config),
        "CHRONIK_DATA_DIR": str(data),
        "LOG_LEVEL": "WARNING",
        # As on Avtomatika's side (bench/avtomatika/orchestrator.py): limits raised out of the
        # way, the limiter still on, so each worker call still pays for its counter.
        "WORKER_RATE_LIMIT_HEARTBEATS": "1000000000",
        "WORKER_RATE_LIMIT_POLLS": "1000000000",
        "WORKER_RATE_LIMIT_OTHER": "1000000000",
    }
    server_env.pop("DATABASE_URL", None)
    worker_env = {"WORKER_ID": WORKER_ID, "WORKER_TOKEN": WORKER_TOKEN, "LOG_LEVEL": "WARNING"}
    python = sys.executable

    def start() -> object:
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        serve = ["serve", "bench.flows:blueprints", "--host", "127.0.0.1", "--port", str(port)]
        work = ["worker", "bench.flows:worker", "--url", url]
        return processes(
            ([python, "-m", "chronik", *serve], server_env, WORK / "chronik-server.log"),
            ([python, "-m", "chronik", *work], worker_env, WORK / "chronik-worker.log"),
        )

    return url, start


def avtomatika_side() -> tuple[str, Callable[[], object]]:
    """Avtomatika 1.0b30 on Redis: its orchestrator and one official worker, each in its own venv.

    bench/avtomatika/setup.sh makes the venvs (once) and checks that Redis runs.
    Configured as a competent user would: per-worker tokens, text logs at WARNING,
    uvloop, and rate limits raised so that they do not throttle one busy worker
    (see bench/avtomatika/orchestrator.py for every setting and why).
    """
    from bench.avtomatika import env as avt

    avt.ensure()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    WORK.mkdir(parents=True, exist_ok=True)

    def start() -> object:
        server_env = avt.orchestrator_env(port=port, client_token=CLIENT_TOKEN)
        worker_env = avt.worker_env(url, worker_id="avt-worker-1")
        return processes(
            (avt.orchestrator_cmd(), server_env, WORK / "avtomatika-server.log"),
            (avt.worker_cmd(), worker_env, WORK / "avtomatika-worker.log"),
        )

    def ready() -> None:
        avt.wait_ready(url, need_worker=True, client_token=CLIENT_TOKEN, timeout=60)

    start.ready = ready  # type: ignore[attr-defined]
    return url, start


def measure(
    name: str, side: Callable[[], tuple[str, Callable[[], object]]], args: argparse.Namespace
) -> LoadResult:
    url, start = side()
    with start():  # type: ignore[attr-defined]
        wait_ready(f"{url}/_public/status")
        getattr(start, "ready", lambda: None)()
        warm = asyncio.run(run_load(url, endpoint="flow", token=CLIENT_TOKEN, jobs=50, clients=8))
        if warm.failed:
            raise RuntimeError(f"{name}: {warm.failed} warm-up jobs did not finish")
        result = asyncio.run(
            run_load(url, endpoint="flow", token=CLIENT_TOKEN, jobs=args.jobs, clients=args.clients)
        )
    print(f"  {name:<12} done: {result.jobs_per_second:8.1f} jobs/s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--side", choices=["both", "chronik", "avtomatika"], default="both")
    args = parser.parse_args()
    results: dict[str, LoadResult] = {}
    print(f"N={args.jobs} jobs, C={args.clients} clients, one orchestrator and one worker process per side")
    if args.side in ("both", "avtomatika"):
        results["avtomatika"] = measure("avtomatika", avtomatika_side, args)
    if args.side in ("both", "chronik"):
        results["chronik"] = measure("chronik", chronik_side, args)
    print(f"\n{'side':<12}{'jobs/s':>10}{'p50 (s)':>10}{'p99 (s)':>10}{'failed':>8}")
    for name, result in results.items():
        print(
            f"{name:<12}{result.jobs_per_second:>10.1f}{result.p50:>10.3f}{result.percentile(99):>10.3f}"
            f"{result.failed:>8}"
        )
    if len(results) == 2:
        chronik, avtomatika = results["chronik"], results["avtomatika"]
        print(
            f"\nchronik / avtomatika jobs/s: {chronik.jobs_per_second / avtomatika.jobs_per_second:.1f}x; "
            f"chronik p99 {chronik.percentile(99):.3f} s vs avtomatika p50 {avtomatika.p50:.3f} s"
        )


if __name__ == "__main__":
    main()
