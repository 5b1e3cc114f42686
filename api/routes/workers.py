"""The worker protocol under ``/_worker``: Avtomatika's routes, so its workers run unchanged."""

from __future__ import annotations

import asyncio
import math
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from chronik.core.errors import Forbidden, InvalidInput
from chronik.core.events import ErrorInfo

from ..worker_auth import check_signature, worker_guard
from ..worker_schemas import EventBody, HeartbeatBody, RegisterBody, ResultBody

__all__ = ["PROTOCOL_VERSION", "worker_routes"]

PROTOCOL_VERSION = "1.0b17"

T = TypeVar("T")


async def _message(request: Request[Any, Any, Any], kind: type[T], *, ignore: tuple[str, ...] = ()) -> T:
    """Decode, authenticate and validate one worker message."""
    raw = await request.body()
    try:
        message = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise InvalidInput("the body must be a JSON object")
    worker_id, secret = request.state.worker
    check_signature(message, secret, ignore_fields=ignore)
    try:
        body = msgspec.convert(message, kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"invalid {kind.__name__}: {exc}") from None
    sent_id = getattr(body, "worker_id", None)
    if sent_id is not None and sent_id != worker_id:
        raise Forbidden(f"the message's worker_id {sent_id!r} is not the authenticated worker {worker_id!r}")
    return body


@post("/workers/register", status_code=HTTP_200_OK)
async def register(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """Register a worker and the task types (skills) it runs."""
    body = await _message(request, RegisterBody)
    info = {"worker_type": body.worker_type, "resources": body.resources, "capabilities": body.capabilities}
    await state.engine.workers.register(
        body.worker_id, task_types=body.all_task_types(), capacity=body.capacity, info=info
    )
    return {"status": "registered", "version": PROTOCOL_VERSION}


@patch("/workers/{worker_id:str}", status_code=HTTP_200_OK)
async def heartbeat(
    worker_id: FromPath[str], request: Request[Any, Any, Any], state: State
) -> dict[str, Any]:
    """The worker is alive: extend its leases; ``cancel_task_ids`` lists the attempts it must stop."""
    body = await _message(request, HeartbeatBody)
    cancel = await state.engine.workers.heartbeat(worker_id, body.current_tasks)
    return {"status": "ok", "cancel_task_ids": cancel}


async def _until_disconnected(request: Request[Any, Any, Any], gone: asyncio.Event) -> None:
    # A GET has no body, so the next ASGI message is the client hanging up.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


@get("/workers/{worker_id:str}/tasks/next", status_code=HTTP_200_OK)
async def next_task(
    worker_id: FromPath[str],
    request: Request[Any, Any, Any],
    state: State,
    timeout: FromQuery[float] = 30.0,  # noqa: ASYNC109 (the protocol names this query parameter)
    available_skills: FromQuery[str] = "",
) -> Response[Any]:
    """Long-poll for a task of the worker's available skills: the task, or 204 after ``timeout`` s."""
    skills = [name for name in available_skills.split(",") if name]
    gone = asyncio.Event()
    listening = asyncio.create_task(_until_disconnected(request, gone))
    try:
        task = await state.engine.workers.next_task(worker_id, skills, timeout, gone=gone)
    finally:
        listening.cancel()
    if task is None:
        return Response(content=None, status_code=HTTP_204_NO_CONTENT)
    return Response(content=task, status_code=HTTP_200_OK)


@post("/tasks/result", status_code=HTTP_200_OK)
async def result(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """Settle a task attempt; a repeat or a late result is answered ``ignored``."""
    body = await _message(request, ResultBody)
    worker_id, _secret = request.state.worker
    error = None
    if body.error is not None:
        error = ErrorInfo(code=body.error.code, message=body.error.message)
    answer = await state.engine.workers.submit_result(
        worker_id, body.task_id, status=body.status, data=body.data, error=error, files=tuple(body.files)
    )
    return msgspec.to_builtins(answer)  # type: ignore[no-any-return]


@post("/events", status_code=HTTP_200_OK)
async def events(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """Progress of a running attempt (extends its lease); other event types are accepted and logged."""
    body = await _message(request, EventBody, ignore=("bubbling_chain",))
    worker_id, _secret = request.state.worker
    task_id = body.target_task_id or body.origin_task_id
    if body.event_type != "progress" or task_id is None:
        return {"status": "event_accepted"}
    progress = body.payload.get("progress")
    if progress is not None and (not isinstance(progress, int | float) or not math.isfinite(progress)):
        raise InvalidInput(f"payload.progress must be a finite number, got {progress!r}")
    cancel = await state.engine.workers.report_progress(
        worker_id, task_id, progress=progress, message=str(body.payload.get("message", ""))
    )
    return {"status": "event_accepted", "cancel_task_ids": cancel}


def worker_routes(credentials: Any) -> Router:
    """The worker routes, behind the worker guard."""
    return Router(
        path="/_worker",
        route_handlers=[register, heartbeat, next_task, result, events],
        guards=[worker_guard(credentials)],
        tags=["workers"],
    )
