"""The one way a background loop runs: tick, survive its errors, wait jittered or until woken.

Every daemon of an instance (executor, watcher, projections, webhooks, files)
is a ``tick`` run by ``run_loop``. A tick returns how soon it wants to run again:
``BUSY`` (at once: it found a full page of work), a number of seconds (a timer
is due sooner than the poll), or ``None`` (the usual poll). The poll is jittered
so that the safety-net polls of many instances spread apart, and any wake-up
(a NOTIFY, a freed slot, stop) ends the wait early.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

import structlog

from chronik.adapters.postgres.listener import Signal

__all__ = ["BUSY", "jittered", "run_loop", "wait_any"]

log = structlog.get_logger("chronik.loops")

BUSY = 0.0
"""What a tick returns when it should run again at once."""


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
) -> None:
    """Run ``tick`` until ``stop`` is set; an error is logged and the loop goes on after its wait.

    ``wake`` are signals (taken before each tick, so a notification that arrives
    while it runs still counts) and events that end a wait early.
    """
    while not stop.is_set():
        woken = [source.current() if isinstance(source, Signal) else source for source in wake]
        try:
            again = await tick()
        except Exception:
            log.exception("loop_failed", loop=name)
            again = None
        if stop.is_set():
            return
        timeout = jittered(interval) if again is None else min(jittered(interval), max(0.0, again))
        if timeout > 0:
            await wait_any([stop, *woken], seconds=timeout)
