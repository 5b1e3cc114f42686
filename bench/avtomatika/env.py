"""Paths and start commands for the Avtomatika side of the benchmark (stdlib only).

    from bench.avtomatika import env as avt
    avt.ensure()                                    # runs setup.sh (idempotent)
    orch = subprocess.Popen(avt.orchestrator_cmd(), env=avt.orchestrator_env(port=8082))
    avt.wait_ready("http://127.0.0.1:8082")         # HTTP up
    work = subprocess.Popen(avt.worker_cmd(), env=avt.worker_env("http://127.0.0.1:8082"))
    avt.wait_ready("http://127.0.0.1:8082", need_worker=True)   # a worker registered
    ... load ...
    work.terminate(); orch.terminate()              # SIGTERM. Each exits within about 10 s.

The orchestrator and the worker need separate venvs (their orjson pins
conflict); see setup.sh.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = Path(os.environ.get("VENVS_DIR") or HERE.parent / ".venvs")
ORCH_PYTHON = VENVS / "avtomatika" / "bin" / "python"
WORKER_PYTHON = VENVS / "avtomatika-worker" / "bin" / "python"
ORCHESTRATOR_PY = HERE / "orchestrator.py"
WORKER_PY = HERE / "worker.py"
SETUP_SH = HERE / "setup.sh"

DEFAULT_CLIENT_TOKEN = "bench-client-token"
DEFAULT_WORKER_TOKEN = "bench-worker-token"


def ensure() -> None:
    """Create/verify both venvs and check Redis. Raises CalledProcessError on failure
    (exit code 2 means Redis is not running; setup.sh prints how to start it)."""
    subprocess.run(["bash", str(SETUP_SH)], check=True)


def orchestrator_cmd() -> list[str]:
    return [str(ORCH_PYTHON), str(ORCHESTRATOR_PY)]


def worker_cmd() -> list[str]:
    return [str(WORKER_PYTHON), str(WORKER_PY)]


def orchestrator_env(
    port: int = 8082,
    client_token: str = DEFAULT_CLIENT_TOKEN,
    worker_token: str = DEFAULT_WORKER_TOKEN,
    redis_db: int = 5,
    **extra: str,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PORT": str(port),
            "CLIENT_TOKEN": client_token,
            "WORKER_TOKEN": worker_token,
            "REDIS_DB": str(redis_db),
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def worker_env(
    orchestrator_url: str,
    worker_id: str = "avt-worker-1",
    worker_token: str = DEFAULT_WORKER_TOKEN,
    max_concurrent_tasks: int = 16,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ORCHESTRATOR_SECRET_KEY", "SECRET_KEY")}
    env.update(
        {
            "ORCHESTRATOR_URL": orchestrator_url,
            "WORKER_ID": worker_id,
            "WORKER_TOKEN": worker_token,
            "MAX_CONCURRENT_TASKS": str(max_concurrent_tasks),
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_ready(
    base_url: str, need_worker: bool = False, client_token: str = DEFAULT_CLIENT_TOKEN, timeout: float = 30.0
) -> None:
    """Wait until GET /_public/status answers 200. With need_worker, also wait until
    GET /api/v1/workers lists at least one worker. Jobs created before a worker
    has registered fail at once."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if not need_worker:
                with urllib.request.urlopen(f"{base_url}/_public/status", timeout=2) as r:
                    if r.status == 200:
                        return
            else:
                req = urllib.request.Request(
                    f"{base_url}/api/v1/workers", headers={"X-Client-Token": client_token}
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200 and json.loads(r.read() or b"[]"):
                        return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"Avtomatika at {base_url} not ready (need_worker={need_worker}): {last}")
