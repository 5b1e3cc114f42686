"""The worker SDK's line to one orchestrator: signed messages over HTTP (or HTTPS with a client
certificate), its credential on each request, and reading the answers."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import aiohttp
import msgspec
import structlog

from chronik.core.signing import sign
from chronik.core.wire import TaskMessage, TasksAnswer, TokenAnswer

__all__ = [
    "NETWORK_ERRORS",
    "Answer",
    "Link",
    "as_json",
    "client_tls_context",
    "decode",
    "retry_after",
    "tasks_of",
]

log = structlog.get_logger("chronik.worker")

T = TypeVar("T")

NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)
"""What a request that never got an answer raises."""

TOKEN_HEADER = "X-Worker-Token"
TOKEN_ROUTE = "/_worker/auth/token"


class Answer(NamedTuple):
    """The orchestrator's answer: its status, its text, and how long a 429 asks to wait."""

    status: int
    text: str
    retry_after: float


def client_tls_context(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """The TLS context of a worker's connections: the CA that signs the orchestrator's certificate
    (None: the system's), and the client certificate to present, if any; None when neither is set."""
    if not (cert or ca):
        return None
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


class Link:
    """Signed requests of one worker to one orchestrator, on the worker's HTTP session.

    Each request carries the worker's credential: its long-lived token (``X-Worker-Token``,
    when it has one; a client certificate goes with the connection), or, with ``exchange``,
    a short-lived token from ``POST /_worker/auth/token``. That token is exchanged before the
    first request, renewed a little before it expires, and renewed at once when a request is
    answered 401 (it expired early, say while the machine slept); the request is then sent again.
    Messages are signed with the long-lived token either way.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base: str,
        *,
        worker_id: str,
        token: str,
        exchange: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.base = base
        self._worker_id = worker_id
        self._token = token
        self._exchange = exchange
        self._clock = clock
        self._access = ""
        """The short-lived token, once exchanged."""
        self._renew_at = 0.0
        self._renewing = asyncio.Lock()

    async def send(self, method: str, path: str, body: msgspec.Struct) -> Answer:
        """Send one message, signed when the worker has a token of its own."""
        # The signature covers exactly the dict that is sent: the body, stamped with the time.
        message: dict[str, Any] = msgspec.to_builtins(body)
        message["timestamp"] = int(time.time())
        if self._token:
            message["security"] = {"signature": sign(message, self._token), "signer_id": self._worker_id}
        return await self.request(method, path, json=message)

    async def request(self, method: str, path: str, **options: Any) -> Answer:
        """One request with the worker's credential (``options`` as aiohttp's ``request`` takes them)."""
        if self._exchange and self._clock() >= self._renew_at:
            refused = await self._renew(stale=self._access)
            if refused is not None:
                return refused
        sent_with = self._access
        answer = await self._request(method, path, sent_with, **options)
        if answer.status == 401 and self._exchange:
            log.info("worker_token_renewed_after_401", worker_id=self._worker_id, answer=as_json(answer.text))
            refused = await self._renew(stale=sent_with)
            if refused is not None:
                return refused
            answer = await self._request(method, path, self._access, **options)
        return answer

    async def _request(self, method: str, path: str, access: str, **options: Any) -> Answer:
        token = access if self._exchange else self._token
        headers = {TOKEN_HEADER: token} if token else {}
        async with self.http.request(method, self.base + path, headers=headers, **options) as response:
            return Answer(response.status, await response.text(), retry_after(response.headers))

    async def _renew(self, *, stale: str) -> Answer | None:
        """Exchange the long-lived credential for a new short-lived token, unless another request
        already replaced ``stale``; the refusal's answer when the orchestrator refuses."""
        async with self._renewing:
            if self._access != stale and self._clock() < self._renew_at:
                return None  # renewed while this one waited
            asked_at = self._clock()
            headers = {TOKEN_HEADER: self._token} if self._token else {}
            async with self.http.post(self.base + TOKEN_ROUTE, headers=headers) as response:
                answer = Answer(response.status, await response.text(), retry_after(response.headers))
            issued = decode(answer.text, TokenAnswer) if answer.status == 200 else None
            if issued is None:
                log.error("worker_token_refused", status=answer.status, answer=as_json(answer.text))
                return answer if answer.status != 200 else Answer(502, answer.text, 1.0)
            # Renew a fifth of its life (at most a minute) early, timed from when it was asked for.
            lifetime = float(issued.expires_in)
            self._access = issued.access_token
            self._renew_at = asked_at + lifetime - min(60.0, lifetime / 5)
            log.info("worker_token_exchanged", worker_id=issued.worker_id, expires_in=issued.expires_in)
            return None


def tasks_of(text: str) -> list[TaskMessage]:
    """The tasks of a poll's answer: ``{"tasks": [...]}``, or one task (a server without ``max_tasks``)."""
    batch = decode(text, TasksAnswer)
    if batch is not None:
        return batch.tasks
    task = decode(text, TaskMessage)
    return [] if task is None else [task]


def retry_after(headers: Mapping[str, str]) -> float:
    """The seconds a 429's ``Retry-After`` asks for (1 when it says nothing usable), at most 60."""
    raw = headers.get("Retry-After", "")
    return min(60.0, float(raw)) if raw.isdigit() else 1.0


def as_json(text: str) -> Any:
    """An answer's JSON, for the log (``None`` when it has none)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def decode(text: str, kind: type[T]) -> T | None:
    """An answer read as ``kind`` (extra fields ignored); ``None`` when it is not one."""
    try:
        return msgspec.json.decode(text, type=kind) if text else None
    except msgspec.DecodeError:
        return None
