"""The job page, ``/console/jobs/{job_id}``: a job's header, its path through the blueprint's graph,
its event timeline (paged, filterable, each event expandable and viewable "as of"), its task
attempts, webhook deliveries and files, updated live while the job runs.

The first response reads a bounded amount whatever the job's length: its row, one page of its
log, its distinct moves (for the graph), its webhook deliveries. Attempts come in a fragment after
the page (``hx-trigger="load"``); the state as of a version reads the log up to that version, on
request only.

Live updates poll the header every 2 s (``hx-trigger="every 2s"``): an unchanged job answers 204
(one primary-key read, nothing is swapped); a changed one answers the header with, out of band,
the graph, the new events on top of the timeline when it shows the newest page, and the actions
when the status changed. Once the job has ended the header is rendered without the trigger, and
polling stops. Polling, not server-sent events: htmx 2 needs an extension for SSE (one more asset
to vendor), and a stream holds a connection and a task per open page for the life of the page,
where an idle poll costs one indexed read every 2 s and survives restarts and proxies unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template
from litestar.types import ExceptionHandlersMap

from chronik.core.approvals import decisions_of
from chronik.core.blueprint import Blueprint
from chronik.core.errors import ChronikError, InvalidInput, JobNotFound
from chronik.core.state import JobState, result_of

from ...errors import STATUS_BY_CODE, exception_handlers
from ...ports import Orchestrator
from ..graph_svg import state_graph_svg
from ..job_view import FAILURE_TYPES, PAGE_SIZE, TimelinePage, diff_keys, event_row
from ..session import owner_in, page, session_of

__all__ = ["CONSOLE_ERRORS", "ROUTES", "is_htmx", "job_id_of", "live_fragment", "render_job_page"]


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """Whether HTMX sent the request (it then wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def job_id_of(raw: str) -> UUID:
    """The job id in a console URL; a malformed one is a job that does not exist (404)."""
    try:
        return UUID(raw)
    except ValueError:
        raise JobNotFound(f"no job has the id {raw!r}") from None


def _console_error(request: Request[Any, Any, Any], exc: ChronikError) -> Response[Any]:
    """An error of a console page, as a console page (not the API's JSON); 404 for a job that
    does not exist or is another client's, exactly alike."""
    if getattr(request.state, "console_session", None) is None:
        return exception_handlers[ChronikError](request, exc)  # before the session was found
    status = STATUS_BY_CODE.get(exc.code, 500)
    response = page(request, "console_error.html", status=status, message=exc.message, code=exc.code)
    response.status_code = status
    return response


CONSOLE_ERRORS: ExceptionHandlersMap = {ChronikError: _console_error}
"""The job page's routes answer errors with the console's look: a 404 page for an unknown job."""


def _blueprint(engine: Orchestrator, name: str) -> Blueprint | None:
    return engine.blueprints.get(name)


async def _graph(engine: Orchestrator, job: JobState, owner: str | None) -> Any:
    moves = await engine.job_page.moves(job.job_id, owner=owner)
    return state_graph_svg(
        _blueprint(engine, job.blueprint),
        moves,
        current=job.current_state,
        title=f"states of blueprint {job.blueprint}; the job is in {job.current_state}",
    )


async def load_timeline(
    engine: Orchestrator, job: JobState, *, upto: int | None, failures: bool, owner: str | None
) -> TimelinePage:
    """A page of the job's timeline, newest first: ``upto`` the newest version it covers (None:
    the job's newest), only failure events with ``failures``."""
    top = job.version if upto is None else max(1, min(upto, job.version))
    if failures:
        found = await engine.job_page.events_of_types(
            job.job_id, FAILURE_TYPES, upto=top, limit=PAGE_SIZE, owner=owner
        )
        newer = None if top >= job.version else found.newer
        return TimelinePage(
            rows=[event_row(recorded) for recorded in found.events],
            upto=top,
            older=found.older,
            newer=newer,
            failures=True,
        )
    after = max(0, top - PAGE_SIZE)
    events = await engine.job_history(job.job_id, after_version=after, limit=top - after, owner=owner)
    return TimelinePage(
        rows=[event_row(recorded) for recorded in reversed(events)],
        upto=top,
        older=after if after > 0 else None,
        newer=None if top >= job.version else min(top + PAGE_SIZE, job.version),
        failures=False,
    )


def _flag(raw: str | None) -> bool:
    return raw not in (None, "", "0", "false")


def _version(raw: str | None) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"a version is a whole number, got {raw!r}") from None


def _context(job: JobState, progress: Mapping[str, Any] | None) -> dict[str, Any]:
    approval = job.approval
    return {
        "job": job,
        "progress": progress,
        "result": result_of(job),
        "decisions": decisions_of(approval.transitions) if approval is not None else [],
        "files": _files(job),
    }


def _files(job: JobState) -> list[tuple[str, str, bool]]:
    """The job's stored files: (key, name in its folder, whether it can be downloaded). A name in
    a subfolder cannot (the download takes one plain name); nor can any once the job has ended
    (its folder is emptied then)."""
    folder = f"jobs/{job.job_id}/"
    named = [(key, key.removeprefix(folder)) for key in job.files]
    return [(key, name, not job.is_terminal and "/" not in name) for key, name in named]


