"""Serve over HTTP with uvicorn: one engine in this process, or several engine processes on one port.

``serve`` runs one instance: the engine starts first, the port opens after.
``serve_processes`` is ``chronik serve --processes N``: this process binds the
port and starts N ``chronik serve`` children, each a whole engine (its own pool,
LISTEN connection and loops) serving the same port, and supervises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import structlog
import uvicorn

from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.embedded import EmbeddedPostgres, start_embedded
from chronik.api.app import create_app
from chronik.core.errors import ChronikError

from ._runtime.setup import prepare_database
from ._tls import uvicorn_tls_options
from .engine import Engine
from .settings import Settings

__all__ = ["serve", "serve_processes"]

log = structlog.get_logger("chronik.server")

_STOP_GRACE_SECONDS = 60.0
"""How long stopped children may take (uvicorn's 10 s, then the engine's drain of up to 30 s)."""

_REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
"""Give each child its own listening socket in one SO_REUSEPORT group (Linux spreads connections
evenly over them); elsewhere every child accepts from one shared socket."""


async def serve(
    engine: Engine,
    *,
    host: str,
    port: int,
    on_ready: Callable[[], None] | None = None,
    sock: socket.socket | None = None,
    parent_fd: int | None = None,
) -> None:
    """Start ``engine``, serve its API on ``host:port`` until SIGINT/SIGTERM, then stop the engine.

    The engine starts before the port opens, so a failure to reach the database is
    raised here, with its message, rather than logged by the server. ``sock`` is a
    listening socket to serve on instead (a child of ``serve_processes``); ``parent_fd``
    is the read end of a pipe whose other end only the parent holds: when it closes
    (the parent is gone, even killed), this process stops as on SIGTERM. With
    ``TLS_CERT_PATH`` it serves HTTPS, and asks for client certificates with ``TLS_CA_PATH``.
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
        enable_client_api=settings.enable_client_api,
        console_enabled=settings.console_enabled,
        worker_auth_mode=settings.worker_auth_mode,
        worker_token_ttl=settings.worker_token_ttl_seconds,
    )
    tls = uvicorn_tls_options(settings)  # before the engine starts: a bad TLS_* setting fails first
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
            **tls,
        )
        server = uvicorn.Server(config)
        # uvicorn re-raises SIGTERM/SIGINT after serve() returns, which would end the process
        # before the engine (and the embedded PostgreSQL, and the dev worker) stop. The
        # signals are ours: the first asks for a graceful stop, a second one forces it.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop_server, server)
        if parent_fd is not None:
            # Readable means end of file: nothing is ever written, so the parent has exited.
            loop.add_reader(parent_fd, _parent_gone, loop, parent_fd, server)
        helpers = [
            asyncio.create_task(_announce_when_started(server, on_ready)),
            asyncio.create_task(_release_polls_on_exit(server, engine)),
        ]
        try:
            await server.serve(sockets=None if sock is None else [sock])
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if parent_fd is not None:
                loop.remove_reader(parent_fd)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
    finally:
        await engine.stop()


def _stop_server(server: uvicorn.Server) -> None:
    if server.should_exit:
        server.force_exit = True
    server.should_exit = True


def _parent_gone(loop: asyncio.AbstractEventLoop, fd: int, server: uvicorn.Server) -> None:
    loop.remove_reader(fd)
    log.warning("parent_gone", pid=os.getpid())
    _stop_server(server)


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


# -- several processes ------------------------------------------------------------


