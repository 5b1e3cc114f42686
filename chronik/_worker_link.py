"""The worker SDK's line to one orchestrator: signed messages over HTTP, and reading the answers."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

import aiohttp
import msgspec

from chronik.core.signing import sign
from chronik.core.wire import TaskMessage, TasksAnswer

__all__ = ["NETWORK_ERRORS", "Answer", "Link", "as_json", "decode", "retry_after", "tasks_of"]

T = TypeVar("T")

NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)
"""What a request that never got an answer raises."""


class Answer(NamedTuple):
    """The orchestrator's answer: its status, its text, and how long a 429 asks to wait."""

    status: int
    text: str
    retry_after: float


class Link:
    """Signed requests of one worker to one orchestrator, on the worker's HTTP session."""

    def __init__(self, http: aiohttp.ClientSession, base: str, *, worker_id: str, token: str) -> None:
        self.http = http
        self.base = base
        self._worker_id = worker_id
        self._token = token

    async def send(self, method: str, path: str, body: msgspec.Struct) -> Answer:
        """Send one message, signed when the worker has a token of its own."""
        # The signature covers exactly the dict that is sent: the body, stamped with the time.
        message: dict[str, Any] = msgspec.to_builtins(body)
        message["timestamp"] = int(time.time())
        if self._token:
            message["security"] = {"signature": sign(message, self._token), "signer_id": self._worker_id}
        async with self.http.request(method, self.base + path, json=message) as response:
            return Answer(response.status, await response.text(), retry_after(response.headers))


def tasks_of(text: str) -> list[TaskMessage]:
    """The tasks of a poll's answer: ``{"tasks": [...]}``, or one task (a server without ``max_tasks``)."""
    batch = decode(text, TasksAnswer)
    if batch is not None:
        return batch.tasks
    task = decode(text, TaskMessage)
    return [] if task is None else [task]


def retry_after(headers: Mapping[str, str]) -> float:
    """The seconds a 429's ``Retry-After`` asks for (1 when it says nothing usable), at most 60."""
    raw = headers.get("Retry-After", "")
    return min(60.0, float(raw)) if raw.isdigit() else 1.0


def as_json(text: str) -> Any:
    """An answer's JSON, for the log (``None`` when it has none)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def decode(text: str, kind: type[T]) -> T | None:
    """An answer read as ``kind`` (extra fields ignored); ``None`` when it is not one."""
    try:
        return msgspec.json.decode(text, type=kind) if text else None
    except msgspec.DecodeError:
        return None
