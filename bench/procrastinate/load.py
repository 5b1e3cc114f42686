"""The Procrastinate client of the benchmark: C clients defer a job each and poll its row until it ends.

    PROCRASTINATE_DSN=postgresql://... PROCRASTINATE_POOL_SIZE=20 \
        bench/.venvs/procrastinate/bin/python bench/procrastinate/load.py --jobs 2000 --clients 64

Written as a Procrastinate user writes it in an async app: the app's connector is
opened once (a pool of PROCRASTINATE_POOL_SIZE connections), each client defers
``echo`` with ``defer_async`` and then reads the job's status every POLL seconds
with ``job_manager.get_job_status_async`` (``SELECT status FROM procrastinate_jobs
WHERE id = ...``) until it is succeeded, failed, cancelled or aborted. Procrastinate
has no call that waits for a job's end, so polling the row is what its users do.

Latency is the time from the defer call to the poll that saw the job end, as for
the HTTP clients. Prints one JSON object: seconds, latencies, failed, queries (the
client's own database calls: one defer and each status read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench_app import app, echo
from procrastinate.jobs import Status

ENDED = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.ABORTED}


async def run(jobs: int, clients: int, poll: float) -> dict[str, object]:
    """Defer ``jobs`` jobs from ``clients`` concurrent clients and poll each until it ends."""
    remaining = jobs
    latencies: list[float] = []
    failed = 0
    queries = 0

    async def client() -> None:
        nonlocal remaining, failed, queries
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            job_id = await echo.defer_async(n=remaining)
            queries += 1
            while True:
                await asyncio.sleep(poll)
                status = await app.job_manager.get_job_status_async(job_id)
                queries += 1
                if status in ENDED:
                    break
            latencies.append(time.perf_counter() - started)
            if status != Status.SUCCEEDED:
                failed += 1

    async with app.open_async():
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "latencies": latencies, "failed": failed, "queries": queries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between status reads (0.05)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.jobs, args.clients, args.poll))))


if __name__ == "__main__":
    main()
