"""Webhooks: a sender that delivers the outbox, signed, with retries and backoff.

The outbox row is written by the statement that appends the event it announces
(see ``commit.sql``). Every instance runs a sender; rows are leased with
``FOR UPDATE SKIP LOCKED``, so each attempt is made by one instance, and a row
whose sender died becomes due again when its lease runs out. Delivery is at
least once: a receiver de-duplicates by ``X-Chronik-Event-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import structlog

from chronik.adapters.postgres.queries import QUERIES
from chronik.core.errors import InvalidInput

__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "WebhookSender", "check_webhook_url", "sign"]

log = structlog.get_logger("chronik.webhooks")

SIGNATURE_HEADER = "X-Chronik-Signature"
"""``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` with ``WEBHOOK_SECRET``."""
TIMESTAMP_HEADER = "X-Chronik-Timestamp"
"""Unix seconds when the attempt was signed; receivers refuse old ones to stop replays."""
EVENT_ID_HEADER = "X-Chronik-Event-Id"
"""The same on every attempt of one notification: receivers de-duplicate by it."""

_LEASE_SECONDS = 60.0
_TIMEOUT_SECONDS = 10.0


def check_webhook_url(url: str, *, secret: str | None) -> None:
    """Refuse a webhook the orchestrator cannot deliver, or could not sign."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise InvalidInput(f"webhook_url {url!r} must be an http(s) URL of at most 2000 characters")
    if not secret:
        raise InvalidInput(
            "webhook_url needs WEBHOOK_SECRET set on the orchestrator: every notification is signed with it"
        )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for one attempt."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookSender:
    """Delivers due notifications, at most ``concurrency`` at once in this instance."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        secret: str,
        interval: float,
        max_attempts: int,
        retry_base_seconds: float,
        concurrency: int,
    ) -> None:
        self._pool = pool
        self._secret = secret
        self._interval = interval
        self._max_attempts = max_attempts
        self._base = retry_base_seconds
        self._concurrency = concurrency

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop``."""
        timeout = aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not stop.is_set():
                try:
                    sent = await self.send_due(http)
                except Exception:
                    log.exception("webhooks_failed")
                    sent = 0
                if sent < self._concurrency:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self._interval * random.uniform(0.8, 1.2))

    async def send_due(self, http: aiohttp.ClientSession) -> int:
        """Attempt every due notification (up to the concurrency); how many were attempted."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(QUERIES["claim_webhooks"], self._concurrency, _LEASE_SECONDS)
        await asyncio.gather(*(self._attempt(http, row) for row in rows))
        return len(rows)

    async def _attempt(self, http: aiohttp.ClientSession, row: asyncpg.Record) -> None:
        body = row["payload"].encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: row["event_id"],
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            async with http.post(row["url"], data=body, headers=headers) as response:
                code = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = code is not None and 200 <= code < 300
        attempt = row["attempts"] + 1
        record = {
            "attempt": attempt,
            "at": datetime.now(UTC).isoformat(),
            "status_code": code,
            "error": error or (None if delivered else f"HTTP {code}"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        if delivered:
            status, due = "delivered", None
        elif attempt >= self._max_attempts:
            status, due = "failed", None
        else:
            delay = min(3600.0, self._base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            status, due = "pending", datetime.now(UTC) + timedelta(seconds=delay)
        async with self._pool.acquire() as conn:
            await conn.execute(
                QUERIES["record_webhook_attempt"], row["event_id"], json.dumps(record), status, due
            )
        log.info("webhook_attempt", event_id=row["event_id"], status=status, status_code=code, error=error)
