"""What the async and the sync client share: each call as data, the reading of answers, the options.

A client method builds a ``Call`` here and sends it with its own httpx client, so the two clients
differ only in ``await``.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote
from uuid import UUID

import certifi
import httpx
import msgspec

from ._errors import ApiError, NetworkError, error_from_response
from ._views import Accepted, HistoryEntry, JobPage, JobView

T = TypeVar("T")

JobId = UUID | str
"""A job's id, as a UUID or its text."""

DEFAULT_URL: Final = "http://127.0.0.1:8080"

ENDED_STATUSES: Final = frozenset({"finished", "failed", "cancelled", "quarantined"})
"""The statuses that end a wait (the server's own rule): the job has ended, or waits for a person's retry."""

_ENDING_EVENTS: Final = frozenset({"JobFinished", "JobFailed", "JobCancelled", "JobQuarantined"})
"""The events after which the server closes a job's event stream."""

MAX_WAIT_SECONDS: Final = 60.0
"""The server's longest ``?wait=`` (``api/routes/jobs.py``; not imported from there: it is Litestar)."""

_WAIT_SLACK_SECONDS: Final = 10.0
"""How much longer than its ``?wait=`` a wait request may take to answer before it counts as lost."""

_STREAM_READ_SECONDS: Final = 60.0
"""The longest silence on an event stream; the server sends a keep-alive after 15 quiet seconds."""

EARLY_ANSWER_PAUSE: Final = 1.0
"""The longest pause of ``wait()`` after a long poll that came back early without the end."""

RESUME_PAUSE: Final = 0.5
"""The pause of ``events()`` before it reopens a stream the server closed before the job's end."""

_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request of the client API and the Struct its answer decodes into."""

    method: str
    path: str
    into: type[T]
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    read_timeout: float | None = None
    """At least this long to wait for the answer (a long poll, a stream); None: the client's timeout."""

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The httpx request, on ``http``'s base URL and headers."""
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            content=self.body,
            headers=self.headers,
            timeout=_longer(http.timeout, self.read_timeout),
        )

    def decode(self, response: httpx.Response) -> T:
        """The answer as ``into``; an error answer raises its ``ApiError``."""
        if not response.is_success:
            raise error_from_response(response)
        try:
            return msgspec.json.decode(response.content, type=self.into)
        except msgspec.MsgspecError as exc:
            raise ApiError(
                f"the answer to {self.method} {self.path} is not one chronik sends: {exc}",
                code="INVALID_RESPONSE",
                status=response.status_code,
            ) from exc

    def failed(self, exc: httpx.RequestError) -> NetworkError:
        """The exception for a request that got no answer."""
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return NetworkError(f"{self.method} {self.path} got no answer ({detail})", code="NETWORK_ERROR")


def _longer(timeout: httpx.Timeout, read: float | None) -> httpx.Timeout:
    if read is None or timeout.read is None or timeout.read >= read:
        return timeout
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


def _job_path(job_id: JobId, suffix: str = "") -> str:
    # Parsed here, so that a string can never address another route.
    uuid = job_id if isinstance(job_id, UUID) else UUID(str(job_id))
    return f"/api/v1/jobs/{uuid}{suffix}"


def _query(**values: object) -> dict[str, str]:
    params = {}
    for name, value in values.items():
        if value is None:
            continue
        params[name] = value.isoformat() if isinstance(value, datetime) else str(value)
    return params


def _json_body(**values: object) -> tuple[bytes, dict[str, str]]:
    return _json.encode(values), {"Content-Type": "application/json"}


def create_call(
    api_endpoint: str,
    initial_data: Mapping[str, Any] | None,
    *,
    idempotency_key: str | None,
    options: Mapping[str, Any],
) -> Call[Accepted]:
    """``POST /jobs/{api_endpoint}``; ``options`` (``timeout_seconds``, ...) are sent only when not None."""
    sent = {name: value for name, value in options.items() if value is not None}
    body, headers = _json_body(initial_data=dict(initial_data or {}), **sent)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    path = f"/api/v1/jobs/{quote(api_endpoint, safe='')}"
    return Call("POST", path, Accepted, body=body, headers=headers)


def get_call(
    job_id: JobId,
    *,
    wait: float | None = None,
    as_of_version: int | None = None,
    as_of: datetime | None = None,
) -> Call[JobView]:
    """``GET /jobs/{id}``, as it is now, as it was, or once it ends within ``wait`` seconds."""
    params = _query(as_of_version=as_of_version, as_of=as_of, wait=None if wait is None else f"{wait:.3f}")
    read = None if wait is None else wait + _WAIT_SLACK_SECONDS
    return Call("GET", _job_path(job_id), JobView, params=params, read_timeout=read)


def list_call(
    *,
    blueprint: str | None,
    status: str | None,
    state: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    cursor: str | None,
) -> Call[JobPage]:
    """``GET /jobs``: one page, newest first."""
    params = _query(
        blueprint=blueprint,
        status=status,
        state=state,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/api/v1/jobs", JobPage, params=params)


def history_call(job_id: JobId, *, after_version: int, limit: int | None) -> Call[list[HistoryEntry]]:
    """``GET /jobs/{id}/history``: events after ``after_version``, oldest first."""
    params = _query(after_version=after_version or None, limit=limit)
    return Call("GET", _job_path(job_id, "/history"), list[HistoryEntry], params=params)


def events_call(job_id: JobId, *, after_version: int) -> Call[HistoryEntry]:
    """``GET /jobs/{id}/events``: the stream of events after ``after_version`` (read line by line)."""
    headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after_version)}
    return Call(
        "GET", _job_path(job_id, "/events"), HistoryEntry, headers=headers, read_timeout=_STREAM_READ_SECONDS
    )


