"""Paths and start commands for the Procrastinate side of the benchmark (stdlib only).

    from bench.procrastinate import env as pro
    pro.ensure()                                         # runs setup.sh (idempotent)
    subprocess.run(pro.schema_cmd(), env=pro.process_env(dsn), check=True)
    work = subprocess.Popen(pro.worker_cmd(), env=pro.process_env(dsn, pool_size=17))
    out = subprocess.run(pro.load_cmd(jobs=2000, clients=64), env=pro.process_env(dsn, pool_size=20),
                         capture_output=True, check=True).stdout     # one JSON object
    work.terminate()

Every script runs in the venv that setup.sh makes, with this folder on PYTHONPATH
(``bench_app`` holds the app and its ``echo`` task).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = Path(os.environ.get("VENVS_DIR") or HERE.parent / ".venvs")
PYTHON = VENVS / "procrastinate" / "bin" / "python"
SETUP_SH = HERE / "setup.sh"

CONCURRENCY = 16
WORKER_POOL = CONCURRENCY + 1
CLIENT_POOL = 20


def ensure() -> None:
    """Create or verify the venv. Raises CalledProcessError on failure."""
    subprocess.run(["bash", str(SETUP_SH)], check=True)


def process_env(dsn: str, *, pool_size: int = 4) -> dict[str, str]:
    """The environment of any of the side's processes: the database, the pool, the import path."""
    return {
        **os.environ,
        "PROCRASTINATE_DSN": dsn,
        "PROCRASTINATE_POOL_SIZE": str(pool_size),
        "PROCRASTINATE_CONCURRENCY": str(CONCURRENCY),
        "PYTHONPATH": str(HERE),
    }


def schema_cmd() -> list[str]:
    """Procrastinate's own CLI, applying its schema to the (fresh) database."""
    return [str(PYTHON), "-m", "procrastinate", "--app=bench_app.app", "schema", "--apply"]


def worker_cmd() -> list[str]:
    return [str(PYTHON), str(HERE / "worker.py")]


def load_cmd(*, jobs: int, clients: int, poll: float = 0.05) -> list[str]:
    return [str(PYTHON), str(HERE / "load.py"), f"--jobs={jobs}", f"--clients={clients}", f"--poll={poll}"]
