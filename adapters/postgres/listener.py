"""One LISTEN connection per instance, fanned out in-process.

Notifications are hints: they wake waiters early, and the waiters poll anyway.
When the connection drops, the listener reconnects with backoff and wakes every
waiter once, because notifications sent while it was away are gone.

A channel is heard two ways: its ``Signal`` (a wake-up without payload, for the
queues) and its subscribers (``subscribe``: each payload, for whoever must know
which job changed), told on each reconnection that they may have missed some.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import asyncpg
import structlog

from .queries import QUERIES

__all__ = ["LISTENER_APPLICATION_NAME", "Listener", "Signal"]

log = structlog.get_logger("chronik.listener")

LISTENER_APPLICATION_NAME = "chronik-listener"
"""The ``application_name`` of each instance's LISTEN session: an operator (and the fault harness)
sees it in ``pg_stat_activity``. Not ``chronik``: it never appends, so the projections' horizon
(``chronik_log_horizon_v1``) has no reason to wait for it."""

_PING_SECONDS = 60.0
_PING_TIMEOUT_SECONDS = 10.0


class Signal:
    """A wake-up that any number of waiters share without stealing it from each other.

    A waiter takes ``current()`` *before* it looks for work, then waits on that
    event: a notification that arrives in between still wakes it. ``fire`` sets
    the current event and starts a new one.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """The event the next notification sets."""
        return self._event

    def fire(self) -> None:
        """Wake everyone waiting on the current event."""
        event, self._event = self._event, asyncio.Event()
        event.set()


class _Subscriber(NamedTuple):
    """Who gets a channel's payloads, and a call when some may have been lost."""

    on_notify: Callable[[str], None]
    on_reconnect: Callable[[], None] | None


class Listener:
    """Listen on channels; on each notification fire the channel's ``Signal`` and tell its subscribers."""

    def __init__(self, dsn: str, channels: Iterable[str], *, max_backoff: float = 5.0) -> None:
        self._dsn = dsn
        self._events = {channel: Signal() for channel in channels}
        self._subscribers: dict[str, list[_Subscriber]] = {channel: [] for channel in self._events}
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def signal(self, channel: str) -> Signal:
        """The signal fired when ``channel`` is notified."""
        return self._events[channel]

    def subscribe(
        self,
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """Call ``on_notify(payload)`` for each notification on ``channel``, one of the listener's.

        ``on_reconnect`` is called each time the connection is (re)established: what
        was notified while it was down is lost, so subscribers must look again. Both
        run on the event loop, in the listener's callback: keep them short, never block.
        """
        if channel not in self._subscribers:
            raise ValueError(
                f"the listener does not listen on {channel!r}; it listens on {sorted(self._events)}"
            )
        self._subscribers[channel].append(_Subscriber(on_notify, on_reconnect))

    async def start(self) -> None:
        """Connect and keep listening in the background until ``stop``."""
        self._task = asyncio.create_task(self._run(), name="chronik-listener")
        # Wait briefly for the first connection, so that early notifications are not missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=5)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                settings = {"application_name": LISTENER_APPLICATION_NAME}
                conn = await asyncpg.connect(self._dsn, server_settings=settings)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listener_connect_failed", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.1
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                for channel in self._events:
                    await conn.add_listener(channel, self._notify)
                self._connected.set()
                self._wake_all()
                await self._until_lost(conn, lost)
                log.warning("listener_connection_lost")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The connection broke while it was being set up: a listener that gave up here
                # would leave every wait to its deadline and every queue to its slow poll.
                log.warning("listener_setup_failed", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2))

    async def _until_lost(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is gone: closed, or silently dead (a half-open TCP
        connection never closes, and every wait would then run to its deadline). A ping now
        and then, on this one connection per instance, tells the two apart."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=_PING_SECONDS)
                return
            try:
                await conn.fetchval(QUERIES["ping"], timeout=_PING_TIMEOUT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return

    def _notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._events[channel].fire()
        for subscriber in self._subscribers[channel]:
            try:
                subscriber.on_notify(payload)
            except Exception:
                # One subscriber's bug must not deafen the others nor the queues.
                log.exception("listener_subscriber_failed", channel=channel)

    def _wake_all(self) -> None:
        for signal in self._events.values():
            signal.fire()
        for channel, subscribers in self._subscribers.items():
            for subscriber in subscribers:
                if subscriber.on_reconnect is None:
                    continue
                try:
                    subscriber.on_reconnect()
                except Exception:
                    log.exception("listener_subscriber_failed", channel=channel)
