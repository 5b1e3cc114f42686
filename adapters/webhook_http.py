"""Webhook delivery over HTTP: one signed POST per attempt (aiohttp).

Each request carries ``X-Chronik-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<timestamp>.<body>`` keyed by ``WEBHOOK_SECRET``, the timestamp it signed, and
``X-Chronik-Event-Id``, the same on every attempt of one notification.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from types import TracebackType

import aiohttp
import msgspec

__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Delivery", "WebhookClient", "sign"]

SIGNATURE_HEADER = "X-Chronik-Signature"
"""``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` with ``WEBHOOK_SECRET``."""
TIMESTAMP_HEADER = "X-Chronik-Timestamp"
"""Unix seconds when the attempt was signed; receivers refuse old ones to stop replays."""
EVENT_ID_HEADER = "X-Chronik-Event-Id"
"""The same on every attempt of one notification: receivers de-duplicate by it."""

_TIMEOUT_SECONDS = 10.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for one attempt."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt got: the receiver's status code, or the error that stopped it."""

    status_code: int | None
    error: str | None
    seconds: float

    @property
    def delivered(self) -> bool:
        """The receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookClient:
    """Signed POSTs to receivers, on one HTTP session (``async with``)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookClient:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def post(self, url: str, body: bytes, *, event_id: str) -> Delivery:
        """Send one attempt of notification ``event_id``; a network failure is a result, not an error."""
        assert self._http is not None, "use the client in `async with`"
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            async with self._http.post(url, data=body, headers=headers) as response:
                code = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return Delivery(status_code=code, error=error, seconds=round(time.perf_counter() - started, 3))
