"""The load generator: C clients each create a job and poll its status until it ends, N jobs in all."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

__all__ = ["LoadResult", "run_load"]

TERMINAL = {"finished", "failed", "cancelled", "quarantined", "error"}


@dataclass
class LoadResult:
    """What one run measured."""

    jobs: int
    clients: int
    seconds: float
    latencies: list[float]
    failed: int

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
    base_url: str, *, endpoint: str, token: str, jobs: int, clients: int, poll_interval: float = 0.05
) -> LoadResult:
    """Create ``jobs`` jobs at ``POST /api/v1/jobs/{endpoint}`` from ``clients`` concurrent clients."""
    remaining = jobs
    latencies: list[float] = []
    failed = 0

    async def client() -> None:
        nonlocal remaining, failed
        headers = {"X-Client-Token": token}
        async with aiohttp.ClientSession(base_url=base_url, headers=headers) as http:
            while remaining > 0:
                remaining -= 1
                n = remaining
                started = time.perf_counter()
                async with http.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": {"n": n}}) as created:
                    created.raise_for_status()
                    job_id = (await created.json())["job_id"]
                while True:
                    await asyncio.sleep(poll_interval)
                    async with http.get(f"/api/v1/jobs/{job_id}") as response:
                        status = (await response.json()).get("status")
                    if status in TERMINAL:
                        break
                latencies.append(time.perf_counter() - started)
                if status != "finished":
                    failed += 1

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return LoadResult(jobs, clients, time.perf_counter() - began, latencies, failed)
