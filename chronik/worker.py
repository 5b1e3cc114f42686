"""The worker SDK: run task handlers in a separate process that talks HTTP to the orchestrator.

```python
from chronik import Worker, TaskError

worker = Worker()

@worker.task("resize")
async def resize(params, progress):
    await progress(50, "halfway")
    if params["width"] <= 0:
        raise TaskError("width must be positive", code="INVALID_INPUT_ERROR")
    return {"width": params["width"]}
```

``chronik worker mymodule:worker`` runs it. It speaks the same protocol as
Avtomatika's workers (register, heartbeat, long-poll, result, events), so the
orchestrator treats both alike. The URL comes from ``--url`` or
``ORCHESTRATOR_URL``, the token from ``WORKER_TOKEN``, the id from ``WORKER_ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec
import structlog

from chronik.adapters.s3 import S3Config, TaskFiles
from chronik.adapters.telemetry.tracing import job_span
from chronik.core.errors import ConfigError
from chronik.core.signing import sign
from chronik.core.wire import (
    MAX_TASKS_PER_POLL,
    PROTOCOL_VERSION,
    EventAnswer,
    EventBody,
    HeartbeatAnswer,
    HeartbeatBody,
    RegisterBody,
    ResultBody,
    ResultsAnswer,
    ResultsBody,
    SkillInfo,
    TaskMessage,
    TasksAnswer,
)

from ._task_handlers import Result, TaskError, check_handler, result_message, run_task, unset_to_none

__all__ = ["Result", "TaskError", "Worker"]

log = structlog.get_logger("chronik.worker")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Worker:
    """A pool of task handlers that polls one orchestrator."""

    def __init__(
        self,
        worker_id: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        capacity: int = 10,
        heartbeat_interval: float = 20.0,
        poll_timeout: float = 30.0,
        worker_type: str = "chronik-worker",
    ) -> None:
        self.worker_id = worker_id or os.environ.get("WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}"
        self.url = url
        self.token = token
        self.capacity = capacity
        self.heartbeat_interval = heartbeat_interval
        self.poll_timeout = poll_timeout
        self.worker_type = worker_type
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._free = capacity
        """Slots neither running a task nor promised to a poll in flight."""
        self._freed = asyncio.Event()
        self._outbox: list[_Outgoing] = []
        self._outbox_ready = asyncio.Event()
        self._batch_results = True
        """The orchestrator takes ``/tasks/results``; an older one (or Avtomatika) answers 404."""
        self._alone: set[asyncio.Task[None]] = set()
        """Results sent one by one (to an orchestrator without ``/tasks/results``)."""
        self._s3: tuple[Any, str] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._base = ""
        self._draining = asyncio.Event()

    def task(self, task_type: str) -> Callable[[F], F]:
        """Register the handler of ``task_type``; it gets ``params`` and any of ``job_id``,
        ``task_id``, ``attempt``, ``progress``, ``deadline`` and ``task_files`` (the job's S3
        folder, from the worker's ``S3_*`` settings) by name."""

        def register(func: F) -> F:
            if task_type in self.handlers:
                raise ValueError(f"task type {task_type!r} already has a handler")
            check_handler(task_type, func)
            self.handlers[task_type] = func
            return func

        return register

    # -- running ------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM or SIGINT: the first finishes in-flight tasks, a second exits at once."""
        asyncio.run(self.serve_until_signalled())

    async def serve_until_signalled(self) -> None:
        """``serve`` with SIGTERM/SIGINT handling, inside a running event loop."""
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                log.info("worker_draining", in_flight=len(self._running))
                self._draining.set()
            else:
                log.warning("worker_exiting_now", abandoned=len(self._running))
                os._exit(1)  # the leases of abandoned tasks run out; the watcher re-queues them

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await self.serve()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def serve(self) -> None:
        """Register, then heartbeat and poll until ``stop()``; wait for in-flight tasks before returning."""
        if not self.handlers:
            raise ValueError("the worker has no task handlers; add one with @worker.task(...)")
        if self._draining.is_set():
            self._draining = asyncio.Event()
        self._base = (self.url or os.environ.get("ORCHESTRATOR_URL") or "http://127.0.0.1:8080").rstrip("/")
        token = self.token if self.token is not None else os.environ.get("WORKER_TOKEN", "")
        self.token = token
        headers = {"X-Worker-Token": token, "X-Worker-ID": self.worker_id, "X-RXON-Version": PROTOCOL_VERSION}
        timeout = aiohttp.ClientTimeout(total=30.0)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            self._http = http
            await self._register()
            beat = asyncio.create_task(self._heartbeats())
            # Made here, not in __init__: they belong to the event loop that serves.
            self._free, self._freed = self.capacity, asyncio.Event()
            self._outbox, self._outbox_ready = [], asyncio.Event()
            sender = asyncio.create_task(self._send_results())
            pollers = [asyncio.create_task(self._poll()) for _ in range(min(self.capacity, 4))]
            await self._draining.wait()
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            if self._running:
                # Each task ends once its result is answered: the sender is still running.
                await asyncio.gather(*self._running.values(), return_exceptions=True)
            for side in (beat, sender):
                side.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await side
            self._http = None
        log.info("worker_stopped", worker_id=self.worker_id)

    def _task_files(self, job_id: str) -> TaskFiles:
        """The job's S3 folder, from the worker's S3_* settings (read once)."""
        if self._s3 is None:
            config = S3Config.from_env()
            if config is None:
                raise ConfigError("a task asks for task_files, but S3_ENDPOINT is not set for this worker")
            self._s3 = (config.client(), config.bucket)
        client, bucket = self._s3
        return TaskFiles(client, bucket, job_id)

    def stop(self) -> None:
        """Stop polling; ``serve`` returns once in-flight tasks are done."""
        self._draining.set()

    # -- protocol -----------------------------------------------------------------

    async def _send(self, method: str, path: str, body: msgspec.Struct) -> tuple[int, str]:
        """Send one signed message; the status and the text of the answer."""
        status, text, _wait = await self._send_timed(method, path, body)
        return status, text

    async def _send_timed(self, method: str, path: str, body: msgspec.Struct) -> tuple[int, str, float]:
        """``_send``, with the seconds a 429 asks to wait (its Retry-After, at most a minute)."""
        assert self._http is not None
        # The signature covers exactly the dict that is sent: the body, stamped with the time.
        message: dict[str, Any] = msgspec.to_builtins(body)
        message["timestamp"] = int(time.time())
        if self.token:
            message["security"] = {"signature": sign(message, self.token), "signer_id": self.worker_id}
        async with self._http.request(method, self._base + path, json=message) as response:
            return response.status, await response.text(), _retry_after(response.headers)

    async def _register(self) -> None:
        skills = sorted(self.handlers)
        body = RegisterBody(
            worker_id=self.worker_id,
            worker_type=self.worker_type,
            task_types=skills,
            supported_skills=[SkillInfo(name=name, type=name) for name in skills],
            capacity=self.capacity,
        )
        delay = 0.5
        while True:
            try:
                status, text = await self._send("POST", "/_worker/workers/register", body)
                if status < 400:
                    log.info("worker_registered", worker_id=self.worker_id, task_types=skills)
                    return
                answer = _json(text)
                log.error("register_refused", status=status, answer=answer)
                if status in (401, 403):
                    raise RuntimeError(f"the orchestrator refused this worker: {answer}")
            except _NETWORK_ERRORS as exc:
                log.warning("register_failed", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            body = HeartbeatBody(
                worker_id=self.worker_id,
                status="full" if len(self._running) >= self.capacity else "idle",
                current_tasks=sorted(self._running),
            )
            try:
                status, text = await self._send("PATCH", f"/_worker/workers/{self.worker_id}", body)
            except _NETWORK_ERRORS as exc:
                log.warning("heartbeat_failed", error=str(exc))
                continue
            if status == 404:
                await self._register()
            elif status < 400 and (answer := _decode(text, HeartbeatAnswer)) is not None:
                self._cancel(answer.cancel_task_ids)

    async def _poll(self) -> None:
        assert self._http is not None
        url = f"{self._base}/_worker/workers/{self.worker_id}/tasks/next"
        skills = ",".join(sorted(self.handlers))
        timeout = aiohttp.ClientTimeout(total=self.poll_timeout + 5)
        backoff = 0.5
        while not self._draining.is_set():
            # A poll holds the slots it asks for while it waits: pollers must never take more
            # tasks together than the capacity. Each task gives its slot back when it ends.
            asked = await self._take_slots()
            params = {"timeout": str(self.poll_timeout), "available_skills": skills, "max_tasks": str(asked)}
            started = 0
            try:
                try:
                    async with self._http.get(url, params=params, timeout=timeout) as response:
                        status, text = response.status, await response.text()
                        wait = _retry_after(response.headers)
                except _NETWORK_ERRORS as exc:
                    log.warning("poll_failed", error=str(exc), retry_in=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if status == 200:
                    for task in _tasks(text)[:asked]:
                        self._running[task.task_id] = asyncio.create_task(self._execute(task))
                        started += 1
                elif status == 429:
                    # Over the orchestrator's budget of empty polls: wait as long as it says.
                    log.warning("poll_rate_limited", retry_in=wait)
                    await asyncio.sleep(wait)
                elif status != 204:
                    log.error("poll_refused", status=status, body=text)
                    await asyncio.sleep(1.0)
            finally:
                self._give_slots(asked - started)

    async def _take_slots(self) -> int:
        """Wait for a free slot, then take every free one (a poll asks for that many tasks)."""
        while self._free <= 0:
            self._freed.clear()
            await self._freed.wait()
        taken = min(self._free, MAX_TASKS_PER_POLL)
        self._free -= taken
        return taken

    def _give_slots(self, count: int) -> None:
        if count > 0:
            self._free += count
            self._freed.set()

    async def _execute(self, task: TaskMessage) -> None:
        attributes = {"chronik.job_id": task.job_id, "chronik.task_id": task.task_id,
                      "chronik.task_type": task.type, "chronik.worker_id": self.worker_id}  # fmt: skip
        # The orchestrator hands the job's trace context with the task: this span joins the job's trace.
        with job_span(
            f"chronik.task {task.type}", unset_to_none(task.metadata.traceparent), attributes
        ) as span:
            try:
                outcome = await self._invoke(task)
            except asyncio.CancelledError:
                outcome = result_message(task, self.worker_id, "cancelled")
            finally:
                self._running.pop(task.task_id, None)
                self._give_slots(1)
            span.set_attribute("chronik.status", outcome.status)
            await self._report(task, outcome)

    async def _invoke(self, task: TaskMessage) -> ResultBody:
        async def progress(percent: float, message: str = "") -> None:
            await self._progress(task, percent, message)

        return await run_task(
            self.handlers.get(task.type),
            task,
            worker_id=self.worker_id,
            progress=progress,
            files=self._task_files,
        )

    async def _report(self, task: TaskMessage, outcome: ResultBody) -> None:
        """Hand the result to the sender; return once the orchestrator answered it (or gave up)."""
        outgoing = _Outgoing(outcome, asyncio.get_running_loop().create_future())
        self._outbox.append(outgoing)
        self._outbox_ready.set()
        await outgoing.answered

    async def _send_results(self) -> None:
        """Send what is ready, one request at a time: results that finish while one is in flight
        go together in the next. A lone result waits for nothing."""
        while True:
            await self._outbox_ready.wait()
            batch = self._outbox[:_RESULTS_PER_MESSAGE]
            del self._outbox[: len(batch)]
            if not self._outbox:
                self._outbox_ready.clear()
            if not batch:
                continue
            if not self._batch_results:
                for outgoing in batch:  # one request each, at once, as an older server expects
                    alone = asyncio.create_task(self._report_alone(outgoing))
                    self._alone.add(alone)
                    alone.add_done_callback(self._alone.discard)
                continue
            try:
                await self._deliver(batch)
            except Exception:
                log.exception("results_failed", count=len(batch))
                self._retry(batch, 1.0)

    async def _deliver(self, batch: list[_Outgoing]) -> None:
        message = ResultsBody(results=[msgspec.to_builtins(outgoing.body) for outgoing in batch])
        try:
            status, text, wait = await self._send_timed("POST", "/_worker/tasks/results", message)
        except _NETWORK_ERRORS as exc:
            log.warning("result_failed", error=str(exc), count=len(batch))
            return self._retry(batch, 0.5)
        if status == 404 and _decode(text, ResultsAnswer) is None:
            log.info("results_one_by_one", reason="the orchestrator has no /_worker/tasks/results")
            self._batch_results = False
            for outgoing in reversed(batch):
                self._requeue(outgoing)
            return None
        if status == 429 or status >= 500:
            return self._retry(batch, wait if status == 429 else 0.5)
        answer = _decode(text, ResultsAnswer)
        if status >= 400 or answer is None or len(answer.results) != len(batch):
            log.error("result_refused", status=status, answer=_json(text))
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
        """Send ``batch`` again after ``wait`` s, with a growing delay; drop what failed 6 times."""
        for outgoing in batch:
            outgoing.tries += 1
            if outgoing.tries >= 6:
                log.error("result_dropped", task_id=outgoing.body.task_id)
                outgoing.done()
                continue
            delay = max(wait, min(0.5 * 2 ** (outgoing.tries - 1), 10.0))
            asyncio.get_running_loop().call_later(delay, self._requeue, outgoing)

    def _requeue(self, outgoing: _Outgoing) -> None:
        self._outbox.insert(0, outgoing)
        self._outbox_ready.set()

    async def _report_alone(self, outgoing: _Outgoing) -> None:
        """One result by the single route (``/tasks/result``), retried as the sender retries."""
        try:
            while outgoing.tries < 6:
                try:
                    status, text, wait = await self._send_timed(
                        "POST", "/_worker/tasks/result", outgoing.body
                    )
                except _NETWORK_ERRORS as exc:
                    log.warning("result_failed", task_id=outgoing.body.task_id, error=str(exc))
                    status, text, wait = 0, "", 0.0
                if 0 < status < 500 and status != 429:
                    if status >= 400:
                        log.error("result_refused", status=status, answer=_json(text))
                    return
                outgoing.tries += 1
                await asyncio.sleep(max(wait, min(0.5 * 2 ** (outgoing.tries - 1), 10.0)))
            log.error("result_dropped", task_id=outgoing.body.task_id)
        finally:
            outgoing.done()

    async def _progress(self, task: TaskMessage, percent: float, message: str) -> None:
        body = EventBody(
            event_id=str(uuid.uuid4()),
            event_type="progress",
            worker_id=self.worker_id,
            origin_worker_id=self.worker_id,
            target_job_id=task.job_id,
            target_task_id=task.task_id,
            payload={"progress": percent, "message": message},
        )
        try:
            status, text = await self._send("POST", "/_worker/events", body)
        except _NETWORK_ERRORS as exc:
            log.warning("progress_failed", error=str(exc))
            return
        if status < 400 and (answer := _decode(text, EventAnswer)) is not None:
            self._cancel(answer.cancel_task_ids or [])

    def _cancel(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            running = self._running.get(task_id)
            if running is not None:
                log.info("task_cancelled_by_orchestrator", task_id=task_id)
                running.cancel()


_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)

_RESULTS_PER_MESSAGE = 100
"""The most results the SDK sends in one message."""


class _Outgoing:
    """A result waiting to be answered, and the future its task awaits."""

    def __init__(self, body: ResultBody, answered: asyncio.Future[None]) -> None:
        self.body = body
        self.answered = answered
        self.tries = 0

    def done(self) -> None:
        if not self.answered.done():
            self.answered.set_result(None)


def _tasks(text: str) -> list[TaskMessage]:
    """The tasks of a poll's answer: ``{"tasks": [...]}``, or one task (a server without ``max_tasks``)."""
    batch = _decode(text, TasksAnswer)
    if batch is not None:
        return batch.tasks
    task = _decode(text, TaskMessage)
    return [] if task is None else [task]


def _retry_after(headers: Mapping[str, str]) -> float:
    """The seconds a 429's ``Retry-After`` asks for (1 when it says nothing usable), at most 60."""
    raw = headers.get("Retry-After", "")
    return min(60.0, float(raw)) if raw.isdigit() else 1.0


def _json(text: str) -> Any:
    """An answer's JSON, for the log (``None`` when it has none)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _decode(text: str, kind: type[T]) -> T | None:
    """An answer read as ``kind`` (extra fields ignored); ``None`` when it is not one."""
    try:
        return msgspec.json.decode(text, type=kind) if text else None
    except msgspec.DecodeError:
        return None
