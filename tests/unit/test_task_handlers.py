"""The worker SDK's handler machinery: what a handler may ask for, and what it is given."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from chronik._task_handlers import INJECTABLE, TaskError, check_handler, run_task
from chronik.adapters.s3 import TaskFiles
from chronik.core.errors import ConfigError
from chronik.core.wire import TaskMessage


def task(params: dict[str, Any]) -> TaskMessage:
    return TaskMessage(job_id=str(uuid4()), task_id=f"{uuid4()}:1", type="t", params=params)


def no_s3(_job_id: str) -> TaskFiles:
    raise ConfigError("a task asks for task_files, but S3_ENDPOINT is not set for this worker")


async def progress(_percent: float, _message: str = "") -> None:
    return None


async def test_a_handler_with_kwargs_gets_every_injectable() -> None:
    seen: dict[str, Any] = {}

    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, params=params)
        return {"doubled": params["n"] * 2}

    check_handler("t", handler)  # accepted at registration
    result = await run_task(handler, task({"n": 21}), worker_id="w1", progress=progress, files=no_s3)
    assert (result.status, result.data) == ("success", {"doubled": 42})
    assert set(seen) == set(INJECTABLE)
    assert seen["params"] == {"n": 21} and seen["attempt"] == 1
    assert seen["task_files"] is None  # no S3 settings: nothing to hand, and no failure for it


async def test_kwargs_alone_and_errors_keep_their_codes() -> None:
    async def handler(**kwargs: Any) -> None:
        raise TaskError(f"bad n {kwargs['params']['n']}", code="INVALID_INPUT_ERROR")

    check_handler("t", handler)
    result = await run_task(handler, task({"n": -1}), worker_id="w1", progress=progress, files=no_s3)
    assert result.status == "failure"
    assert (result.error.code, result.error.message) == ("INVALID_INPUT_ERROR", "bad n -1")  # type: ignore[union-attr]


def test_a_handler_asking_for_something_unknown_is_refused_at_registration() -> None:
    async def handler(params: dict[str, Any], colour: str, **kwargs: Any) -> None: ...

    with pytest.raises(ValueError, match="colour"):
        check_handler("t", handler)
