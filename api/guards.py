"""Guards: who may call which routes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ["CLIENT_TOKEN_HEADER", "client_of", "client_token_guard"]

CLIENT_TOKEN_HEADER = "X-Client-Token"


def client_token_guard(
    clients: Mapping[str, str],
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard that admits requests whose ``X-Client-Token`` is a known client's.

    ``clients`` maps each client's name to the SHA-256 digest of its token; the
    request is then that client's (``client_of``), and the log records the name.
    """
    digests = [(name, bytes.fromhex(digest)) for name, digest in clients.items()]

    # Async on purpose: Litestar runs a plain-function guard in a worker thread, per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        sent = connection.headers.get(CLIENT_TOKEN_HEADER)
        if sent is None:
            raise NotAuthorizedException(f"send the client token in the {CLIENT_TOKEN_HEADER} header")
        digest = hashlib.sha256(sent.encode()).digest()
        # Constant-time comparisons, all of them: the time taken says nothing about any token.
        found = [name for name, known in digests if hmac.compare_digest(digest, known)]
        if not found:
            raise NotAuthorizedException(
                f"the {CLIENT_TOKEN_HEADER} header does not hold a valid client token"
            )
        connection.scope["auth"] = found[0]

    return guard


def client_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The name of the client a guarded request came from."""
    return str(connection.scope.get("auth") or "client")
