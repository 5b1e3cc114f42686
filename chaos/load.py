"""The steady load: clients that create jobs, follow them to their end and decide their approvals.

Each client creates a ``chaos`` job with an ``Idempotency-Key`` and a ``webhook_url``
(the harness's receiver), follows it with ``GET ?wait=`` and approves it when it waits
for a decision, then starts the next; one job in ``park_every`` is left waiting for its
decision on purpose. The soak runs it open-loop instead: a job every ``1/rate`` seconds,
each followed by a client of its own. Requests alternate between the two instances.
A 503, a refused or broken connection or a timeout is retried (the create with the
same key, as docs/api.md tells a client to), after the ``Retry-After`` the answer
gave (at most a second here); a 500 is counted and retried too. Every status seen
is counted, and every job's end is timed, which gives the throughput.
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
    """``clients`` concurrent clients over ``urls`` (or jobs started at ``rate`` a second); run until
    ``stop()``, then drained."""

    urls: list[str]
    clients: int = 6
    rate: float | None = None
    """Open loop: start this many jobs a second, each followed by a client of its own, whatever the
    cluster's pace (the soak's load); None: ``clients`` closed-loop clients."""
    max_in_flight: int = 2000
    approval_every: int = 4
    park_every: int = 25
    """Every so many jobs waits for a decision that the load never gives: it legitimately waits at
    the end (its decision's deadline is minutes away), and the checks must tell it from a stuck one."""
    webhook_url: str | None = None
    """Where every job's webhook goes (chaos/receiver.py)."""
    accepted: dict[str, str] = field(default_factory=dict)
    """Idempotency key -> job id, for every create answered 202."""
    parked: dict[str, str] = field(default_factory=dict)
    """Idempotency key -> job id of the jobs left waiting for a decision on purpose."""
    unanswered: set[str] = field(default_factory=set)
    """Keys of creates sent at least once whose answer never came (the run ended first)."""
    completions: list[float] = field(default_factory=list)
    """time.monotonic() of every job's observed end."""
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(time.monotonic() of the end, seconds from the create) of every job that ended."""
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
        connections = self.clients * 2 if self.rate is None else 200
        limits = httpx.Limits(max_connections=connections)
        # A client waits longer for an answer than an instance may take to give one: up to
        # DB_POOL_TIMEOUT_SECONDS (30) for a connection, then DB_LOCK_TIMEOUT_SECONDS (10) for a
        # lock; so a slow database reaches the client as the instance's 503, not as its own timeout.
        timeout = httpx.Timeout(10.0, read=FOLLOW_WAIT + 45.0, pool=None)
        headers = {"X-Client-Token": CLIENT_TOKEN}
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as http:
            if self.rate is None:
                await asyncio.gather(*(self._client(http) for _ in range(self.clients)))
            else:
                await self._open_loop(http, self.rate)

    def rate_between(self, since: float, until: float) -> float:
        """Jobs ended per second between two monotonic times."""
        ended = sum(1 for t in self.completions if since <= t < until)
        return ended / max(until - since, 1e-9)

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stopping:
            if not await self._job(http):
                return

    async def _open_loop(self, http: httpx.AsyncClient, rate: float) -> None:
        """A job every 1/rate seconds on a fixed schedule (a late start does not push the next one)."""
        running: set[asyncio.Task[bool]] = set()
        began = time.monotonic()
        started = 0
        while not self._stopping:
            due = began + started / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self._stopping:
                break
            if len(running) >= self.max_in_flight:  # the cluster fell this far behind: count, not pile up
                self.errors["in_flight_cap"] += 1
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._job(http))
            running.add(task)
            task.add_done_callback(running.discard)
            started += 1
        if running:
            await asyncio.gather(*running)

    async def _job(self, http: httpx.AsyncClient) -> bool:
        """Create one job and follow it to its end (or to its decision, when it is to wait);
        False when the load gave up first."""
        self._counter += 1
        n = self._counter
        key = str(uuid.uuid4())
        park = self.park_every > 0 and n % self.park_every == 0
        approval = park or n % self.approval_every == 0
        body: dict[str, Any] = {"initial_data": {"n": n, "key": key, "approval": approval, "park": park}}
        if self.webhook_url is not None:
            body["webhook_url"] = self.webhook_url
        self.unanswered.add(key)
        created_at = time.monotonic()
        try:
            created = await self._call(http, "POST", "/api/v1/jobs/chaos", body, {"Idempotency-Key": key})
        except _GaveUp:
            return False
        if created.status_code != 202:
            self.server_errors.append(f"POST create {created.status_code}: {created.text[:300]}")
            return True
        self.unanswered.discard(key)
        job_id = created.json()["job_id"]
        self.accepted[key] = job_id
        if park:
            self.parked[key] = job_id
        try:
            ended = await self._follow(http, job_id, decide=not park)
        except _GaveUp:
            return False
        if ended:
            now = time.monotonic()
            self.completions.append(now)
            self.latencies.append((now, now - created_at))
        return True

    async def _follow(self, http: httpx.AsyncClient, job_id: str, *, decide: bool) -> bool:
        """Follow the job to its end (True), deciding its approval; or, with ``decide`` off, until it
        waits for the decision (False)."""
        while True:
            answer = await self._call(http, "GET", f"/api/v1/jobs/{job_id}?wait={FOLLOW_WAIT}")
            if answer.status_code != 200:
                self.server_errors.append(f"GET job {answer.status_code}: {answer.text[:300]}")
                await asyncio.sleep(0.5)
                continue
            status = answer.json().get("status")
            if status in TERMINAL:
                return True
            if status == "waiting_for_human" and not decide:
                return False
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
