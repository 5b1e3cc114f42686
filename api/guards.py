"""Guards: who may call which routes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from chronik.adapters.config import ClientEntry

from .ports import Orchestrator

__all__ = [
    "CLIENT_TOKEN_HEADER",
    "ClientDirectory",
    "client_entry_of",
    "client_of",
    "client_token_guard",
    "owner_of",
]

CLIENT_TOKEN_HEADER = "X-Client-Token"


class ClientDirectory:
    """The known clients by the SHA-256 digests of their tokens: who holds a token."""

    def __init__(self, clients: Mapping[str, ClientEntry]) -> None:
        self._digests = [(name, bytes.fromhex(entry.token_sha256), entry) for name, entry in clients.items()]

    def identify(self, token: str) -> tuple[str, ClientEntry] | None:
        """The client whose token this is (its name and entry), or None."""
        digest = hashlib.sha256(token.encode()).digest()
        # Constant-time comparisons, all of them: the time taken says nothing about any token.
        found = [(name, entry) for name, known, entry in self._digests if hmac.compare_digest(digest, known)]
        return found[0] if found else None


def client_token_guard(
    clients: Mapping[str, ClientEntry], *, default_rate_limit: int = 0
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard that admits requests whose ``X-Client-Token`` is a known client's, within its rate.

    ``clients`` are the named clients with their tokens' SHA-256 digests; the
    request is then that client's (``client_of``), and the log records the name.
    """
    directory = ClientDirectory(clients)

    # Async on purpose: Litestar runs a plain-function guard in a worker thread, per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        sent = connection.headers.get(CLIENT_TOKEN_HEADER)
        if sent is None:
            raise NotAuthorizedException(f"send the client token in the {CLIENT_TOKEN_HEADER} header")
        found = directory.identify(sent)
        if found is None:
            raise NotAuthorizedException(
                f"the {CLIENT_TOKEN_HEADER} header does not hold a valid client token"
            )
        name, entry = found
        connection.scope["auth"] = name
        connection.state.client = entry
        limit = entry.rate_limit_per_minute if entry.rate_limit_per_minute is not None else default_rate_limit
        if limit:
            engine: Orchestrator = connection.app.state["engine"]
            await engine.check_rate(f"client:{name}", limit, 60.0)

    return guard


def client_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The name of the client a guarded request came from."""
    return str(connection.scope.get("auth") or "client")


def client_entry_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ClientEntry | None:
    """The ``clients.toml`` entry (or ``CLIENT_TOKEN``'s) of a guarded request."""
    entry = getattr(connection.state, "client", None)
    return entry if isinstance(entry, ClientEntry) else None


def owner_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Whose jobs a guarded request may see and act on: its client's own, or every job (None) for
    an admin (``role = "admin"`` in ``clients.toml``, and the single ``CLIENT_TOKEN``)."""
    entry = client_entry_of(connection)
    if entry is not None and entry.role == "admin":
        return None
    return client_of(connection)
