"""Who a worker is: its client certificate, its token (global, its own, or a short-lived one)
and, with its own token, its signatures; and what a worker wastes, counted against its budgets
(``chronik/_runtime/limits.py`` says which).

``WORKER_AUTH_MODE`` says which credentials count, as in Avtomatika: ``mixed`` (a verified
client certificate, whose CN is the worker's id, or else a token), ``mtls-only`` (a
certificate, or a short-lived token issued for one) and ``token-only`` (tokens; certificates
are ignored). The certificate comes in the request's ASGI ``tls`` extension
(``client_cert_name``), which ``chronik serve`` fills from the connection.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase
from typing import Any, Literal, NamedTuple

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from chronik.adapters.config import WORKER_PATTERN_PREFIX, load_worker_tokens
from chronik.core.errors import ChronikError, ConfigError, Forbidden, RateLimited, Unauthorized
from chronik.core.signing import verify
from chronik.core.wire import SHORT_LIVED_TOKEN_PREFIX, TokenHolder

from .errors import STATUS_BY_CODE
from .ports import Orchestrator

__all__ = [
    "WORKER_AUTH_MODES",
    "WORKER_ID_HEADER",
    "WORKER_TOKEN_HEADER",
    "WorkerCredentials",
    "WorkerIdentity",
    "certificate_worker_id",
    "charge",
    "charging_refusals",
    "check_signature",
    "is_refusal",
    "worker_guard",
]

log = structlog.get_logger("chronik.api")

WORKER_TOKEN_HEADER = "X-Worker-Token"
WORKER_ID_HEADER = "X-Worker-ID"
WORKER_AUTH_MODES = ("mixed", "mtls-only", "token-only")

AuthMethod = Literal["certificate", "token", "short-lived"]


class WorkerIdentity(NamedTuple):
    """An authenticated worker: its id, its own token (its signatures' key), and how it proved it."""

    worker_id: str
    secret: str | None
    method: AuthMethod


class WorkerCredentials:
    """The credentials workers may present: ``GLOBAL_WORKER_TOKEN``, a ``workers.toml`` of their own
    (by worker id, or by ``pattern:`` glob), client certificates, and short-lived tokens.

    Tokens are compared in constant time and never logged nor stored in the database (short-lived
    ones only as their SHA-256 digests).
    """

    def __init__(
        self,
        global_token: str | None,
        config_path: str | None,
        *,
        mode: str = "mixed",
        token_ttl: float = 3600.0,
    ) -> None:
        if mode not in WORKER_AUTH_MODES:
            raise ConfigError(f"WORKER_AUTH_MODE={mode!r} must be one of {', '.join(WORKER_AUTH_MODES)}")
        self.mode = mode
        self.token_ttl = token_ttl
        """``WORKER_TOKEN_TTL_SECONDS``: how long the short-lived tokens this instance issues last."""
        self._global = global_token
        self._path = config_path
        self._own: dict[str, str] = {}
        self._patterns: list[tuple[str, str]] = []
        self.reload()

    def reload(self) -> int:
        """Read ``workers.toml`` again; keep the old tokens if the file is bad. Returns how many it has."""
        if self._path:
            entries = load_worker_tokens(self._path)
            self._own = {name: t for name, t in entries.items() if not name.startswith(WORKER_PATTERN_PREFIX)}
            self._patterns = [
                (name.removeprefix(WORKER_PATTERN_PREFIX), t)
                for name, t in entries.items()
                if name.startswith(WORKER_PATTERN_PREFIX)
            ]
        return len(self._own) + len(self._patterns)

    def own_token(self, worker_id: str) -> str | None:
        """The worker's own token: its ``workers.toml`` entry, else the first pattern it matches."""
        own = self._own.get(worker_id)
        if own is not None:
            return own
        for pattern, token in self._patterns:
            if fnmatchcase(worker_id, pattern):
                return token
        return None

    def authenticate(self, worker_id: str, token: str | None) -> str | None:
        """Check a long-lived ``token`` for ``worker_id``; return the worker's own secret (for
        signatures), if any."""
        if not self._global and not self._own and not self._patterns:
            raise Unauthorized(
                "no worker tokens are configured (set GLOBAL_WORKER_TOKEN or WORKERS_CONFIG_PATH)"
            )
        if not token:
            raise Unauthorized(f"send the worker token in the {WORKER_TOKEN_HEADER} header")
        own = self.own_token(worker_id)
        if own is not None:
            if hmac.compare_digest(token.encode(), own.encode()):
                return own
        elif self._global and hmac.compare_digest(token.encode(), self._global.encode()):
            return None
        raise Unauthorized(f"the {WORKER_TOKEN_HEADER} is not valid for worker {worker_id!r}")

    async def identify(
        self,
        claimed: str | None,
        token: str | None,
        certificate: str | None,
        short_lived: Callable[[str], Awaitable[TokenHolder | None]],
    ) -> WorkerIdentity:
        """Who sends a request that names worker ``claimed`` (or none), with ``token`` and a verified
        client ``certificate``'s worker id (its CN); ``Unauthorized`` or ``Forbidden`` if nobody.

        ``short_lived`` looks a short-lived token up. A certificate wins over a token, as in
        Avtomatika; without one, a short-lived token names its worker, so ``claimed`` may be None.
        """
        if certificate is not None and self.mode != "token-only":
            if claimed and claimed != certificate:
                raise Forbidden(
                    f"the client certificate is worker {certificate!r}'s (its CN), "
                    f"but the request is for worker {claimed!r}"
                )
            return WorkerIdentity(certificate, self.own_token(certificate), "certificate")
        if token and token.startswith(SHORT_LIVED_TOKEN_PREFIX):
            holder = await short_lived(token)
            if holder is None:
                raise Unauthorized(
                    "the short-lived worker token has expired (or was never issued); exchange the "
                    "worker's token or client certificate for a new one at POST /_worker/auth/token"
                )
            if claimed and claimed != holder.worker_id:
                raise Unauthorized(
                    f"the short-lived token was issued to worker {holder.worker_id!r}, "
                    f"but the request is for worker {claimed!r}"
                )
            if self.mode == "mtls-only" and not holder.by_certificate:
                raise Unauthorized(
                    "WORKER_AUTH_MODE=mtls-only accepts short-lived tokens issued for a client "
                    "certificate only; this one was issued for a worker token"
                )
            return WorkerIdentity(holder.worker_id, self.own_token(holder.worker_id), "short-lived")
        if self.mode == "mtls-only":
            raise Unauthorized(
                "a client certificate is required (WORKER_AUTH_MODE=mtls-only): connect over TLS with a "
                "certificate signed by the orchestrator's TLS_CA_PATH, its CN the worker's id; "
                "worker tokens are not accepted"
            )
        if not claimed:
            raise Unauthorized(f"send the worker's id in the {WORKER_ID_HEADER} header")
        if not token and self.mode == "mixed":
            if not self._global and not self._own and not self._patterns:
                raise Unauthorized(
                    "no worker tokens are configured (set GLOBAL_WORKER_TOKEN or WORKERS_CONFIG_PATH), "
                    "and the request has no client certificate"
                )
            raise Unauthorized(
                f"send the worker token in the {WORKER_TOKEN_HEADER} header, or connect with a client "
                "certificate"
            )
        return WorkerIdentity(claimed, self.authenticate(claimed, token), "token")


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
    """A guard that authenticates the worker named by the path or ``X-Worker-ID`` (or by its
    certificate or short-lived token); ``connection.state.worker`` is then ``(worker_id, secret)``
    and ``connection.state.worker_auth`` how it proved it.

    A failed authentication counts against the budgets of that worker id and of the
    client's address (``RateLimited`` once either is spent); a good one costs nothing.
    """

    # Async on purpose: Litestar runs a plain-function guard in a worker thread, per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        path_id = connection.path_params.get("worker_id")
        header_id = connection.headers.get(WORKER_ID_HEADER)
        claimed = path_id or header_id
        engine: Orchestrator = connection.app.state["engine"]
        try:
            if path_id and header_id and path_id != header_id:
                raise Forbidden(
                    f"{WORKER_ID_HEADER} {header_id!r} does not match the path's worker {path_id!r}"
                )
            identity = await credentials().identify(
                claimed,
                connection.headers.get(WORKER_TOKEN_HEADER),
                certificate_worker_id(connection.scope),
                lambda token: engine.workers.verify_token(token),
            )
        except (Unauthorized, Forbidden):
            # The address first: a guesser that varies the worker id is stopped there.
            address = connection.client.host if connection.client else "unknown"
            await charge(connection, "auth_address", subject=address)
            if claimed:
                await charge(connection, "auth", subject=claimed)
            raise
        connection.state.worker = (identity.worker_id, identity.secret)
        connection.state.worker_auth = identity.method

    return guard


def certificate_worker_id(scope: Any) -> str | None:
    """The CN of the request's verified client certificate (the ASGI ``tls`` extension's
    ``client_cert_name``, RFC 4514); None without one, or when its subject has no single CN."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not isinstance(tls, dict) or tls.get("client_cert_error"):
        return None
    name = tls.get("client_cert_name")
    if not isinstance(name, str):
        return None
    names = [value for key, value in _rfc4514_attributes(name) if key.upper() in ("CN", "2.5.4.3")]
    return names[0] if len(names) == 1 and names[0] else None


def _rfc4514_attributes(name: str) -> list[tuple[str, str]]:
    """The ``(type, value)`` pairs of an RFC 4514 distinguished name, values unescaped.

    Separators (``,`` and ``+``) count only when not escaped, so a value such as ``a\\,CN=b``
    cannot pass for a second attribute.
    """
    pairs: list[tuple[str, str]] = []
    raw: list[str] = []
    i = 0
    while i <= len(name):
        char = name[i] if i < len(name) else ","
        if char == "\\" and i + 1 < len(name):
            raw.append(name[i : i + 2])
            i += 2
            continue
        if char in ",+":
            key, _, value = "".join(raw).partition("=")
            pairs.append((key.strip(), _unescape(value)))
            raw = []
        else:
            raw.append(char)
        i += 1
    return pairs


def _unescape(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode()
            i += 2
            continue
        out += value[i].encode()
        i += 1
    return out.decode(errors="replace")


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
