"""The harness's webhook receiver: it records every notification, checks its signature, and refuses some.

Every job of the load carries a ``webhook_url`` pointing here, so every job that ends
owes one notification. The receiver keeps each attempt's body by its
``X-Chronik-Event-Id``; the checks (chaos/checks.py) then hold the database's outbox
against what arrived: each notification delivered at least once, every attempt of one
notification under the same id with the same body. To make the senders retry, every
``refuse_every``-th request is answered 503, as a receiver that is briefly down would.
"""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from chaos.cluster import free_port
from chronik.adapters.webhook_http import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

__all__ = ["Receiver"]


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that takes the cluster's webhook notifications."""

    secret: str
    refuse_every: int = 10
    bodies: dict[str, set[bytes]] = field(default_factory=dict)
    """Event id -> every distinct body that arrived under it (one, when ids are stable)."""
    receipts: Counter[str] = field(default_factory=Counter)
    """Event id -> attempts answered 200."""
    refused: int = 0
    bad_signatures: list[str] = field(default_factory=list)
    url: str = ""
    _requests: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._take)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def redelivered(self) -> int:
        """Attempts beyond the first that the receiver accepted (at-least-once at work)."""
        return sum(count - 1 for count in self.receipts.values())

    async def _take(self, request: web.Request) -> web.Response:
        self._requests += 1
        body = await request.read()
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        expected = sign(self.secret, request.headers.get(TIMESTAMP_HEADER, ""), body)
        if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
            self.bad_signatures.append(event_id)
            return web.Response(status=401)
        if self._requests % self.refuse_every == 0:
            self.refused += 1
            return web.Response(status=503)
        self.bodies.setdefault(event_id, set()).add(body)
        self.receipts[event_id] += 1
        return web.Response(status=200)
