"""A database that cannot serve now is a 503 with Retry-After, never a 500 with a traceback."""

from __future__ import annotations

import asyncpg
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from chronik.api.errors import exception_handlers


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),  # the server is down
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        TimeoutError(),  # no pooled connection in time
        # a session ended under a statement (chaos restart-fast): asyncpg's protocol state is lost
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ],
)
def test_an_unavailable_database_is_a_503_with_retry_after(error: BaseException) -> None:
    @get("/boom")
    async def boom() -> None:
        raise error

    with TestClient(Litestar([boom], exception_handlers=exception_handlers)) as client:
        answer = client.get("/boom")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert int(answer.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (
            asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
            "DB_LOCK_TIMEOUT",
        ),
        (
            asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
            "DB_STATEMENT",
        ),
    ],
)
def test_a_statement_cut_by_a_timeout_is_a_503_database_busy(error: BaseException, setting: str) -> None:
    # A QueryCanceledError is an OperatorInterventionError too: busy, not unavailable.
    @get("/boom")
    async def boom() -> None:
        raise error

    with TestClient(Litestar([boom], exception_handlers=exception_handlers)) as client:
        answer = client.get("/boom")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "DATABASE_BUSY"
    assert setting in answer.json()["error"]["message"]
    assert int(answer.headers["Retry-After"]) >= 1


def test_a_bug_is_still_a_500() -> None:
    @get("/boom")
    async def boom() -> None:
        raise asyncpg.exceptions.UndefinedColumnError('column "nope" does not exist')

    with TestClient(Litestar([boom], exception_handlers=exception_handlers)) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "INTERNAL_ERROR"
