"""``Client`` and the ``JobHandle`` it returns: the client API for programs without asyncio."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import httpx

from . import _calls as calls
from ._calls import ENDED_STATUSES, RESUME_PAUSE, Call, EventParser, JobId, WaitClock
from ._errors import JobFailedError, WaitTimeoutError
from ._views import HistoryEntry, JobPage, JobView

T = TypeVar("T")


class Client:
    """The client API of one chronik server, for programs without asyncio (threads, scripts, notebooks).

    ```python
    with Client("http://127.0.0.1:8080", token="...") as client:
        job = client.create("orders", {"quantity": 4}, idempotency_key="order-17")
        print(job.result(timeout=60))
    ```

    Args:
        url: The server; default ``ORCHESTRATOR_URL``, else ``http://127.0.0.1:8080``.
        token: Sent as ``X-Client-Token``; default ``CLIENT_TOKEN``.
        timeout: httpx's timeout of each request (seconds, or an ``httpx.Timeout``); waits and
            event streams stretch its read timeout to what they need.
        verify: TLS: True (the usual CA bundle), False, a CA file or folder, or an ``ssl.SSLContext``.
        cert: A client certificate: a file with the key, or ``(certfile, keyfile[, password])``.
        headers: More headers for every request.
        long_poll: The longest single ``?wait=`` of ``wait()`` (at most 60: the server's limit);
            keep it below your proxy's read timeout.
        limits: httpx's connection pool limits (default 100 connections): each ``wait()`` in
            progress holds one connection, so many waits at once need more.
        transport: An httpx transport (retries, a proxy, a test double).
        trust_env: Let httpx read proxies and ``SSL_CERT_FILE`` from the environment.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        verify: ssl.SSLContext | str | bool = True,
        cert: str | tuple[str, str] | tuple[str, str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        long_poll: float = 30.0,
        limits: httpx.Limits | None = None,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self.long_poll = calls.check_long_poll(long_poll)
        options = calls.http_options(
            url=url,
            token=token,
            timeout=timeout,
            verify=verify,
            cert=cert,
            headers=headers,
            limits=limits,
            trust_env=trust_env,
        )
        self.http = httpx.Client(transport=transport, **options)
        """The httpx client underneath, for anything this class does not wrap."""

    @property
    def url(self) -> str:
        """The server's base URL."""
        return str(self.http.base_url).rstrip("/")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used after."""
        self.http.close()

    def job(self, job_id: JobId) -> JobHandle:
        """A handle on a job that exists (no request is made)."""
        return JobHandle(self, job_id if isinstance(job_id, UUID) else UUID(str(job_id)))

    def create(
        self,
        api_endpoint: str,
        initial_data: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        webhook_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        dispatch_timeout: float | None = None,
        result_timeout: float | None = None,
        max_transitions: int | None = None,
        security: Mapping[str, Any] | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> JobHandle:
        """Create a job of the blueprint served at ``api_endpoint``; its handle.

        With ``idempotency_key``, the same key within 24 hours gives the first job's handle and
        creates nothing (``UnprocessableError`` ``IDEMPOTENCY_KEY_REUSED`` for other data). The
        other options are sent only when given; see docs/api.md for each.
        """
        options = {
            "timeout_seconds": timeout_seconds,
            "webhook_url": webhook_url,
            "metadata": metadata,
            "dispatch_timeout": dispatch_timeout,
            "result_timeout": result_timeout,
            "max_transitions": max_transitions,
            "security": security,
            "policy": policy,
        }
        call = calls.create_call(api_endpoint, initial_data, idempotency_key=idempotency_key, options=options)
        accepted = self._send(call)
        return JobHandle(self, accepted.job_id)

    def get(
        self, job_id: JobId, *, as_of_version: int | None = None, as_of: datetime | None = None
    ) -> JobView:
        """The job now; or the fold of its first ``as_of_version`` events, or of those up to ``as_of``."""
        return self._send(calls.get_call(job_id, as_of_version=as_of_version, as_of=as_of))

    def wait(self, job_id: JobId, *, timeout: float | None = None) -> JobView:
        """The job once it has ended (finished, failed, cancelled) or is quarantined.

        Long polls of up to ``long_poll`` seconds, each answered the moment the job ends: no
        polling. ``timeout`` None waits as long as it takes; past ``timeout`` seconds,
        ``WaitTimeoutError`` (a ``TimeoutError``) holds the job as it was then.
        """
        clock = WaitClock(timeout, self.long_poll)
        job: JobView | None = None
        while True:
            seconds = clock.next_wait()
            if seconds == 0:
                job = job if job is not None else self.get(job_id)
                if job.status in ENDED_STATUSES:
                    return job
                raise WaitTimeoutError(job, timeout or 0.0)
            job = self._send(calls.get_call(job_id, wait=seconds))
            if job.status in ENDED_STATUSES:
                return job
            pause = clock.pause_after_early_answer()
            if pause:
                time.sleep(pause)

    def result(self, job_id: JobId, *, timeout: float | None = None) -> Any:
        """Wait for the job, then its ``result``; ``JobFailedError`` when it did not finish."""
        job = self.wait(job_id, timeout=timeout)
        if job.status != "finished":
            raise JobFailedError(job)
        return job.result

    def list_jobs(
        self,
        *,
        blueprint: str | None = None,
        status: str | None = None,
        state: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first; pass its ``next_cursor`` as ``cursor`` for the next."""
        call = calls.list_call(
            blueprint=blueprint,
            status=status,
            state=state,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        )
        return self._send(call)

    def iter_jobs(
        self,
        *,
        blueprint: str | None = None,
        status: str | None = None,
        state: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[JobView]:
        """Every job that matches, newest first, a page of ``page_size`` per request."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(
                blueprint=blueprint,
                status=status,
                state=state,
                created_after=created_after,
                created_before=created_before,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def history(
        self, job_id: JobId, *, after_version: int = 0, limit: int | None = None
    ) -> list[HistoryEntry]:
        """The job's events after ``after_version``, oldest first (all of them, or ``limit``)."""
        return self._send(calls.history_call(job_id, after_version=after_version, limit=limit))

    def events(self, job_id: JobId, *, after_version: int = 0) -> Iterator[HistoryEntry]:
        """The job's events after ``after_version``, each as it commits, until the job ends.

        It ends after the event that ends or quarantines the job. A stream the server closes
        early (its instance shut down) is resumed after the last event read, without repeats.
        """
        parser = EventParser(after_version)
        while True:
            call = calls.events_call(job_id, after_version=parser.last_version)
            try:
                response = self.http.send(call.request(self.http), stream=True)
                try:
                    if response.status_code == 204:  # the job has ended, with nothing after that version
                        return
                    if not response.is_success:
                        response.read()
                        call.decode(response)  # raises the error answer's exception
                    for line in response.iter_lines():
                        entry = parser.feed(line)
                        if entry is not None:
                            yield entry
                            if parser.ended:
                                return
                finally:
                    response.close()
            except httpx.RequestError as exc:
                raise call.failed(exc) from exc
            time.sleep(RESUME_PAUSE)

    def cancel(self, job_id: JobId, reason: str = "") -> None:
        """Cancel a job that has not ended; ``ConflictError`` (``JOB_NOT_CANCELLABLE``) when it has."""
        self._send(calls.cancel_call(job_id, reason=reason))

    def fork(self, job_id: JobId, from_version: int) -> JobHandle:
        """Start a new job from the job's state as of ``from_version``; the new job's handle."""
        accepted = self._send(calls.fork_call(job_id, from_version=from_version))
        return JobHandle(self, accepted.job_id)

    def retry(self, job_id: JobId) -> None:
        """Queue a quarantined job's task again; ``ConflictError`` (``JOB_NOT_RETRYABLE``) otherwise."""
        self._send(calls.retry_call(job_id))

    def decide(self, job_id: JobId, decision: str, comment: str = "") -> None:
        """Decide on a job waiting for approval: ``decision`` is one of its ``approval.decisions``."""
        self._send(calls.decide_call(job_id, decision=decision, comment=comment))

    def _send(self, call: Call[T]) -> T:
        try:
            response = self.http.send(call.request(self.http))
        except httpx.RequestError as exc:
            raise call.failed(exc) from exc
        return call.decode(response)


@dataclass(frozen=True, slots=True)
class JobHandle:
    """One job, through a ``Client``: what ``create`` returns and ``client.job(id)`` gives."""

    client: Client = field(repr=False)
    job_id: UUID

    def get(self) -> JobView:
        """The job now."""
        return self.client.get(self.job_id)

    def wait(self, *, timeout: float | None = None) -> JobView:
        """The job once it has ended or is quarantined (see ``Client.wait``)."""
        return self.client.wait(self.job_id, timeout=timeout)

    def result(self, *, timeout: float | None = None) -> Any:
        """Its ``result`` once it finished; ``JobFailedError`` when it failed, was cancelled, quarantined."""
        return self.client.result(self.job_id, timeout=timeout)

    def history(self, *, after_version: int = 0, limit: int | None = None) -> list[HistoryEntry]:
        """Its events, oldest first."""
        return self.client.history(self.job_id, after_version=after_version, limit=limit)

    def events(self, *, after_version: int = 0) -> Iterator[HistoryEntry]:
        """Its events as they commit, until it ends."""
        return self.client.events(self.job_id, after_version=after_version)

    def cancel(self, reason: str = "") -> None:
        """Cancel it."""
        self.client.cancel(self.job_id, reason)

    def fork(self, from_version: int) -> JobHandle:
        """Start a new job from its state as of ``from_version``."""
        return self.client.fork(self.job_id, from_version)

    def retry(self) -> None:
        """Retry it, once quarantined."""
        self.client.retry(self.job_id)

    def decide(self, decision: str, comment: str = "") -> None:
        """Decide on it, while it waits for approval."""
        self.client.decide(self.job_id, decision, comment)
