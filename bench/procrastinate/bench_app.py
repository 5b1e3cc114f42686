"""The Procrastinate app of the benchmark, with one task: ``echo``.

Procrastinate has no orchestrator: where chronik and Avtomatika run a job
start -> one worker task -> end, a Procrastinate job *is* the one task. ``echo``
returns its input, as the worker task does on the other two sides.

Imported by ``worker.py`` and ``load.py`` (and by ``procrastinate --app=bench_app.app``),
run with the venv that ``setup.sh`` makes, with this folder on ``sys.path``.

Environment
-----------
PROCRASTINATE_DSN        libpq URL of the benchmark's Procrastinate database (required)
PROCRASTINATE_POOL_SIZE  connections in this process's pool (default 4, psycopg_pool's default
                         minimum). The worker takes concurrency + 1, as Procrastinate's docs
                         advise for short jobs; the client takes 20, chronik's DB_POOL_MAX_SIZE.
"""

from __future__ import annotations

import os

import procrastinate

__all__ = ["app", "echo"]

_POOL = int(os.environ.get("PROCRASTINATE_POOL_SIZE") or 4)

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ["PROCRASTINATE_DSN"],
        # A full pool from the start, as in a process that has been serving for a while:
        # no connection is opened while the clock runs.
        min_size=_POOL,
        max_size=_POOL,
    )
)


@app.task(name="echo")
async def echo(n: int) -> dict[str, int]:
    """Return the input, like the worker task on the other sides."""
    return {"n": n}
