"""The worker protocol under ``/_worker``: Avtomatika's routes, so its workers run unchanged.

Each handler reads its message into the Structs of ``core/wire.py`` (task ids parsed
here, at the edge) and calls the worker service through its port. Two extensions save
round trips: ``max_tasks`` on a poll, and ``POST /_worker/tasks/results``. What a request
wastes (an empty poll, a refusal) is counted against the worker's budgets once its
outcome is known; a request that does work costs no count. ``POST /_worker/auth/token``
exchanges a worker's long-lived token or client certificate for a short-lived token.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from chronik.core.errors import ChronikError, Forbidden, InvalidInput, RateLimited
from chronik.core.wire import (
    MAX_TASKS_PER_POLL,
    PROTOCOL_VERSION,
    EventAnswer,
    EventBody,
    HeartbeatAnswer,
    HeartbeatBody,
    RegisterAnswer,
    RegisterBody,
    ReportedResult,
    ResultAnswer,
    ResultBody,
    ResultsAnswer,
    ResultsBody,
    TaskMessage,
    TasksAnswer,
    TokenAnswer,
)

from ..ports import Orchestrator, WorkerProtocol
from ..worker_auth import (
    WorkerCredentials,
    charge,
    charging_refusals,
    check_signature,
    is_refusal,
    worker_guard,
)

__all__ = ["PROTOCOL_VERSION", "worker_routes"]

T = TypeVar("T")


def _service(state: State) -> WorkerProtocol:
    engine: Orchestrator = state.engine
    return engine.workers


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
    # The signature covers the message as sent, with the fields no Struct here reads.
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
async def register(request: Request[Any, Any, Any], state: State) -> RegisterAnswer:
    """Register a worker and the task types (skills) it runs."""
    async with charging_refusals(request):
        body = await _message(request, RegisterBody)
        return await _service(state).register(body)


@patch("/workers/{worker_id:str}", status_code=HTTP_200_OK)
async def heartbeat(
    worker_id: FromPath[str], request: Request[Any, Any, Any], state: State
) -> HeartbeatAnswer:
    """The worker is alive: extend its leases; ``cancel_task_ids`` lists the attempts it must stop."""
    await charge(request, "heartbeats")  # counted only when it comes too soon after the last one
    async with charging_refusals(request):
        body = await _message(request, HeartbeatBody)
        return await _service(state).heartbeat(worker_id, body.running())


async def _until_disconnected(request: Request[Any, Any, Any], gone: asyncio.Event) -> None:
    # A GET has no body, so the next ASGI message is the client hanging up.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


@get(
    "/workers/{worker_id:str}/tasks/next",
    status_code=HTTP_200_OK,
    responses={HTTP_204_NO_CONTENT: ResponseSpec(None, description="No task came within timeout")},
)
async def next_task(
    worker_id: FromPath[str],
    request: Request[Any, Any, Any],
    state: State,
    timeout: FromQuery[float] = 30.0,  # noqa: ASYNC109 (the protocol names this query parameter)
    available_skills: FromQuery[str] = "",
    max_tasks: FromQuery[int | None] = None,
) -> Response[TaskMessage | TasksAnswer | None]:
    """Long-poll for tasks of the worker's available skills, or 204 after ``timeout`` s.

    Without ``max_tasks`` the answer is one task, as Avtomatika's workers expect; with it,
    ``{"tasks": [...]}`` of up to that many (chronik's extension). An empty poll counts
    against the worker's poll budget.
    """
    async with charging_refusals(request):
        if max_tasks is not None and max_tasks < 1:
            raise InvalidInput(f"max_tasks must be at least 1, got {max_tasks}")
    skills = [name for name in available_skills.split(",") if name]
    gone = asyncio.Event()
    listening = asyncio.create_task(_until_disconnected(request, gone))
    try:
        limit = min(max_tasks or 1, MAX_TASKS_PER_POLL)
        taken = await _service(state).next_tasks(worker_id, skills, timeout, limit=limit, gone=gone)
    finally:
        listening.cancel()
    if not taken:
        if not gone.is_set():
            await charge(request, "polls")
        return Response(content=None, status_code=HTTP_204_NO_CONTENT)
    answer = taken[0] if max_tasks is None else TasksAnswer(tasks=taken)
    return Response(content=answer, status_code=HTTP_200_OK)


@post("/tasks/result", status_code=HTTP_200_OK)
async def result(request: Request[Any, Any, Any], state: State) -> ResultAnswer:
    """Settle a task attempt; a repeat or a late result is answered ``ignored``."""
    async with charging_refusals(request):
        body = await _message(request, ResultBody)
        worker_id, _secret = request.state.worker
        return await _service(state).submit_result(body.report(worker_id))


@post("/tasks/results", status_code=HTTP_200_OK)
async def results(request: Request[Any, Any, Any], state: State) -> ResultsAnswer:
    """Settle several results (chronik's extension): one answer per entry, in order.

    Each entry is settled as ``/tasks/result`` settles it, and a refused one is answered
    in its place (``refused``, its error code); only a bad message (its JSON, token or
    signature) refuses the whole. Each refused entry counts against the ``other`` budget.
    """
    async with charging_refusals(request):
        body = await _message(request, ResultsBody)
    worker_id, _secret = request.state.worker
    reports = body.reports(worker_id)
    parsed = [report for report in reports if isinstance(report, ReportedResult)]
    settled = iter(await _service(state).submit_results(parsed))
    answers = [_answer(next(settled) if isinstance(r, ReportedResult) else r) for r in reports]
    for _refused in range(sum(answer.status == "refused" for answer in answers)):
        try:
            await charge(request, "other")
        except RateLimited:
            # Every entry is settled already: a 429 now would make the worker send them all
            # again. The spent budget stops its next wasted request instead.
            break
    return ResultsAnswer(results=answers)


def _answer(outcome: ResultAnswer | ChronikError) -> ResultAnswer:
    """A batch entry's answer: the result's own, or its error as ``refused`` or ``error``."""
    if isinstance(outcome, ResultAnswer):
        return outcome
    status = "refused" if is_refusal(outcome) else "error"
    return ResultAnswer(status=status, reason=outcome.code, message=outcome.message)


@post("/events", status_code=HTTP_200_OK)
async def events(request: Request[Any, Any, Any], state: State) -> EventAnswer:
    """Progress of a running attempt (extends its lease); other event types are accepted and logged."""
    async with charging_refusals(request):
        body = await _message(request, EventBody, ignore=("bubbling_chain",))
        worker_id, _secret = request.state.worker
        report = body.progress_report(worker_id)
        if report is None:
            return EventAnswer()
        return await _service(state).report_progress(report)


@post("/auth/token", status_code=HTTP_200_OK)
async def token(request: Request[Any, Any, Any], state: State) -> TokenAnswer:
    """Exchange the worker's long-lived token or client certificate for a short-lived token.

    The token lasts ``WORKER_TOKEN_TTL_SECONDS`` on every instance. There is no refresh token:
    a worker renews by exchanging its long-lived credential again; a short-lived one cannot.
    """
    async with charging_refusals(request):
        worker_id, _secret = request.state.worker
        if request.state.worker_auth == "short-lived":
            raise Forbidden(
                "a short-lived token cannot be exchanged for another; exchange the worker's "
                "long-lived token or its client certificate"
            )
        credentials: WorkerCredentials = state.worker_credentials
        by_certificate = request.state.worker_auth == "certificate"
        return await _service(state).issue_token(
            worker_id, by_certificate=by_certificate, seconds=credentials.token_ttl
        )


def worker_routes(credentials: Any) -> Router:
    """The worker routes, behind the worker guard."""
    return Router(
        path="/_worker",
        route_handlers=[register, heartbeat, next_task, result, results, events, token],
        guards=[worker_guard(credentials)],
        tags=["workers"],
    )