async def render_job_page(
    request: Request[Any, Any, Any],
    engine: Orchestrator,
    job_id: UUID,
    *,
    upto: int | None = None,
    failures: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    """The whole job page; ``error`` is said above the actions (a refused action without HTMX)."""
    owner = owner_in(session_of(request))
    job, progress = await engine.get_job_with_progress(job_id, owner=owner)
    timeline = await load_timeline(engine, job, upto=upto, failures=failures, owner=owner)
    webhooks = await engine.job_webhooks(job_id, owner=owner)
    response = page(
        request,
        "job.html",
        **_context(job, progress),
        graph=await _graph(engine, job, owner),
        timeline=timeline,
        webhooks=webhooks,
        action_error=error,
    )
    response.status_code = status_code
    return response


@get("/jobs/{job_id:str}", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def job_page(request: Request[Any, Any, Any], state: State, job_id: FromPath[str]) -> Template:
    """The job page; ``upto`` and ``failures`` in the query choose the timeline's page."""
    query = request.query_params
    return await render_job_page(
        request,
        state["engine"],
        job_id_of(job_id),
        upto=_version(query.get("upto")),
        failures=_flag(query.get("failures")),
    )


@get("/jobs/{job_id:str}/timeline", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def timeline(request: Request[Any, Any, Any], state: State, job_id: FromPath[str]) -> Template:
    """A page of the timeline (the fragment; the whole page without HTMX)."""
    engine: Orchestrator = state["engine"]
    query = request.query_params
    upto, failures = _version(query.get("upto")), _flag(query.get("failures"))
    if not is_htmx(request):
        return await render_job_page(request, engine, job_id_of(job_id), upto=upto, failures=failures)
    owner = owner_in(session_of(request))
    job = await engine.get_job(job_id_of(job_id), owner=owner)
    found = await load_timeline(engine, job, upto=upto, failures=failures, owner=owner)
    return page(request, "job_timeline.html", job=job, timeline=found)


async def live_fragment(
    request: Request[Any, Any, Any],
    engine: Orchestrator,
    job_id: UUID,
    params: Mapping[str, str],
    *,
    error: str | None = None,
    loaded: tuple[JobState, dict[str, Any] | None] | None = None,
) -> Template:
    """The header with, out of band, what changed since the version the page shows.

    ``params`` are the page's hidden inputs, sent with the poll or the action: ``seen`` and
    ``status`` (the header's version and status), ``follow``, ``top`` and ``failures`` (whether the
    timeline shows the newest page, its newest version, its filter). Out of band come the graph
    (a new version), the new events on top of the timeline (when it follows), the actions and
    the details (a new status, or ``error``: why an action was refused). ``loaded``: the job and
    its progress, when the caller has just read them.
    """
    owner = owner_in(session_of(request))
    job, progress = loaded or await engine.get_job_with_progress(job_id, owner=owner)
    query = params
    seen = _version(query.get("seen")) or 0
    status = query.get("status") or ""
    top = _version(query.get("top"))
    rows = []
    if _flag(query.get("follow")) and top is not None and top < job.version:
        after = max(top, job.version - PAGE_SIZE)
        new = await engine.job_history(job_id, after_version=after, limit=job.version - after, owner=owner)
        failures = _flag(query.get("failures"))
        rows = [event_row(r) for r in reversed(new) if not failures or r.type in FAILURE_TYPES]
    changed_status = job.status != status or error is not None
    return page(
        request,
        "job_live.html",
        **_context(job, progress),
        graph=await _graph(engine, job, owner) if job.version != seen else None,
        new_rows=rows,
        follow=_flag(query.get("follow")),
        failures=_flag(query.get("failures")),
        oldest=_version(query.get("oldest")) or (rows[-1].version if rows else ""),
        changed_status=changed_status,
        webhooks=await engine.job_webhooks(job_id, owner=owner) if changed_status else [],
        action_error=error,
    )


@get("/jobs/{job_id:str}/head", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def head(request: Request[Any, Any, Any], state: State, job_id: FromPath[str]) -> Response[Any]:
    """The live poll: 204 while the job is at version ``seen`` with the same worker progress
    (``progress``, the time of the last report), else the header and what changed."""
    engine: Orchestrator = state["engine"]
    owner = owner_in(session_of(request))
    query = request.query_params
    job, progress = await engine.get_job_with_progress(job_id_of(job_id), owner=owner)
    reported = progress["at"].isoformat() if progress else ""
    if job.version == (_version(query.get("seen")) or 0) and reported == (query.get("progress") or ""):
        return Response(None, status_code=204)
    return await live_fragment(request, engine, job.job_id, query, loaded=(job, progress))


@get("/jobs/{job_id:str}/as-of/{version:int}", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def as_of(
    request: Request[Any, Any, Any], state: State, job_id: FromPath[str], version: FromPath[int]
) -> Template:
    """The job as of ``version`` and what that version changed: the fold of the log up to it,
    against the fold up to the version before (the panel; a page of its own without HTMX)."""
    engine: Orchestrator = state["engine"]
    owner = owner_in(session_of(request))
    found = job_id_of(job_id)
    then = await engine.job_as_of(found, version=version, owner=owner)
    before = await engine.job_as_of(found, version=version - 1, owner=owner) if version > 1 else None
    event = await engine.job_history(found, after_version=version - 1, limit=1, owner=owner)
    context = {
        "job_id": found,
        "then": then,
        "before": before,
        "event": event_row(event[0]) if event else None,
        "changes": diff_keys(before.state_history if before else {}, then.state_history),
    }
    return page(request, "job_as_of.html" if is_htmx(request) else "job_as_of_page.html", **context)


@get("/jobs/{job_id:str}/attempts", include_in_schema=False, exception_handlers=CONSOLE_ERRORS)
async def attempts(request: Request[Any, Any, Any], state: State, job_id: FromPath[str]) -> Template:
    """The job's task attempts (a fragment the page loads after itself)."""
    engine: Orchestrator = state["engine"]
    found = await engine.job_page.attempts(job_id_of(job_id), owner=owner_in(session_of(request)))
    return page(request, "job_attempts.html", attempts=found[::-1], job_id=job_id)


ROUTES: list[Any] = [job_page, timeline, head, as_of, attempts]
