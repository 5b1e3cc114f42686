"""``create_app(engine, settings)``: the Litestar application of one instance."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send

from chronik.adapters.config import ClientEntry, load_clients
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.errors import ConfigError

from .console import console_parts
from .errors import exception_handlers
from .guards import client_token_guard
from .openapi import BlueprintOpenAPIConfig
from .ports import Orchestrator
from .routes.jobs import job_routes
from .routes.public import metrics, public_approval, ready, status
from .routes.workers import worker_routes
from .worker_auth import WorkerCredentials

__all__ = ["DOCS_ASSETS", "SWAGGER_UI", "create_app"]

SWAGGER_UI = Path(__file__).parent / "static" / "swagger"
"""Swagger UI (swagger-ui-dist, see its SOURCE.txt), shipped in the package: the API docs need no CDN."""

DOCS_ASSETS = "/_public/docs/assets"
"""Where ``SWAGGER_UI``'s files are served, beside the docs page."""


def _swagger_ui() -> SwaggerRenderPlugin:
    """The docs page at ``/_public/docs``, loading every asset from this server (offline, no CDN)."""
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{DOCS_ASSETS}/favicon-32x32.png'>",
    )


def create_app(
    engine: Orchestrator,
    *,
    client_token: str | None,
    worker_token: str | None = None,
    workers_config_path: str | None = None,
    manage_engine: bool = True,
    clients_config_path: str | None = None,
    client_rate_limit: int = 0,
    enable_client_api: bool = True,
    console_enabled: bool = True,
    worker_auth_mode: str = "mixed",
    worker_token_ttl: float = 3600.0,
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
        console_enabled: ``CONSOLE_ENABLED``; the web console at ``/console`` (it signs in with
            the clients' tokens, so it is served only with the client API).
        enable_client_api: ``ENABLE_CLIENT_API``; False serves only the worker routes and
            ``/_public`` (no client token is needed then).
        worker_auth_mode: ``WORKER_AUTH_MODE``: ``mixed``, ``mtls-only`` or ``token-only``; the
            client certificate comes in each request's ASGI ``tls`` extension.
        worker_token_ttl: ``WORKER_TOKEN_TTL_SECONDS``, the life of a short-lived worker token.
    """
    clients = load_clients(clients_config_path) if clients_config_path else {}
    if client_token:
        # CLIENT_TOKEN is the admin's: it sees every job (a single-team deployment, as before tenancy).
        digest = hashlib.sha256(client_token.encode()).hexdigest()
        if "client" in clients:
            raise ConfigError(
                f"{clients_config_path}: [client] is the name of CLIENT_TOKEN's jobs; rename the entry "
                "(or unset CLIENT_TOKEN), or the two would own the same jobs"
            )
        if any(entry.token_sha256 == digest for entry in clients.values()):
            raise ConfigError(f"CLIENT_TOKEN is also a token in {clients_config_path}; give each its own")
        clients["client"] = ClientEntry(token_sha256=digest, role="admin")
    if not clients and enable_client_api:
        raise ConfigError(
            "CLIENT_TOKEN is not set (nor CLIENTS_CONFIG_PATH); clients authenticate with it (X-Client-Token)"
        )
    credentials = WorkerCredentials(
        worker_token, workers_config_path, mode=worker_auth_mode, token_ttl=worker_token_ttl
    )
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

    console, templates = console_parts(clients) if console_enabled and enable_client_api else ([], None)
    return Litestar(
        template_config=templates,
        route_handlers=[
            *(
                [job_routes([client_token_guard(clients, default_rate_limit=client_rate_limit)])]
                if enable_client_api
                else []
            ),
            *console,
            worker_routes(lambda: credentials),
            status,
            ready,
            metrics,
            public_approval,
            create_static_files_router(path=DOCS_ASSETS, directories=[SWAGGER_UI], name="docs_assets"),
        ],
        exception_handlers=exception_handlers,
        middleware=[_count_requests(instruments)] if isinstance(instruments, Metrics) else [],
        lifespan=[lifespan],
        state=State({"engine": engine, "worker_credentials": credentials}),
        openapi_config=BlueprintOpenAPIConfig(
            endpoints=lambda: engine.blueprints.endpoints,
            title="chronik",
            version="1",
            description="An event-sourced workflow orchestrator on PostgreSQL.",
            path="/_public/docs",
            render_plugins=[_swagger_ui()],
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
