"""What a person can do on the job page: cancel, retry, decide an approval, fork, download a file,
and replay the job's history against today's handlers.

Every action is a POST form carrying the session's CSRF token, and calls the engine with the
signed-in client as ``owner`` (another client's job is a 404, as on the API) and as ``actor``.
From HTMX the answer is the live header with what changed out of band (a refused action says why
above the actions, as a 200 so that htmx swaps it); without it, a redirect to the job page (or the
page again, with the reason and the error's status). A fork goes to the new job's page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from chronik.core.errors import ChronikError, InvalidInput

from ...errors import STATUS_BY_CODE
from ...ports import Orchestrator
from ..session import owner_in, page, session_of
from .job import CONSOLE_ERRORS, is_htmx, job_id_of, live_fragment, render_job_page

__all__ = ["ROUTES"]

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


_NOT_YOURS = frozenset({"JOB_NOT_FOUND", "FORBIDDEN"})
"""Errors that are not a refusal of the action but of the request: the console's error page."""


async def _attempt(action: Awaitable[Any]) -> ChronikError | None:
    """Run an engine command; the error that refused it, if one did."""
    try:
        await action
    except ChronikError as exc:
        if exc.code in _NOT_YOURS:
            raise
        return exc
    return None


async def _answer(
    request: Request[Any, Any, Any],
    engine: Orchestrator,
    found: UUID,
    data: Mapping[str, str],
    error: ChronikError | None,
) -> Response[Any]:
    """The answer to an action on job ``found`` that ``error`` refused (None: it was done)."""
    if is_htmx(request):
        return await live_fragment(request, engine, found, data, error=error.message if error else None)
    if error is not None:
        status = STATUS_BY_CODE.get(error.code, 500)
        return await render_job_page(request, engine, found, error=error.message, status_code=status)
    return Redirect(f"/console/jobs/{found}", status_code=HTTP_303_SEE_OTHER)


@post("/jobs/{job_id:str}/cancel", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def cancel(
    request: Request[Any, Any, Any], state: State, job_id: FromPath[str], data: Form
) -> Response[Any]:
    """Cancel the job, with the reason typed (its task is withdrawn)."""
    engine: Orchestrator = state["engine"]
    found, session = job_id_of(job_id), session_of(request)
    reason = data.get("reason", "").strip()
    done = engine.cancel_job(found, reason=reason, actor=session.client, owner=owner_in(session))
    return await _answer(request, engine, found, data, await _attempt(done))


@post("/jobs/{job_id:str}/retry", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def retry(
    request: Request[Any, Any, Any], state: State, job_id: FromPath[str], data: Form
) -> Response[Any]:
    """Re-run a quarantined job's task with a fresh retry budget."""
    engine: Orchestrator = state["engine"]
    found, session = job_id_of(job_id), session_of(request)
    done = engine.retry_job(found, actor=session.client, owner=owner_in(session))
    return await _answer(request, engine, found, data, await _attempt(done))


@post("/jobs/{job_id:str}/approval", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def decide(
    request: Request[Any, Any, Any], state: State, job_id: FromPath[str], data: Form
) -> Response[Any]:
    """Decide the approval the job waits for (one of the decisions it offers), with a comment."""
    engine: Orchestrator = state["engine"]
    found, session = job_id_of(job_id), session_of(request)
    decision, comment = data.get("decision", ""), data.get("comment", "").strip()
    done = engine.approve_job(found, decision, comment=comment, actor=session.client, owner=owner_in(session))
    return await _answer(request, engine, found, data, await _attempt(done))


@post("/jobs/{job_id:str}/fork", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def fork(
    request: Request[Any, Any, Any], state: State, job_id: FromPath[str], data: Form
) -> Response[Any]:
    """Start a new job from the job's state as of ``from_version``; go to the new job's page."""
    engine: Orchestrator = state["engine"]
    found, session = job_id_of(job_id), session_of(request)
    raw = data.get("from_version", "").strip()
    try:
        if not raw.isdigit():
            raise InvalidInput(f"the version to fork from is a whole number, got {raw!r}")
        new = await engine.fork_job(found, int(raw), actor=session.client, owner=owner_in(session))
    except ChronikError as exc:
        if exc.code in _NOT_YOURS:
            raise
        return await _answer(request, engine, found, data, exc)
    target = f"/console/jobs/{new.job_id}"
    if is_htmx(request):
        return Response(None, status_code=200, headers={"HX-Redirect": target})
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


@get("/jobs/{job_id:str}/files/{name:str}", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def download(
    request: Request[Any, Any, Any], state: State, job_id: FromPath[str], name: FromPath[str]
) -> Redirect:
    """A stored file of the job: a redirect to a short-lived presigned URL of it.

    The client route (``/api/v1/jobs/{id}/files/download/{name}``) wants ``X-Client-Token``,
    which a browser following a link does not send; this one goes by the console session.
    """
    engine: Orchestrator = state["engine"]
    url = await engine.files.download_url(job_id_of(job_id), name, owner=owner_in(session_of(request)))
    return Redirect(url, status_code=HTTP_303_SEE_OTHER)


@get("/jobs/{job_id:str}/replay", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def replay_form(request: Request[Any, Any, Any], state: State, job_id: FromPath[str]) -> Template:
    """What a replay does, and the button that runs it (it runs handlers: never on a mere GET)."""
    engine: Orchestrator = state["engine"]
    job = await engine.get_job(job_id_of(job_id), owner=owner_in(session_of(request)))
    return page(request, "job_replay.html", job=job, ran=False, runs=0, divergences=[], error=None)


@post("/jobs/{job_id:str}/replay", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def replay(request: Request[Any, Any, Any], state: State, job_id: FromPath[str]) -> Template:
    """Re-decide every handler run of the job's history with today's handlers; show each difference."""
    engine: Orchestrator = state["engine"]
    owner = owner_in(session_of(request))
    job = await engine.get_job(job_id_of(job_id), owner=owner)
    try:
        runs, differing = await engine.replay_job(job.job_id, owner=owner)
    except ChronikError as exc:
        if exc.code == "JOB_NOT_FOUND":
            raise
        response = page(
            request, "job_replay.html", job=job, ran=False, runs=0, divergences=[], error=exc.message
        )
        response.status_code = STATUS_BY_CODE.get(exc.code, 500)
        return response
    return page(request, "job_replay.html", job=job, ran=True, runs=runs, divergences=differing, error=None)


ROUTES: list[Any] = [cancel, retry, decide, fork, download, replay_form, replay]
