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
``ORCHESTRATOR_URL``, the token from ``WORKER_TOKEN``, the id from ``WORKER_ID``;
over HTTPS, the client certificate from ``TLS_CERT_PATH`` and ``TLS_KEY_PATH`` and
the orchestrator's CA from ``TLS_CA_PATH``, as Avtomatika's workers read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import structlog

from chronik.adapters.s3 import S3Config, TaskFiles
from chronik.adapters.telemetry.tracing import job_span
from chronik.core.errors import ConfigError
from chronik.core.wire import (
    MAX_TASKS_PER_POLL,
    PROTOCOL_VERSION,
    EventAnswer,
    EventBody,
    HeartbeatAnswer,
    HeartbeatBody,
    RegisterBody,
    ResultBody,
    SkillInfo,
    TaskMessage,
)

from ._result_sender import ResultSender
from ._task_handlers import Result, TaskError, check_handler, result_message, run_task, unset_to_none
from ._worker_link import NETWORK_ERRORS, Link, as_json, client_tls_context, decode, tasks_of

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
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_ca: str | None = None,
        token_exchange: bool | None = None,
    ) -> None:
        """A worker; what is not given is read when it serves (the environment variables in brackets).

        Args:
            worker_id: Its id (``WORKER_ID``; host and pid by default). With a client
                certificate, its CN.
            url: The orchestrator (``--url``, ``ORCHESTRATOR_URL``), ``https://`` for TLS.
            token: Its long-lived token (``WORKER_TOKEN``); messages are signed with it.
            tls_cert: A client certificate to present over HTTPS, PEM (``TLS_CERT_PATH``).
            tls_key: Its private key, PEM, unless ``tls_cert`` holds it (``TLS_KEY_PATH``).
            tls_ca: The CA that signs the orchestrator's certificate, PEM (``TLS_CA_PATH``);
                by default the system's.
            token_exchange: Exchange the token or certificate for short-lived tokens
                (``POST /_worker/auth/token``) and send those, renewing each before it expires
                (``WORKER_TOKEN_EXCHANGE``; default false).
        """
        self.worker_id = worker_id or os.environ.get("WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}"
        self.url = url
        self.token = token
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_ca = tls_ca
        self.token_exchange = token_exchange
        self.capacity = capacity
        self.heartbeat_interval = heartbeat_interval
        self.poll_timeout = poll_timeout
        self.worker_type = worker_type
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._free = capacity
        """Slots neither running a task nor promised to a poll in flight."""
        self._freed = asyncio.Event()
        self._s3: tuple[Any, str] | None = None
        self._link: Link | None = None
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
        orphaned = _watch_parent(self._draining)
        try:
            await self.serve()
        finally:
            if orphaned is not None:
                orphaned.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def serve(self) -> None:
        """Register, then heartbeat and poll until ``stop()``; wait for in-flight tasks before returning."""
        if not self.handlers:
            raise ValueError("the worker has no task handlers; add one with @worker.task(...)")
        if self._draining.is_set():
            self._draining = asyncio.Event()
        base = (self.url or os.environ.get("ORCHESTRATOR_URL") or "http://127.0.0.1:8080").rstrip("/")
        token = self.token if self.token is not None else os.environ.get("WORKER_TOKEN", "")
        self.token = token
        exchange = self.token_exchange
        if exchange is None:
            exchange = _flag("WORKER_TOKEN_EXCHANGE", os.environ.get("WORKER_TOKEN_EXCHANGE"))
        headers = {"X-Worker-ID": self.worker_id, "X-RXON-Version": PROTOCOL_VERSION}
        timeout = aiohttp.ClientTimeout(total=30.0)
        connector = aiohttp.TCPConnector(ssl=self._tls() or True)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as http:
            self._link = link = Link(http, base, worker_id=self.worker_id, token=token, exchange=exchange)
            self._results = ResultSender(link)
            if not await self._registered_unless_draining():
                self._link = None
                log.info("worker_stopped", worker_id=self.worker_id, registered=False)
                return
            beat = asyncio.create_task(self._heartbeats())
            # Made here, not in __init__: they belong to the event loop that serves.
            self._free, self._freed = self.capacity, asyncio.Event()
            sender = asyncio.create_task(self._results.run())
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
            self._link = None
        log.info("worker_stopped", worker_id=self.worker_id)

    def _tls(self) -> ssl.SSLContext | None:
        """The client side of TLS: the worker's certificate and the orchestrator's CA, if set."""
        cert = self.tls_cert or os.environ.get("TLS_CERT_PATH") or None
        key = self.tls_key or os.environ.get("TLS_KEY_PATH") or None
        ca = self.tls_ca or os.environ.get("TLS_CA_PATH") or None
        try:
            return client_tls_context(cert, key, ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"the worker's TLS files cannot be used (TLS_CERT_PATH, TLS_KEY_PATH, TLS_CA_PATH): {exc}"
            ) from None

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
                status, text, _wait = await self._linked().send("POST", "/_worker/workers/register", body)
                if status < 400:
                    log.info("worker_registered", worker_id=self.worker_id, task_types=skills)
                    return
                answer = as_json(text)
                log.error("register_refused", status=status, answer=answer)
                if status in (401, 403):
                    raise RuntimeError(f"the orchestrator refused this worker: {answer}")
            except NETWORK_ERRORS as exc:
                log.warning("register_failed", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _registered_unless_draining(self) -> bool:
        """Register; False when asked to stop first (a SIGTERM, or the parent gone, while the
        orchestrator does not answer yet)."""
        registering = asyncio.create_task(self._register())
        stopping = asyncio.create_task(self._draining.wait())
        await asyncio.wait({registering, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not registering.done():
            registering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await registering
            return False
        registering.result()  # a refusal (401, 403) is raised here
        return True

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            body = HeartbeatBody(
                worker_id=self.worker_id,
                status="full" if len(self._running) >= self.capacity else "idle",
                current_tasks=sorted(self._running),
            )
            try:
                status, text, _wait = await self._linked().send(
                    "PATCH", f"/_worker/workers/{self.worker_id}", body
                )
            except NETWORK_ERRORS as exc:
                log.warning("heartbeat_failed", error=str(exc))
                continue
            if status == 404:
                await self._register()
            elif status < 400 and (answer := decode(text, HeartbeatAnswer)) is not None:
                self._cancel(answer.cancel_task_ids)

    def _linked(self) -> Link:
        assert self._link is not None, "the worker is not serving"
        return self._link

    async def _poll(self) -> None:
        link = self._linked()
        path = f"/_worker/workers/{self.worker_id}/tasks/next"
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
                    status, text, wait = await link.request("GET", path, params=params, timeout=timeout)
                except NETWORK_ERRORS as exc:
                    log.warning("poll_failed", error=str(exc), retry_in=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if status == 200:
                    for task in tasks_of(text)[:asked]:
                        self._running[task.task_id] = asyncio.create_task(self._execute(task))
                        started += 1
                elif status == 429:
                    # Over the orchestrator's budget of empty polls: wait as long as it says.
                    log.warning("poll_rate_limited", retry_in=wait)
                    await asyncio.sleep(wait)
                elif status == 503:
                    # The orchestrator's database cannot serve just now (a restart, a failover):
                    # not the worker's error; ask again when Retry-After says.
                    log.warning("poll_unavailable", retry_in=wait)
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
            await self._results.report(outcome)

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
            status, text, _wait = await self._linked().send("POST", "/_worker/events", body)
        except NETWORK_ERRORS as exc:
            log.warning("progress_failed", error=str(exc))
            return
        if status < 400 and (answer := decode(text, EventAnswer)) is not None:
            self._cancel(answer.cancel_task_ids or [])

    def _cancel(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            running = self._running.get(task_id)
            if running is not None:
                log.info("task_cancelled_by_orchestrator", task_id=task_id)
                running.cancel()


def _flag(name: str, raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} must be true or false")


_PARENT_CHECK_SECONDS = 1.0


def _watch_parent(draining: asyncio.Event) -> asyncio.Task[None] | None:
    """With ``CHRONIK_PARENT_PID`` (``chronik dev`` sets it for the worker it starts), drain as on
    SIGTERM once that process is gone, however it ended (a kill -9 sends its children nothing)."""
    raw = os.environ.get("CHRONIK_PARENT_PID")
    if not raw or not raw.isdigit():
        return None
    parent = int(raw)

    async def watch() -> None:
        # Polled: the kernel tells a child of its parent's death only by re-parenting it.
        while os.getppid() == parent:  # noqa: ASYNC110
            await asyncio.sleep(_PARENT_CHECK_SECONDS)
        log.warning("worker_parent_gone", parent_pid=parent)
        draining.set()

    return asyncio.create_task(watch())
