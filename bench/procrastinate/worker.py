"""The Procrastinate worker of the benchmark: one process, 16 concurrent sub-workers, on uvloop.

    PROCRASTINATE_DSN=postgresql://... PROCRASTINATE_POOL_SIZE=17 \
        bench/.venvs/procrastinate/bin/python bench/procrastinate/worker.py

Settings as Procrastinate's docs give them for short async jobs: ``concurrency=16`` (the
capacity of chronik's and Avtomatika's workers), a pool of concurrency + 1 connections,
LISTEN/NOTIFY on (the default: a deferred job wakes the worker at once; the 5 s poll is
the fallback), finished jobs kept (the default; the client reads their status). Logging
stays at Python's default (warnings only). Stop it with SIGTERM: it finishes the jobs
it runs and exits.
"""

from __future__ import annotations

import os

import uvloop
from bench_app import app

CONCURRENCY = int(os.environ.get("PROCRASTINATE_CONCURRENCY") or 16)


async def main() -> None:
    """Open the app's pool and run the worker until SIGTERM/SIGINT."""
    async with app.open_async():
        await app.run_worker_async(concurrency=CONCURRENCY)


if __name__ == "__main__":
    uvloop.run(main())
