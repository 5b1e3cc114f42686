"""Who a worker is: its token (global or its own) and, with its own token, its signatures; and what
a worker wastes, counted against its budgets (``chronik/_runtime/limits.py`` says which)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from chronik.adapters.config import load_worker_tokens
from chronik.core.errors import ChronikError, Forbidden, RateLimited, Unauthorized
from chronik.core.signing import verify

from .errors import STATUS_BY_CODE
from .ports import Orchestrator

__all__ = [
    "WORKER_ID_HEADER",
    "WORKER_TOKEN_HEADER",
    "WorkerCredentials",
    "charge",
    "charging_refusals",
    "check_signature",
    "is_refusal",
    "worker_guard",
]

log = structlog.get_logger("chronik.api")

WORKER_TOKEN_HEADER = "X-Worker-Token"
WORKER_ID_HEADER = "X-Worker-ID"


class WorkerCredentials:
    """The tokens workers may present: ``GLOBAL_WORKER_TOKEN`` and a ``workers.toml`` of their own.

    Tokens are compared in constant time and never logged nor stored in the database.
    """

    def __init__(self, global_token: str | None, config_path: str | None) -> None:
        self._global = global_token
        self._path = config_path
        self._own: dict[str, str] = {}
        self.reload()

    def reload(self) -> int:
        """Read ``workers.toml`` again; keep the old tokens if the file is bad. Returns how many it has."""
        if self._path:
            self._own = load_worker_tokens(self._path)
        return len(self._own)

    def authenticate(self, worker_id: str, token: str | None) -> str | None:
        """Check ``token`` for ``worker_id``; return the worker's own secret (for signatures), if any."""
        if not self._global and not self._own:
            raise Unauthorized(
                "no worker tokens are configured (set GLOBAL_WORKER_TOKEN or WORKERS_CONFIG_PATH)"
            )
        if not token:
            raise Unauthorized(f"send the worker token in the {WORKER_TOKEN_HEADER} header")
        own = self._own.get(worker_id)
        if own is not None:
            if hmac.compare_digest(token.encode(), own.encode()):
                return own
        elif self._global and hmac.compare_digest(token.encode(), self._global.encode()):
            return None
        raise Unauthorized(f"the {WORKER_TOKEN_HEADER} is not valid for worker {worker_id!r}")


def check_signature(
    message: dict[str, Any], secret: str | None, *, ignore_fields: tuple[str, ...] = ()
) -> None:
    """Verify a message's HMAC where the worker has its own secret; a clear 403 when it does not match."""
    if secret is None:
        return
    security = message.get("security")
    if not isinstance(security, dict) or "signature" not in security:
        raise Forbidden("this worker has its own token, so its messages must be signed (security.signature)")
    if not verify(message, secret, ignore_fields):
        raise Forbidden(
            "the message's signature does not match: expected HMAC-SHA256 of the canonical JSON "
            "(sorted keys, compact, nulls dropped, without 'security') keyed by the worker's token"
        )


def worker_guard(
    credentials: Callable[[], WorkerCredentials],
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard that authenticates the worker named by the path or ``X-Worker-ID``.

    A failed authentication counts against the budgets of that worker id and of the
    client's address (``RateLimited`` once either is spent); a good one costs nothing.
    """

    # Async on purpose: Litestar runs a plain-function guard in a worker thread, per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        path_id = connection.path_params.get("worker_id")
        header_id = connection.headers.get(WORKER_ID_HEADER)
        worker_id = path_id or header_id
        try:
            if not worker_id:
                raise Unauthorized(f"send the worker's id in the {WORKER_ID_HEADER} header")
            if path_id and header_id and path_id != header_id:
                raise Forbidden(
                    f"{WORKER_ID_HEADER} {header_id!r} does not match the path's worker {path_id!r}"
                )
            secret = credentials().authenticate(worker_id, connection.headers.get(WORKER_TOKEN_HEADER))
        except (Unauthorized, Forbidden):
            # The address first: a guesser that varies the worker id is stopped there.
            address = connection.client.host if connection.client else "unknown"
            await charge(connection, "auth_address", subject=address)
            if worker_id:
                await charge(connection, "auth", subject=worker_id)
            raise
        connection.state.worker = (worker_id, secret)

    return guard


async def charge(connection: ASGIConnection[Any, Any, Any, Any], kind: str, *, subject: str = "") -> None:
    """Count a wasted request of ``kind`` against the worker's budget; ``RateLimited`` past it.

    ``subject`` is the authenticated worker unless given. The budget guards the work, it is
    not the work: when it cannot be counted (the database is away), the request is answered
    as it would have been.
    """
    engine: Orchestrator = connection.app.state["engine"]
    try:
        await engine.check_worker_rate(subject or connection.state.worker[0], kind)
    except RateLimited:
        raise
    except Exception as exc:
        log.warning("worker_budget_not_counted", kind=kind, error=str(exc))


@asynccontextmanager
async def charging_refusals(connection: ASGIConnection[Any, Any, Any, Any]) -> AsyncIterator[None]:
    """Count a request refused for the worker's fault (a 4xx answer) against its ``other`` budget."""
    try:
        yield
    except ChronikError as exc:
        if is_refusal(exc):
            await charge(connection, "other")
        raise


def is_refusal(exc: ChronikError) -> bool:
    """Whether ``exc`` refuses a request for its sender's fault (a 4xx), not for a race or a limit."""
    status = STATUS_BY_CODE.get(exc.code, 500)
    return 400 <= status < 500 and exc.code not in _NOT_REFUSALS


_NOT_REFUSALS = frozenset({"VERSION_CONFLICT", "RATE_LIMITED", "QUOTA_EXCEEDED"})
