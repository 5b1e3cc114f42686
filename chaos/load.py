"""The steady load: clients that create jobs, follow them to their end and decide their approvals.

Each client creates a ``chaos`` job with an ``Idempotency-Key``, follows it with
``GET ?wait=`` and approves it when it waits for a decision, then starts the next.
Requests alternate between the two instances. A 503, a refused or broken connection
or a timeout is retried (the create with the same key, as docs/api.md tells a
client to), after the ``Retry-After`` the answer gave (at most a second here); a
500 is counted and retried too. Every status seen is counted, and every job's end
is timed, which gives the throughput.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.cluster import CLIENT_TOKEN

__all__ = ["Load"]

TERMINAL = {"finished", "failed", "cancelled"}
FOLLOW_WAIT = 2


class _GaveUp(Exception):
    """The load was told to stop before the request got an answer."""


@dataclass
class Load:
    """``clients`` concurrent clients over ``urls``; run until ``stop()``, then drained."""

    urls: list[str]
    clients: int = 6
    approval_every: int = 4
    accepted: dict[str, str] = field(default_factory=dict)
    """Idempotency key -> job id, for every create answered 202."""
    unanswered: set[str] = field(default_factory=set)
    """Keys of creates sent at least once whose answer never came (the run ended first)."""
    completions: list[float] = field(default_factory=list)
    """time.monotonic() of every job's observed end."""
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    """Connection errors and timeouts, by exception class."""
    server_errors: list[str] = field(default_factory=list)
    """Every 500 (or other unexpected 5xx) seen: method, path, body."""
    _stopping: bool = False
    _give_up_at: float = float("inf")
    _counter: int = 0
    _turn: int = 0

    def stop(self, *, drain: float) -> None:
        """Start no new job; give up on requests still unanswered ``drain`` seconds from now."""
        self._stopping = True
        self._give_up_at = time.monotonic() + drain

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients * 2)
        timeout = httpx.Timeout(10.0, read=FOLLOW_WAIT + 10.0)
        headers = {"X-Client-Token": CLIENT_TOKEN}
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.clients)))

    def rate(self, since: float, until: float) -> float:
        """Jobs ended per second between two monotonic times."""
        ended = sum(1 for t in self.completions if since <= t < until)
        return ended / max(until - since, 1e-9)

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stopping:
            self._counter += 1
            n = self._counter
            key = str(uuid.uuid4())
            body = {"initial_data": {"n": n, "key": key, "approval": n % self.approval_every == 0}}
            self.unanswered.add(key)
            try:
                created = await self._call(http, "POST", "/api/v1/jobs/chaos", body, {"Idempotency-Key": key})
            except _GaveUp:
                return
            if created.status_code != 202:
                self.server_errors.append(f"POST create {created.status_code}: {created.text[:300]}")
                continue
            self.unanswered.discard(key)
            job_id = created.json()["job_id"]
            self.accepted[key] = job_id
            try:
                await self._follow(http, job_id)
            except _GaveUp:
                return

    async def _follow(self, http: httpx.AsyncClient, job_id: str) -> None:
        while True:
            answer = await self._call(http, "GET", f"/api/v1/jobs/{job_id}?wait={FOLLOW_WAIT}")
            if answer.status_code != 200:
                self.server_errors.append(f"GET job {answer.status_code}: {answer.text[:300]}")
                await asyncio.sleep(0.5)
                continue
            status = answer.json().get("status")
            if status in TERMINAL:
                self.completions.append(time.monotonic())
                return
            if status == "waiting_for_human":
                decided = await self._call(
                    http, "POST", f"/api/v1/jobs/{job_id}/approval", {"decision": "approved"}
                )
                if decided.status_code not in (200, 409):  # 409: decided already (a retried decision)
                    self.server_errors.append(f"POST approval {decided.status_code}: {decided.text[:300]}")

    async def _call(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The request's first answer that is neither a 5xx nor a lost connection, retried on either."""
        while True:
            if time.monotonic() > self._give_up_at:
                raise _GaveUp
            self._turn += 1
            url = self.urls[self._turn % len(self.urls)] + path
            try:
                response = await http.request(method, url, json=body, headers=headers)
            except httpx.HTTPError as exc:  # refused, reset, timed out: the instance or its answer is gone
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(random.uniform(0.1, 0.3))
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 503:
                await asyncio.sleep(min(float(response.headers.get("Retry-After", 1)), 1.0))
                continue
            if response.status_code >= 500:
                self.server_errors.append(f"{method} {path} {response.status_code}: {response.text[:300]}")
                await asyncio.sleep(0.2)
                continue
            return response
