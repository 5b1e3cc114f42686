"""Webhooks: a sender that delivers the outbox, signed, with retries and backoff.

The outbox row is written by the statement that appends the event it announces
(see ``commit.sql``). Every instance runs a sender; rows are leased with
``FOR UPDATE SKIP LOCKED``, so each attempt is made by one instance, and a row
whose sender died becomes due again when its lease runs out. Delivery is at
least once: a receiver de-duplicates by ``X-Chronik-Event-Id``.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import structlog

from chronik.adapters.postgres import outbox
from chronik.adapters.postgres.database import Database
from chronik.adapters.webhook_http import WebhookClient
from chronik.core.errors import InvalidInput

from .loops import BUSY, run_loop

__all__ = ["WebhookSender", "check_webhook_url"]

log = structlog.get_logger("chronik.webhooks")

_LEASE_SECONDS = 60.0


def check_webhook_url(url: str, *, secret: str | None) -> None:
    """Refuse a webhook the orchestrator cannot deliver, or could not sign."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise InvalidInput(f"webhook_url {url!r} must be an http(s) URL of at most 2000 characters")
    if not secret:
        raise InvalidInput(
            "webhook_url needs WEBHOOK_SECRET set on the orchestrator: every notification is signed with it"
        )


class WebhookSender:
    """Delivers due notifications, at most ``concurrency`` at once in this instance."""

    def __init__(
        self,
        database: Database,
        *,
        secret: str,
        interval: float,
        max_attempts: int,
        retry_base_seconds: float,
        concurrency: int,
    ) -> None:
        self._database = database
        self._secret = secret
        self._interval = interval
        self._max_attempts = max_attempts
        self._base = retry_base_seconds
        self._concurrency = concurrency

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop``."""
        async with WebhookClient(self._secret) as client:

            async def tick() -> float | None:
                sent = await self.send_due(client)
                return BUSY if sent >= self._concurrency else None

            await run_loop("webhooks", tick, stop, interval=self._interval)

    async def send_due(self, client: WebhookClient) -> int:
        """Attempt every due notification (up to the concurrency); how many were attempted."""
        async with self._database.connection() as conn:
            due = await outbox.claim_due(conn, limit=self._concurrency, lease_seconds=_LEASE_SECONDS)
        await asyncio.gather(*(self._attempt(client, notice) for notice in due))
        return len(due)

    async def _attempt(self, client: WebhookClient, notice: outbox.DueNotice) -> None:
        delivery = await client.post(notice.url, notice.payload, event_id=notice.event_id)
        attempt = notice.attempts + 1
        record = {
            "attempt": attempt,
            "at": datetime.now(UTC).isoformat(),
            "status_code": delivery.status_code,
            "error": delivery.error or (None if delivery.delivered else f"HTTP {delivery.status_code}"),
            "seconds": delivery.seconds,
        }
        if delivery.delivered:
            status, due = "delivered", None
        elif attempt >= self._max_attempts:
            status, due = "failed", None
        else:
            delay = min(3600.0, self._base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            status, due = "pending", datetime.now(UTC) + timedelta(seconds=delay)
        async with self._database.connection() as conn:
            await outbox.record_attempt(conn, notice.event_id, record, status=status, next_at=due)
        log.info(
            "webhook_attempt",
            event_id=notice.event_id,
            status=status,
            status_code=delivery.status_code,
            error=delivery.error,
        )
