"""``create_app(engine, settings)``: the Litestar application of one instance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from chronik.core.errors import ConfigError

from .errors import exception_handlers
from .guards import client_token_guard
from .ports import Orchestrator
from .routes.jobs import job_routes
from .routes.public import status

__all__ = ["create_app"]


def create_app(engine: Orchestrator, *, client_token: str | None, manage_engine: bool = True) -> Litestar:
    """The HTTP app over ``engine``.

    Args:
        engine: The orchestrator the routes call.
        client_token: The token clients must send as ``X-Client-Token``; required.
        manage_engine: Start the engine when the app starts and stop it when the app stops.
    """
    if not client_token:
        raise ConfigError("CLIENT_TOKEN is not set; clients authenticate with it (X-Client-Token)")

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
        route_handlers=[job_routes([client_token_guard(client_token)]), status],
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        state=State({"engine": engine}),
        openapi_config=OpenAPIConfig(
            title="chronik",
            version="1",
            description="An event-sourced workflow orchestrator on PostgreSQL.",
            path="/_public/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
    )
