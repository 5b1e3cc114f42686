"""Serve one instance over HTTP with uvicorn: the engine starts first, the port opens after."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import uvicorn

from chronik.api.app import create_app

from .engine import Engine

__all__ = ["serve"]


async def serve(engine: Engine, *, host: str, port: int, on_ready: Callable[[], None] | None = None) -> None:
    """Start ``engine``, serve its API on ``host:port`` until SIGINT/SIGTERM, then stop the engine.

    The engine starts before the port opens, so a failure to reach the database is
    raised here, with its message, rather than logged by the server.
    """
    settings = engine.settings
    app = create_app(
        engine,
        client_token=settings.client_token,
        worker_token=settings.global_worker_token,
        workers_config_path=settings.workers_config_path,
        manage_engine=False,
        clients_config_path=settings.clients_config_path,
        client_rate_limit=settings.client_rate_limit,
    )
    await engine.start()
    try:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        # uvicorn re-raises SIGTERM/SIGINT after serve() returns, which would end the process
        # before the engine (and the embedded PostgreSQL, and the dev worker) stop. The
        # signals are ours: the first asks for a graceful stop, a second one forces it.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop_server, server)
        helpers = [
            asyncio.create_task(_announce_when_started(server, on_ready)),
            asyncio.create_task(_release_polls_on_exit(server, engine)),
        ]
        try:
            await server.serve()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
    finally:
        await engine.stop()


def _stop_server(server: uvicorn.Server) -> None:
    if server.should_exit:
        server.force_exit = True
    server.should_exit = True


async def _release_polls_on_exit(server: uvicorn.Server, engine: Engine) -> None:
    # uvicorn waits for open requests before it stops; worker long-polls are answered at once instead.
    while not server.should_exit:  # noqa: ASYNC110 (uvicorn sets a plain attribute on SIGINT/SIGTERM)
        await asyncio.sleep(0.1)
    engine.begin_shutdown()


async def _announce_when_started(server: uvicorn.Server, on_ready: Callable[[], None] | None) -> None:
    # uvicorn sets a plain attribute, not an event, once its socket is bound.
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if on_ready is not None:
        on_ready()
