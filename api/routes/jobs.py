"""The client job API under ``/api/v1``: create, status (or wait for the end), history, events, cancel."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from chronik.core.errors import InvalidInput
from chronik.core.records import JobFilter, RecordedEvent

from ..filters import containment, job_filter
from ..guards import client_entry_of, client_of, owner_of
from ..ports import Orchestrator
from ..schemas import (
    ApprovalAccepted,
    ApprovalRequest,
    CancelAccepted,
    CancelRequest,
    CreateJobRequest,
    EventStreamMessage,
    HistoryEntry,
    JobAccepted,
    JobPage,
    JobView,
    RetryAccepted,
    WebhookView,
)
from .admin import reload_workers
from .batches import batch_cancel, batch_retry
from .catalog import blueprint_graph, dashboard, list_workers
from .files import download_file, file_upload_link, upload_file
from .forks import fork_job

__all__ = ["MAX_WAIT_SECONDS", "job_routes"]

MAX_WAIT_SECONDS = 60.0
ARCHIVED_HEADER = "X-Chronik-Archived"
"""Set (``true``) on a history answered from the archive."""
"""The longest ``GET /jobs/{id}?wait=``: a proxy's read timeout (nginx: 60 s) should be longer still."""

_json = msgspec.json.Encoder()


def _engine(state: State) -> Orchestrator:
    engine: Orchestrator = state.engine
    return engine


def _job_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(f"job id {raw!r} is not a UUID") from None


