"""``create_app(engine, settings)``: the Litestar application of one instance."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, Receive, Scope, Send

from chronik.adapters.config import ClientEntry, load_clients
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.errors import ConfigError

from .errors import exception_handlers
from .guards import client_token_guard
from .ports import Orchestrator
from .routes.jobs import job_routes
from .routes.public import metrics, ready, status
from .routes.workers import worker_routes
from .worker_auth import WorkerCredentials

__all__ = ["create_app"]


def create_app(
    engine: Orchestrator,
    *,
    client_token: str | None,
    worker_token: str | None = None,
    workers_config_path: str | None = None,
    manage_engine: bool = True,
    clients_config_path: str | None = None,
    client_rate_limit: int = 0,
) -> Litestar:
    """The HTTP app over ``engine``.

    Args:
        engine: The orchestrator the routes call.
        client_token: ``CLIENT_TOKEN``, a token clients may send as ``X-Client-Token``; the
            log names its requests ``client``.
        clients_config_path: ``CLIENTS_CONFIG_PATH``, a ``clients.toml`` of named clients'
            tokens; the log names each client's requests after it. One of the two is required.
        client_rate_limit: ``CLIENT_RATE_LIMIT_PER_MINUTE``, requests per minute of a client
            without its own ``rate_limit_per_minute``; 0: none.
        worker_token: ``GLOBAL_WORKER_TOKEN``, the token any worker may send as ``X-Worker-Token``.
        workers_config_path: ``WORKERS_CONFIG_PATH``, a ``workers.toml`` of per-worker tokens.
        manage_engine: Start the engine when the app starts and stop it when the app stops.
    """
    clients = load_clients(clients_config_path) if clients_config_path else {}
    if client_token:
        clients.setdefault(
            "client", ClientEntry(token_sha256=hashlib.sha256(client_token.encode()).hexdigest())
        )
    if not clients:
        raise ConfigError(
            "CLIENT_TOKEN is not set (nor CLIENTS_CONFIG_PATH); clients authenticate with it (X-Client-Token)"
        )
    credentials = WorkerCredentials(worker_token, workers_config_path)
    # The engine's Metrics, when it has them (a test's stand-in may not): the ports stay unchanged.
    instruments = getattr(engine, "metrics", None)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if manage_engine:
            await engine.start()
        try:
            yield
        finally:
            if manage_engine:
                await engine.stop()

    return Litestar(
        route_handlers=[
            job_routes([client_token_guard(clients, default_rate_limit=client_rate_limit)]),
            worker_routes(lambda: credentials),
            status,
            ready,
            metrics,
        ],
        exception_handlers=exception_handlers,
        middleware=[_count_requests(instruments)] if isinstance(instruments, Metrics) else [],
        lifespan=[lifespan],
        state=State({"engine": engine, "worker_credentials": credentials}),
        openapi_config=OpenAPIConfig(
            title="chronik",
            version="1",
            description="An event-sourced workflow orchestrator on PostgreSQL.",
            path="/_public/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
    )


# The first path segment names the route group of chronik_http_requests_total.
_ROUTE_GROUPS = {"api": "client", "_worker": "worker", "_public": "public"}


def _count_requests(instruments: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware counting each routed HTTP request by route group (a dict lookup, an increment)."""
    requests = instruments.http_requests
    counters = {segment: requests.labels(group) for segment, group in _ROUTE_GROUPS.items()}
    other = requests.labels("other")

    def wrap(app: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                counters.get(scope["path"].split("/", 2)[1], other).inc()
            await app(scope, receive, send)

        return counted

    return wrap
