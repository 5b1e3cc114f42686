"""Guards: who may call which routes."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ["CLIENT_TOKEN_HEADER", "client_token_guard"]

CLIENT_TOKEN_HEADER = "X-Client-Token"


def client_token_guard(
    token: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard that admits requests whose ``X-Client-Token`` equals ``token``."""
    expected = token.encode()

    # Async on purpose: Litestar runs a plain-function guard in a worker thread, per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        sent = connection.headers.get(CLIENT_TOKEN_HEADER)
        if sent is None:
            raise NotAuthorizedException(f"send the client token in the {CLIENT_TOKEN_HEADER} header")
        # Constant-time comparison: the time taken says nothing about how much of the token matched.
        if not hmac.compare_digest(sent.encode(), expected):
            raise NotAuthorizedException(
                f"the {CLIENT_TOKEN_HEADER} header does not hold a valid client token"
            )
        connection.scope["auth"] = "client"

    return guard