@post("/jobs/{api_endpoint:str}", status_code=HTTP_202_ACCEPTED, summary="Create a job")
async def create_job(
    api_endpoint: FromPath[str],
    data: JSONBody[CreateJobRequest],
    state: State,
    request: Request[Any, Any, Any],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> JobAccepted:
    """Create a job of the blueprint served at ``api_endpoint``; its first step is queued at once.

    With an ``Idempotency-Key`` header, the same key within 24 hours answers with the first job.
    """
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidInput("the Idempotency-Key header must have 1 to 255 characters")
    engine = _engine(state)
    blueprint = engine.blueprints.for_endpoint(api_endpoint)
    entry = client_entry_of(request)
    job = await engine.create_job(
        blueprint,
        data.initial_data,
        actor=client_of(request),
        idempotency_key=idempotency_key,
        timeout_seconds=data.job_timeout(),
        webhook_url=data.webhook_url,
        monthly_quota=entry.monthly_attempts if entry is not None else None,
        metadata=data.metadata,
        max_transitions=data.max_transitions,
        security=data.security,
        policy=data.policy,
        dispatch_timeout=data.dispatch_timeout,
    )
    return JobAccepted(job_id=job.job_id)


@get("/jobs", summary="List jobs")
async def list_jobs(
    state: State,
    request: Request[Any, Any, Any],
    blueprint: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    current_state: Annotated[str | None, QueryParameter(name="state")] = None,
    created_after: FromQuery[datetime | None] = None,
    created_before: FromQuery[datetime | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
    id_prefix: FromQuery[str | None] = None,
) -> JobPage:
    """Jobs newest first, filtered by blueprint, status, state, creation time, id prefix, and
    ``data.<key>=<value>`` / ``metadata.<key>=<value>`` (docs/api.md); keyset pages."""
    if not 1 <= limit <= 500:
        raise InvalidInput(f"limit must be from 1 to 500, got {limit}")
    pairs = list(request.query_params.multi_items())
    where = job_filter(
        blueprint=blueprint,
        status=status,
        state=current_state,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
        data=containment(pairs, "data"),
        metadata=containment(pairs, "metadata"),
    )
    jobs, last = await _engine(state).list_jobs(
        where, limit=limit, after=_decode_cursor(cursor), owner=owner_of(request)
    )
    return JobPage(jobs=[JobView.of(job) for job in jobs], next_cursor=_encode_cursor(last))


@get("/jobs/quarantined", summary="List quarantined jobs")
async def list_quarantined(
    state: State, request: Request[Any, Any, Any], limit: FromQuery[int] = 100
) -> list[JobView]:
    """The caller's quarantined jobs, newest first (Avtomatika's route: a plain array, at most ``limit``).

    Each waits for a person: ``POST /jobs/{id}/retry`` runs its task again, ``/cancel`` ends it.
    """
    if not 1 <= limit <= 500:
        raise InvalidInput(f"limit must be from 1 to 500, got {limit}")
    where = JobFilter(status="quarantined")
    jobs, _last = await _engine(state).list_jobs(where, limit=limit, owner=owner_of(request))
    return [JobView.of(job) for job in jobs]


def _encode_cursor(last: tuple[datetime, UUID] | None) -> str | None:
    if last is None:
        return None
    return base64.urlsafe_b64encode(f"{last[0].isoformat()}|{last[1]}".encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        moment, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(moment), UUID(job_id)
    except ValueError:
        raise InvalidInput("cursor is not one this API gave; start again without it") from None


@get("/jobs/{job_id:str}", summary="Get a job's current state, or wait for its end")
async def get_job(
    job_id: FromPath[str],
    state: State,
    request: Request[Any, Any, Any],
    as_of_version: FromQuery[int | None] = None,
    as_of: FromQuery[datetime | None] = None,
    wait: FromQuery[float | None] = None,
    fields: FromQuery[str | None] = None,
) -> JobView | dict[str, Any]:
    """The job's current state, or with ``as_of_version``/``as_of`` the state it had then (from its log).

    With ``wait`` (seconds, at most ``MAX_WAIT_SECONDS``) the answer comes once the job has ended or
    was quarantined, or at the deadline with the state it has then: no need to poll. With
    ``fields`` (comma-separated names of the job view's fields) only those come, and ``id``.
    """
    engine = _engine(state)
    wanted = _fields(fields)
    owner = owner_of(request)
    if wait is not None:
        _check_wait(wait, time_travel=as_of_version is not None or as_of is not None)
        job, progress = await engine.wait_for_job(_job_id(job_id), wait, owner=owner)
        view = JobView.of(job, progress=progress)
    elif as_of_version is None and as_of is None:
        job, progress = await engine.get_job_with_progress(_job_id(job_id), owner=owner)
        view = JobView.of(job, progress=progress)
    else:
        view = JobView.of(
            await engine.job_as_of(_job_id(job_id), version=as_of_version, at=as_of, owner=owner)
        )
    if wanted is None:
        return view
    whole = msgspec.to_builtins(view)
    return {name: whole[name] for name in ("id", *wanted) if name in whole}


_VIEW_FIELDS = frozenset(JobView.__struct_fields__)


def _fields(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    wanted = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(wanted) - _VIEW_FIELDS)
    if unknown or not wanted:
        raise InvalidInput(
            f"fields must name fields of a job ({', '.join(sorted(_VIEW_FIELDS))}); "
            f"unknown: {', '.join(unknown) or '(none given)'}"
        )
    return wanted


def _check_wait(wait: float, *, time_travel: bool) -> None:
    if time_travel:
        raise InvalidInput("wait is for the current state; it does not go with as_of or as_of_version")
    if not 0 < wait <= MAX_WAIT_SECONDS:  # NaN fails too
        raise InvalidInput(f"wait must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds, got {wait}")


@get("/jobs/{job_id:str}/history", summary="Get a job's events")
async def get_history(
    job_id: FromPath[str],
    state: State,
    request: Request[Any, Any, Any],
    after_version: FromQuery[int] = 0,
    limit: FromQuery[int | None] = None,
) -> Response[list[HistoryEntry]]:
    """The job's events, oldest first (from its archive, marked ``X-Chronik-Archived: true``, once its
    partition of the log was archived); page with ``after_version`` (the last version seen) and ``limit``."""
    if not 0 <= after_version < 2**31 or (limit is not None and not 1 <= limit <= 10_000):
        raise InvalidInput("after_version must be a version (0 or more) and limit from 1 to 10000")
    events, archived = await _engine(state).job_history_page(
        _job_id(job_id), after_version=after_version, limit=limit, owner=owner_of(request)
    )
    # The body is the same as before the job was archived; the header says where it came from.
    headers = {ARCHIVED_HEADER: "true"} if archived else None
    return Response([HistoryEntry.of(recorded) for recorded in events], headers=headers)


@get(
    "/jobs/{job_id:str}/events",
    summary="Follow a job's events (server-sent events)",
    responses={
        # In OpenAPI 3.1 the schema of an event stream describes each of its messages.
        HTTP_200_OK: ResponseSpec(
            EventStreamMessage, media_type="text/event-stream", description="The events, one message each"
        ),
        HTTP_204_NO_CONTENT: ResponseSpec(None, description="The job has ended: no event will come"),
    },
)
async def stream_events(
    job_id: FromPath[str],
    state: State,
    request: Request[Any, Any, Any],
    after_version: FromQuery[int] = 0,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> ServerSentEvent | Response[None]:
    """The job's events as they commit: ``id`` its version, ``event`` its type, ``data`` a history entry.

    Starts after ``Last-Event-ID`` (an ``EventSource`` reconnecting) or ``after_version``, and
    ends after the event that ends or quarantines the job; 204 when nothing more will come.
    """
    after = _resume_after(after_version, last_event_id)
    events = await _engine(state).job_events(_job_id(job_id), after, owner=owner_of(request))
    if events is None:  # 204 tells an EventSource to stop reconnecting
        return Response(None, status_code=HTTP_204_NO_CONTENT)
    return ServerSentEvent(_messages(events))


def _resume_after(after_version: int, last_event_id: str | None) -> int:
    # The header wins: an EventSource sends it on reconnecting, while its URL keeps the first start.
    if last_event_id is not None:
        try:
            after_version = int(last_event_id)
        except ValueError:
            raise InvalidInput(f"Last-Event-ID must be an event's version, got {last_event_id!r}") from None
    if not 0 <= after_version < 2**31:
        raise InvalidInput(f"after_version must be a version (0 or more), got {after_version}")
    return after_version


async def _messages(events: AsyncIterator[RecordedEvent | None]) -> AsyncIterator[ServerSentEventMessage]:
    async for recorded in events:
        if recorded is None:  # quiet for a while: a comment keeps proxies from closing the stream
            yield ServerSentEventMessage(data=None, comment="keep-alive")
        else:
            data = _json.encode(HistoryEntry.of(recorded)).decode()
            yield ServerSentEventMessage(id=recorded.version, event=recorded.type, data=data)


@post("/jobs/{job_id:str}/approval", status_code=HTTP_200_OK, summary="Decide on a job waiting for approval")
async def approve_job(
    job_id: FromPath[str], data: JSONBody[ApprovalRequest], state: State, request: Request[Any, Any, Any]
) -> ApprovalAccepted:
    """Record a decision; 409 when the job waits for none, 422 for a decision it does not offer."""
    job = await _engine(state).approve_job(
        _job_id(job_id),
        data.decision,
        comment=data.comment,
        actor=client_of(request),
        owner=owner_of(request),
    )
    return ApprovalAccepted(job_id=job.job_id)


@get("/jobs/{job_id:str}/webhooks", summary="A job's webhook notifications")
async def get_webhooks(
    job_id: FromPath[str], state: State, request: Request[Any, Any, Any]
) -> list[WebhookView]:
    """Each notification of the job's ``webhook_url`` with every delivery attempt; 404 for an unknown job."""
    found = await _engine(state).job_webhooks(_job_id(job_id), owner=owner_of(request))
    return [msgspec.convert(row, WebhookView) for row in found]


@post("/jobs/{job_id:str}/retry", status_code=HTTP_200_OK, summary="Re-run a quarantined job")
async def retry_job(job_id: FromPath[str], state: State, request: Request[Any, Any, Any]) -> RetryAccepted:
    """Queue a quarantined job's task again, with a fresh retry budget; 409 for any other job."""
    job = await _engine(state).retry_job(_job_id(job_id), actor=client_of(request), owner=owner_of(request))
    return RetryAccepted(job_id=job.job_id)


@post("/jobs/{job_id:str}/cancel", status_code=HTTP_200_OK, summary="Cancel a job")
async def cancel_job(
    job_id: FromPath[str],
    state: State,
    request: Request[Any, Any, Any],
    data: JSONBody[CancelRequest | None] = None,
) -> CancelAccepted:
    """Cancel a job that has not ended; 409 when it has."""
    reason = data.reason if data else ""
    job = await _engine(state).cancel_job(
        _job_id(job_id), reason=reason, actor=client_of(request), owner=owner_of(request)
    )
    return CancelAccepted(job_id=job.job_id)


def job_routes(guards: list[object]) -> Router:
    """The client routes, behind ``guards``."""
    return Router(
        path="/api/v1",
        route_handlers=[
            list_jobs,
            list_quarantined,
            create_job,
            approve_job,
            get_job,
            get_history,
            stream_events,
            get_webhooks,
            cancel_job,
            retry_job,
            fork_job,
            batch_cancel,
            batch_retry,
            reload_workers,
            list_workers,
            dashboard,
            blueprint_graph,
            file_upload_link,
            upload_file,
            download_file,
        ],
        guards=guards,  # type: ignore[arg-type]
        tags=["jobs"],
    )
