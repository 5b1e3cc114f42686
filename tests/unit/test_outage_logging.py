"""A database outage is logged as one warning line, never as an error with a traceback.

Found by the fault harness (chaos restart-fast): every background loop, asyncpg's pool
and the workers' polls logged tracebacks or errors while PostgreSQL restarted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from chronik import Worker
from chronik._runtime.loops import run_loop
from chronik.adapters.telemetry.logs import OutageWithoutTraceback
from chronik.core.errors import DatabaseBusy

SHUTTING_DOWN = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")


async def _one_tick(error: Exception) -> list[MutableMapping[str, Any]]:
    stop = asyncio.Event()

    async def tick() -> float | None:
        stop.set()
        raise error

    with capture_logs() as logs:
        await run_loop("executor", tick, stop, interval=0.01)
    return logs


async def test_a_loop_meeting_an_outage_logs_a_warning_without_traceback() -> None:
    [entry] = await _one_tick(SHUTTING_DOWN)
    assert entry["log_level"] == "warning" and entry["event"] == "database_unavailable"
    assert entry["during"] == "loop_failed" and "shutting down" in entry["error"]
    assert "exc_info" not in entry


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        DatabaseBusy("a statement waited longer than DB_LOCK_TIMEOUT_SECONDS ..."),
    ],
)
async def test_a_loop_meeting_a_busy_database_logs_a_warning_without_traceback(error: Exception) -> None:
    [entry] = await _one_tick(error)
    assert entry["log_level"] == "warning" and entry["event"] == "database_busy"
    assert entry["during"] == "loop_failed" and "exc_info" not in entry


async def test_a_loop_meeting_a_bug_still_logs_its_traceback() -> None:
    [entry] = await _one_tick(KeyError("bug"))
    assert entry["log_level"] == "error" and entry["event"] == "loop_failed" and entry["exc_info"]


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "asyncpg.pool",
        logging.WARNING,
        __file__,
        1,
        "Failed to restore the pool connection floor; %s",
        ("retrying",),
        info,
    )


def test_the_pools_reconnect_warning_loses_its_traceback_in_an_outage_only() -> None:
    outage = _record(SHUTTING_DOWN)
    assert OutageWithoutTraceback().filter(outage)
    assert outage.exc_info is None
    assert outage.getMessage() == (
        "Failed to restore the pool connection floor; retrying "
        "(CannotConnectNowError: the database system is shutting down)"
    )
    bug = _record(ValueError("a bug"))
    assert OutageWithoutTraceback().filter(bug) and bug.exc_info is not None


class _Unavailable:
    """A link whose every poll answers 503 with Retry-After."""

    def __init__(self, worker: Worker) -> None:
        self.worker, self.polls = worker, 0

    async def request(self, method: str, path: str, **options: Any) -> tuple[int, str, float]:
        self.polls += 1
        if self.polls >= 2:
            self.worker._draining.set()
        return 503, '{"error": {"code": "DATABASE_UNAVAILABLE"}}', 0.01


async def test_a_worker_waits_out_a_503_on_its_poll_with_a_warning() -> None:
    worker = Worker(worker_type="t", capacity=1)
    worker._link = _Unavailable(worker)  # type: ignore[assignment]
    with capture_logs() as logs:
        await asyncio.wait_for(worker._poll(), 5)
    assert [entry["event"] for entry in logs] == ["poll_unavailable", "poll_unavailable"]
    assert {entry["log_level"] for entry in logs} == {"warning"}