async def serve_processes(
    app: str, *, host: str, port: int, processes: int, settings: Settings, log_level: str = "INFO"
) -> None:
    """Run ``processes`` engine processes of APP on ``host:port`` until SIGINT/SIGTERM.

    This process binds the port, starts the embedded PostgreSQL if no ``DATABASE_URL``
    is set (once: the children get its URL), migrates, and starts each child as
    ``chronik serve APP`` with ``INSTANCE_ID`` ``<INSTANCE_ID>-<n>``. It forwards SIGINT and
    SIGTERM to them and waits for them. A child that exits on its own is not restarted:
    the others are stopped and this raises a ``ChronikError`` (exit code 2), so the
    service's supervisor (systemd, compose, Kubernetes) sees the failure and restarts
    the whole group. Children stop by themselves when this process is gone, killed too.
    """
    uvicorn_tls_options(settings)  # the children serve TLS from the same settings: check them once, here
    embedded: EmbeddedPostgres | None = None
    database_url = settings.database_url
    if database_url is None:
        embedded = await asyncio.to_thread(start_embedded, Path(settings.data_dir))
        database_url = embedded.dsn
    try:
        await _migrate(database_url)
        sockets = _listening_sockets(host, port, processes)
        # The children watch the read end; only this process holds the write end (os.pipe's
        # descriptors are not inherited), so it closes, and they see end of file, however
        # this process ends. Signals alone would leave children of a killed parent behind.
        watched, held = os.pipe()
        children: list[asyncio.subprocess.Process] = []
        try:
            for number, sock in enumerate(sockets, start=1):
                children.append(
                    await _start_child(
                        app, number, sock, watched, host=host, database_url=database_url,
                        settings=settings, log_level=log_level,
                    )
                )  # fmt: skip
        except BaseException:
            _signal_all(children, signal.SIGTERM)
            await _wait_all(children)
            os.close(held)
            raise
        finally:
            os.close(watched)
            for sock in set(sockets):
                sock.close()  # the children have their own descriptors
        log.info("serving", processes=processes, pids=[child.pid for child in children], port=port)
        try:
            await _supervise(children)
        finally:
            os.close(held)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _migrate(database_url: str) -> None:
    # Once, here, rather than in N children racing for the migration lock: a database that
    # cannot be reached fails the command with one message, before anything is started.
    database = await Database.open(database_url, max_size=1)
    try:
        async with database.connection() as conn:
            applied = await prepare_database(conn)
        if applied:
            log.info("migrated", applied=applied)
    finally:
        await database.close()


def _listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` (one shared socket where SO_REUSEPORT is missing)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ChronikError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    first = _listen(family, address, host, port)
    if not _REUSE_PORT:
        return [first] * count
    # Port 0 means any free port: the others join the one the first socket got.
    address = (address[0], first.getsockname()[1], *address[2:])
    return [first, *(_listen(family, address, host, port) for _ in range(count - 1))]


def _listen(family: socket.AddressFamily, address: tuple[object, ...], host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _REUSE_PORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        raise ChronikError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def _start_child(
    app: str,
    number: int,
    sock: socket.socket,
    watched: int,
    *,
    host: str,
    database_url: str,
    settings: Settings,
    log_level: str,
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "INSTANCE_ID": f"{settings.instance_id}-{number}",
        "SERVE_PROCESSES": "1",
    }
    port = sock.getsockname()[1]
    argv = [
        sys.executable, "-m", "chronik", "--log-level", log_level, "serve", app,
        "--host", host, "--port", str(port), "--processes", "1",
        "--socket-fd", str(sock.fileno()), "--parent-fd", str(watched),
    ]  # fmt: skip
    # A session of its own: a Ctrl-C in the terminal reaches this process only, which passes
    # it on once; the child would otherwise get it twice and take the second as "stop now".
    return await asyncio.create_subprocess_exec(
        *argv, env=env, pass_fds=(sock.fileno(), watched), start_new_session=True
    )


async def _supervise(children: list[asyncio.subprocess.Process]) -> None:
    """Forward SIGINT/SIGTERM to the children and wait for them; if one ends first, stop the rest."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def forward(sig: signal.Signals) -> None:
        stopping.set()
        _signal_all(children, sig)  # the first stops them gracefully, a second at once

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, forward, sig)
    try:
        exits = [asyncio.ensure_future(child.wait()) for child in children]
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([*exits, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        ended = [(n, c) for n, c in enumerate(children, start=1) if c.returncode is not None]
        if not stopping.is_set():
            _signal_all(children, signal.SIGTERM)
        await _wait_all(children)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if not stopping.is_set():
        number, child = ended[0]
        log.error("process_exited", process=number, pid=child.pid, code=child.returncode)
        raise ChronikError(
            f"engine process {number} (pid {child.pid}) exited with code {child.returncode}; "
            "the others were stopped"
        )
    codes = [child.returncode for child in children]
    if any(codes):
        raise ChronikError(f"engine processes exited with codes {codes}")


def _signal_all(children: list[asyncio.subprocess.Process], sig: signal.Signals) -> None:
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)


async def _wait_all(children: list[asyncio.subprocess.Process]) -> None:
    """Wait for every child; kill those still running after the grace period."""
    try:
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in children)), _STOP_GRACE_SECONDS)
    except TimeoutError:
        _signal_all(children, signal.SIGKILL)
        await asyncio.gather(*(c.wait() for c in children))
