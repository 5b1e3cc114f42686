"""How the worker SDK sends results: one request at a time, bundling whatever finished meanwhile.

A lone result waits for nothing; results that finish while a request is in flight
go together in the next (``POST /_worker/tasks/results``). An orchestrator without
that route (an older one, or Avtomatika) answers 404, and the sender falls back to
one request per result. Failed sends are retried with a growing delay; a result
that failed six times is dropped (its lease runs out and the task runs again).
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog

from chronik.core.wire import ResultBody, ResultsAnswer, ResultsBody

from ._worker_link import NETWORK_ERRORS, Link, as_json, decode

__all__ = ["ResultSender"]

log = structlog.get_logger("chronik.worker")

_RESULTS_PER_MESSAGE = 100
"""The most results the SDK sends in one message."""
_GIVE_UP_SECONDS = 300.0
"""How long a result is sent again while the orchestrator cannot take it (unreachable, 429, 5xx such
as a 503 during a database outage). Longer than any outage worth riding out: past it the task's
lease has long expired and the task has run again elsewhere, so the result would only be ignored."""


class _Outgoing:
    """A result waiting to be answered, and the future its task awaits."""

    def __init__(self, body: ResultBody, answered: asyncio.Future[None]) -> None:
        self.body = body
        self.answered = answered
        self.tries = 0
        self.since = time.monotonic()

    @property
    def given_up(self) -> bool:
        return time.monotonic() - self.since > _GIVE_UP_SECONDS

    def done(self) -> None:
        if not self.answered.done():
            self.answered.set_result(None)


class ResultSender:
    """Sends the results of one worker's tasks; ``run`` it while the worker serves."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._outbox: list[_Outgoing] = []
        self._ready = asyncio.Event()
        self._batches = True
        """The orchestrator takes ``/tasks/results``; an older one (or Avtomatika) answers 404."""
        self._alone: set[asyncio.Task[None]] = set()
        """Results sent one by one (to an orchestrator without ``/tasks/results``)."""

    async def report(self, body: ResultBody) -> None:
        """Hand a result over; return once the orchestrator answered it (or the sender gave up)."""
        outgoing = _Outgoing(body, asyncio.get_running_loop().create_future())
        self._outbox.append(outgoing)
        self._ready.set()
        await outgoing.answered

    async def run(self) -> None:
        """Send what is ready, one request at a time, until cancelled."""
        while True:
            await self._ready.wait()
            batch = self._outbox[:_RESULTS_PER_MESSAGE]
            del self._outbox[: len(batch)]
            if not self._outbox:
                self._ready.clear()
            if not batch:
                continue
            if not self._batches:
                for outgoing in batch:  # one request each, at once, as an older server expects
                    alone = asyncio.create_task(self._send_alone(outgoing))
                    self._alone.add(alone)
                    alone.add_done_callback(self._alone.discard)
                continue
            try:
                await self._send_batch(batch)
            except Exception:
                log.exception("results_failed", count=len(batch))
                self._retry(batch, 1.0)

    async def _send_batch(self, batch: list[_Outgoing]) -> None:
        message = ResultsBody(results=[msgspec.to_builtins(outgoing.body) for outgoing in batch])
        try:
            status, text, wait = await self._link.send("POST", "/_worker/tasks/results", message)
        except NETWORK_ERRORS as exc:
            log.warning("result_failed", error=str(exc), count=len(batch))
            return self._retry(batch, 0.5)
        if status == 404 and decode(text, ResultsAnswer) is None:
            log.info("results_one_by_one", reason="the orchestrator has no /_worker/tasks/results")
            self._batches = False
            for outgoing in reversed(batch):
                self._requeue(outgoing)
            return None
        if status == 429 or status >= 500:
            return self._retry(batch, wait if status == 429 else 0.5)
        answer = decode(text, ResultsAnswer)
        if status >= 400 or answer is None or len(answer.results) != len(batch):
            log.error("result_refused", status=status, answer=as_json(text))
            for outgoing in batch:
                outgoing.done()
            return None
        again = []
        for outgoing, entry in zip(batch, answer.results, strict=True):
            if entry.status == "error":
                again.append(outgoing)
                continue
            if entry.status == "refused":
                log.error(
                    "result_refused", task_id=outgoing.body.task_id, reason=entry.reason, answer=entry.message
                )
            outgoing.done()
        return self._retry(again, 0.5) if again else None

    def _retry(self, batch: list[_Outgoing], wait: float) -> None:
        """Send ``batch`` again after ``wait`` s, with a growing delay; drop what failed for too long."""
        for outgoing in batch:
            outgoing.tries += 1
            if outgoing.given_up:
                log.error("result_dropped", task_id=outgoing.body.task_id)
                outgoing.done()
                continue
            asyncio.get_running_loop().call_later(_delay(outgoing.tries, wait), self._requeue, outgoing)

    def _requeue(self, outgoing: _Outgoing) -> None:
        self._outbox.insert(0, outgoing)
        self._ready.set()

    async def _send_alone(self, outgoing: _Outgoing) -> None:
        """One result by the single route (``/tasks/result``), retried as batches are."""
        try:
            while not outgoing.given_up:
                try:
                    status, text, wait = await self._link.send("POST", "/_worker/tasks/result", outgoing.body)
                except NETWORK_ERRORS as exc:
                    log.warning("result_failed", task_id=outgoing.body.task_id, error=str(exc))
                    status, text, wait = 0, "", 0.0
                if 0 < status < 500 and status != 429:
                    if status >= 400:
                        log.error("result_refused", status=status, answer=as_json(text))
                    return
                outgoing.tries += 1
                await asyncio.sleep(_delay(outgoing.tries, wait))
            log.error("result_dropped", task_id=outgoing.body.task_id)
        finally:
            outgoing.done()


def _delay(tries: int, wait: float) -> float:
    return max(wait, min(0.5 * 2.0 ** (tries - 1), 10.0))
