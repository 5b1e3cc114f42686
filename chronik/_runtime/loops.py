"""The one way a background loop runs: tick, survive its errors, wait jittered or until woken.

Every daemon of an instance (executor, watcher, projections, webhooks, files)
is a ``tick`` run by ``run_loop``. A tick returns how soon it wants to run again:
``BUSY`` (at once: it found a full page of work), a number of seconds (a timer
is due sooner than the poll, or it found some work), or ``None`` (it found
nothing: the usual poll). The poll is jittered so that the safety-net polls of
many instances spread apart, and any wake-up (a NOTIFY, a freed slot, stop) ends
the wait early.

A loop given an ``idle_interval`` backs off while it is idle: after each tick
that found nothing, with nothing waking it, its wait doubles from ``interval``
up to ``idle_interval``, so an idle instance costs the database a query per loop
every ``idle_interval`` rather than every ``interval``. Work found or a wake-up
brings it back to ``interval``; a wake-up never makes it tick more often than
once per ``interval``, so a stream of notifications cannot turn it into a busy loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

import structlog

from chronik.adapters.postgres.database import BUSY_ERRORS, UNAVAILABLE_ERRORS
from chronik.adapters.postgres.listener import Signal

__all__ = ["BUSY", "jittered", "log_failure", "run_loop", "wait_any"]

log = structlog.get_logger("chronik.loops")

BUSY = 0.0
"""What a tick returns when it should run again at once."""


def log_failure(exc: Exception, event: str, **context: object) -> None:
    """Log a background tick's failure: a traceback for a bug, one warning line for an outage.

    A database that is restarting, down or cutting sessions is an operator's event, not
    chronik's error: the loop simply tries again after its wait (found by the fault harness,
    whose restart-fast scenario filled the log with tracebacks of every loop). So is a busy
    one: a statement cut by the lock or statement timeout, or no free pooled connection.
    """
    if isinstance(exc, BUSY_ERRORS):  # first: a cancelled statement is an UNAVAILABLE_ERROR too
        log.warning("database_busy", during=event, error=f"{type(exc).__name__}: {exc}", **context)
    elif isinstance(exc, UNAVAILABLE_ERRORS):
        log.warning("database_unavailable", during=event, error=f"{type(exc).__name__}: {exc}", **context)
    else:
        log.exception(event, **context)


def jittered(seconds: float) -> float:
    """``seconds`` give or take a fifth."""
    return seconds * random.uniform(0.8, 1.2)


async def wait_any(events: Sequence[asyncio.Event], *, seconds: float | None) -> None:
    """Return when any of ``events`` is set, or after ``seconds``."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_loop(
    name: str,
    tick: Callable[[], Awaitable[float | None]],
    stop: asyncio.Event,
    *,
    interval: float,
    wake: Sequence[Signal | asyncio.Event] = (),
    idle_interval: float | None = None,
) -> None:
    """Run ``tick`` until ``stop`` is set; an error is logged and the loop goes on after its wait.

    ``wake`` are signals (taken before each tick, so a notification that arrives
    while it runs still counts) and events that end a wait early. With
    ``idle_interval``, the loop starts idle and backs off while idle (see above).
    """
    clock = asyncio.get_running_loop().time
    longest = interval if idle_interval is None else max(interval, idle_interval)
    # Starting idle: an instance that starts into a quiet cluster goes straight to its slow
    # poll; the first tick runs at once anyway, and work or a wake-up brings the pace back.
    poll = longest
    while not stop.is_set():
        woken = [source.current() if isinstance(source, Signal) else source for source in wake]
        try:
            again = await tick()
        except Exception as exc:
            log_failure(exc, "loop_failed", loop=name)
            again = None
        if stop.is_set():
            return
        ticked = clock()
        if again is None:
            timeout = jittered(poll)
            poll = min(longest, poll * 2)
        else:
            timeout = min(jittered(interval), max(0.0, again))
            poll = interval
        if timeout <= 0:
            continue
        await wait_any([stop, *woken], seconds=timeout)
        if idle_interval is not None and any(event.is_set() for event in woken) and not stop.is_set():
            poll = interval
            # Woken early: tick again, but not sooner than ``interval`` after the last tick.
            rest = ticked + interval - clock()
            if rest > 0:
                await wait_any([stop], seconds=rest)