def cancel_call(job_id: JobId, *, reason: str) -> Call[Accepted]:
    """``POST /jobs/{id}/cancel``."""
    body, headers = _json_body(reason=reason)
    return Call("POST", _job_path(job_id, "/cancel"), Accepted, body=body, headers=headers)


def fork_call(job_id: JobId, *, from_version: int) -> Call[Accepted]:
    """``POST /jobs/{id}/fork``: a new job from the state as of ``from_version``."""
    body, headers = _json_body(from_version=from_version)
    return Call("POST", _job_path(job_id, "/fork"), Accepted, body=body, headers=headers)


def retry_call(job_id: JobId) -> Call[Accepted]:
    """``POST /jobs/{id}/retry``."""
    return Call("POST", _job_path(job_id, "/retry"), Accepted)


def decide_call(job_id: JobId, *, decision: str, comment: str) -> Call[Accepted]:
    """``POST /jobs/{id}/approval``."""
    body, headers = _json_body(decision=decision, comment=comment)
    return Call("POST", _job_path(job_id, "/approval"), Accepted, body=body, headers=headers)


class WaitClock:
    """The deadline of one ``wait()``, cut into long polls of at most ``long_poll`` seconds."""

    def __init__(self, timeout: float | None, long_poll: float) -> None:
        self.long_poll = long_poll
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.asked_at = 0.0
        self.asked_for = 0.0

    def next_wait(self) -> float:
        """The ``?wait=`` of the next request, noted as asked now; 0 once the time is up."""
        left = self.long_poll if self.deadline is None else min(self.long_poll, self.left())
        self.asked_at, self.asked_for = time.monotonic(), left
        return left if left >= 0.01 else 0.0

    def left(self) -> float:
        """Seconds until the deadline (never below 0); the long poll when there is none."""
        if self.deadline is None:
            return self.long_poll
        return max(0.0, self.deadline - time.monotonic())

    def pause_after_early_answer(self) -> float:
        """How long to pause before asking again, after an answer that came back before the job ended.

        A wait answers early without an end only when its instance shuts down (it answers its
        waits at once) or a proxy cuts it short; asking again at once would make a busy loop of
        that, so a wait that came back in less than half its time pauses a little first.
        """
        if time.monotonic() - self.asked_at >= self.asked_for / 2:
            return 0.0
        return min(EARLY_ANSWER_PAUSE, self.left())


class EventParser:
    """Reads the lines of a server-sent event stream; each message's ``data`` is a history entry."""

    def __init__(self, after_version: int) -> None:
        self.last_version = after_version
        """The version of the last entry read: where a resumed stream starts."""
        self.ended = False
        """Whether the job's ending event came: the server closes the stream after it."""
        self._data: list[str] = []

    def feed(self, line: str) -> HistoryEntry | None:
        """Take one line; the entry when it completes a message."""
        if line:
            name, _, value = line.partition(":")
            if name == "data":  # id and event repeat what data holds; ":" lines are keep-alives
                self._data.append(value.removeprefix(" "))
            return None
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        try:
            entry = msgspec.json.decode(data, type=HistoryEntry)
        except msgspec.MsgspecError as exc:
            raise ApiError(
                f"an event of the stream is not one chronik sends: {exc}", code="INVALID_RESPONSE", status=200
            ) from exc
        self.last_version = entry.version
        self.ended = entry.type in _ENDING_EVENTS
        return entry


def base_url(url: str | None) -> str:
    """``url``, else ``ORCHESTRATOR_URL``, else the local default."""
    return (url or os.environ.get("ORCHESTRATOR_URL") or DEFAULT_URL).rstrip("/")


def http_options(
    *,
    url: str | None,
    token: str | None,
    timeout: float | httpx.Timeout,
    verify: ssl.SSLContext | str | bool,
    cert: str | tuple[str, str] | tuple[str, str, str] | None,
    headers: Mapping[str, str] | None,
    limits: httpx.Limits | None,
    trust_env: bool,
) -> dict[str, Any]:
    """The keyword arguments of the httpx client under a chronik client."""
    token = token if token is not None else os.environ.get("CLIENT_TOKEN")
    sent = {"Accept": "application/json", **(headers or {})}
    if token:
        sent["X-Client-Token"] = token
    options: dict[str, Any] = {
        "base_url": base_url(url),
        "headers": sent,
        "timeout": timeout,
        "verify": ssl_context(verify, cert),
        "trust_env": trust_env,
    }
    if limits is not None:  # else httpx's default pool
        options["limits"] = limits
    return options


def ssl_context(
    verify: ssl.SSLContext | str | bool, cert: str | tuple[str, str] | tuple[str, str, str] | None
) -> ssl.SSLContext | bool:
    """httpx's ``verify``: a CA file or folder and a client certificate become one SSL context.

    httpx 0.28 deprecates ``verify=<path>`` and ``cert=`` in favour of a context, so it is built
    here, with httpx's own CA bundle (certifi) when ``verify`` is True.
    """
    if cert is None and not isinstance(verify, str):
        return verify
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True:
        context = ssl.create_default_context(cafile=certifi.where())
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif Path(verify).is_dir():
        context = ssl.create_default_context(capath=verify)
    else:
        context = ssl.create_default_context(cafile=verify)
    if cert is not None:
        context.load_cert_chain(*((cert,) if isinstance(cert, str) else cert))
    return context


def check_long_poll(long_poll: float) -> float:
    """``long_poll`` if the server accepts it as ``?wait=``."""
    if not 0 < long_poll <= MAX_WAIT_SECONDS:
        raise ValueError(f"long_poll must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds")
    return long_poll
