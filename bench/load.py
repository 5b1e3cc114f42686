"""The HTTP load generator: C clients each create a job and follow it until it ends, N jobs in all.

Two ways to follow a job:

* ``poll``: ``GET /api/v1/jobs/{id}`` every 50 ms (the client Avtomatika's API allows);
* ``wait``: ``GET /api/v1/jobs/{id}?wait=SECONDS``, which answers as soon as the job
  has ended, or at the deadline with its current state; asked again until it has ended.

A job's latency runs from its create request to the answer that showed it ended.
Every request the clients make is counted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

__all__ = ["WAIT_SECONDS", "LoadResult", "run_load"]

TERMINAL = {"finished", "failed", "cancelled", "quarantined", "error"}
# Well past a job's run time here, so one wait request per job is the rule.
WAIT_SECONDS = 20.0


@dataclass
class LoadResult:
    """What one run measured."""

    jobs: int
    clients: int
    seconds: float
    latencies: list[float]
    failed: int
    requests: int
    """Requests (HTTP, or database calls for a client that talks to the database) the clients made."""

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)


async def run_load(
    base_url: str,
    *,
    endpoint: str,
    token: str,
    jobs: int,
    clients: int,
    poll_interval: float = 0.05,
    wait: float | None = None,
) -> LoadResult:
    """Create ``jobs`` jobs at ``POST /api/v1/jobs/{endpoint}`` from ``clients`` concurrent clients.

    With ``wait``, each client follows its job with ``?wait=`` requests; otherwise it
    polls every ``poll_interval`` seconds.
    """
    remaining = jobs
    latencies: list[float] = []
    failed = 0
    requests = 0
    follow = {"wait": f"{wait:g}"} if wait is not None else None
    # A wait request may be open for up to ``wait`` seconds.
    timeout = aiohttp.ClientTimeout(total=None, sock_read=(wait or 0) + 30)

    async def client() -> None:
        nonlocal remaining, failed, requests
        headers = {"X-Client-Token": token}
        async with aiohttp.ClientSession(base_url=base_url, headers=headers, timeout=timeout) as http:
            while remaining > 0:
                remaining -= 1
                n = remaining
                started = time.perf_counter()
                async with http.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": {"n": n}}) as created:
                    created.raise_for_status()
                    job_id = (await created.json())["job_id"]
                requests += 1
                while True:
                    if follow is None:
                        await asyncio.sleep(poll_interval)
                    async with http.get(f"/api/v1/jobs/{job_id}", params=follow) as response:
                        if follow is not None:  # a refused wait must not turn into a busy loop
                            response.raise_for_status()
                        status = (await response.json()).get("status")
                    requests += 1
                    if status in TERMINAL:
                        break
                latencies.append(time.perf_counter() - started)
                if status != "finished":
                    failed += 1

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return LoadResult(jobs, clients, time.perf_counter() - began, latencies, failed, requests)
