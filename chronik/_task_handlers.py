"""Running one task handler in the worker SDK: check what it asks for, inject it, turn the outcome
into a result message. Exceptions become data here (a failed result with its error code).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from msgspec import UNSET, UnsetType

from chronik.adapters.s3 import TaskFiles
from chronik.core.errors import ChronikError
from chronik.core.wire import ResultBody, TaskErrorBody, TaskMessage

__all__ = [
    "INJECTABLE",
    "Result",
    "TaskError",
    "check_handler",
    "result_message",
    "run_task",
    "unset_to_none",
]

log = structlog.get_logger("chronik.worker")

T = TypeVar("T")

INJECTABLE = ("params", "job_id", "task_id", "attempt", "progress", "deadline", "task_files")
"""What a task handler may ask for, by parameter name."""


class TaskError(Exception):
    """Raise from a task handler to fail the attempt with an Avtomatika error code.

    ``TRANSIENT_ERROR`` (the default), ``RESOURCE_EXHAUSTED_ERROR``, ``TIMEOUT_ERROR`` and
    ``INTERNAL_ERROR`` are retried; ``PERMANENT_ERROR``, ``SECURITY_ERROR`` and
    ``DEPENDENCY_ERROR`` quarantine the job; ``INVALID_INPUT_ERROR`` fails it.
    """

    def __init__(self, message: str, *, code: str = "TRANSIENT_ERROR") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Result:
    """Return this from a handler to answer with a status other than ``success``."""

    def __init__(self, data: Any = None, *, status: str = "success") -> None:
        self.data = data
        self.status = status


def _wanted(func: Callable[..., Any]) -> tuple[list[str], bool]:
    """The names a handler asks for, and whether it takes ``**kwargs`` (then it gets them all)."""
    parameters = inspect.signature(func).parameters.values()
    named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return named, any(p.kind is p.VAR_KEYWORD for p in parameters)


def check_handler(task_type: str, func: Callable[..., Any]) -> None:
    """Refuse, at registration, a handler that asks for something no task can give it."""
    unknown = [name for name in _wanted(func)[0] if name not in INJECTABLE]
    if unknown:
        raise ValueError(f"handler of {task_type!r} asks for {unknown}; it may take {', '.join(INJECTABLE)}")


async def run_task(
    handler: Callable[..., Any] | None,
    task: TaskMessage,
    *,
    worker_id: str,
    progress: Callable[[float, str], Awaitable[None]],
    files: Callable[[str], TaskFiles],
) -> ResultBody:
    """Run ``handler`` on ``task`` with the arguments it names; the result message to send."""
    if handler is None:
        return _failure(
            task, worker_id, "PERMANENT_ERROR", f"this worker has no handler for task type {task.type!r}"
        )
    named, takes_all = _wanted(handler)
    wanted = INJECTABLE if takes_all else named
    try:
        task_files = files(task.job_id) if "task_files" in named else None
    except ChronikError as exc:
        return _failure(task, worker_id, "PERMANENT_ERROR", exc.message)
    if task_files is None and takes_all:
        # ``**kwargs`` gets the job's folder when the worker has S3 settings, and None otherwise.
        with contextlib.suppress(ChronikError):
            task_files = files(task.job_id)
    available = {
        "task_files": task_files,
        "params": task.params,
        "job_id": task.job_id,
        "task_id": task.task_id,
        "attempt": task.metadata.attempt,
        "progress": progress,
        "deadline": unset_to_none(task.deadline),
    }
    kwargs = {name: available[name] for name in wanted}
    try:
        value = handler(**kwargs)
        if inspect.isawaitable(value):
            value = await value
    except TaskError as exc:
        return _failure(task, worker_id, exc.code, exc.message)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("task_failed", task_id=task.task_id, task_type=task.type)
        return _failure(task, worker_id, "TRANSIENT_ERROR", f"{type(exc).__name__}: {exc}")
    stored: list[str] | UnsetType = (
        task_files.stored if task_files is not None and task_files.stored else UNSET
    )
    if isinstance(value, Result):
        return result_message(task, worker_id, value.status, data=value.data, files=stored)
    return result_message(task, worker_id, "success", data=value, files=stored)


def result_message(
    task: TaskMessage,
    worker_id: str,
    status: str,
    *,
    data: Any = UNSET,
    error: TaskErrorBody | UnsetType = UNSET,
    files: list[str] | UnsetType = UNSET,
) -> ResultBody:
    """The result of ``task`` with ``status``; ``data``, ``error`` and ``files`` go only when given."""
    return ResultBody(
        job_id=task.job_id,
        task_id=task.task_id,
        worker_id=worker_id,
        status=status,
        data=data,
        error=error,
        files=files,
    )


def _failure(task: TaskMessage, worker_id: str, code: str, message: str) -> ResultBody:
    """A failed result of ``task``: no data, an error with its Avtomatika code."""
    return result_message(task, worker_id, "failure", error=TaskErrorBody(code=code, message=message))


def unset_to_none(value: T | UnsetType) -> T | None:
    """``None`` for a field the message left out."""
    return None if isinstance(value, UnsetType) else value
