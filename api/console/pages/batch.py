"""Cancel or retry every job of a filtered list: a dry run first, then a confirmed run.

``GET /console/batch/{cancel|retry}?<filters>`` is the dry run: how many of the jobs the filter
finds the action applies to, and the first ids; it changes nothing. Its confirm form POSTs the
same filters, the session's CSRF token and the time of the dry run: the run acts only on jobs
created before that time, so new jobs that match meanwhile are left alone. Each job is then
cancelled or retried as its own command (``Orchestrator.run_batch``), owned by the signed-in
client (an admin: anyone's); one that ended or moved on meanwhile is skipped with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK

from chronik._runtime.batches import BatchAction
from chronik.core.errors import ChronikError, InvalidInput
from chronik.core.records import JobFilter

from ...ports import Orchestrator
from ..session import owner_in, page, session_of
from .jobs import FILTER_FIELDS, JobQuery, blueprint_names

__all__ = ["ROUTES"]

_ACTIONS: dict[str, BatchAction] = {"cancel": "cancel", "retry": "retry"}
_PAST = {"cancel": "cancelled", "retry": "retried"}
_SKIPS_SHOWN = 50


def _action(name: str) -> BatchAction:
    action = _ACTIONS.get(name)
    if action is None:
        raise NotFoundException(f"there is no batch action {name!r} (cancel or retry)")
    return action


@get("/batch/{action_name:str}", include_in_schema=False)
async def batch_preview(
    request: Request[Any, Any, Any], state: State, action_name: FromPath[str]
) -> Template:
    """The dry run: how many jobs the action would apply to, the first ids, and a confirm form."""
    engine: Orchestrator = state["engine"]
    action = _action(action_name)
    query = JobQuery.of(request)
    context: dict[str, Any] = {"action": action, "past": _PAST[action], "query": query}
    try:
        where = query.job_filter(blueprint_names(engine))
        as_of = datetime.now(UTC)
        context["preview"] = await engine.preview_batch(
            action, _before(where, as_of), owner=owner_in(session_of(request))
        )
        context["as_of"] = as_of.isoformat()
    except ChronikError as exc:
        context["error"] = exc.message
    return _render(request, context)


@post("/batch/{action_name:str}", include_in_schema=False, status_code=HTTP_200_OK)
async def batch_run(request: Request[Any, Any, Any], state: State, action_name: FromPath[str]) -> Template:
    """The confirmed run (the CSRF token was checked before): act on the jobs, show the outcome."""
    engine: Orchestrator = state["engine"]
    action = _action(action_name)
    form = await request.form()
    query = JobQuery({name: str(form.get(name) or "") for name in FILTER_FIELDS})
    context: dict[str, Any] = {"action": action, "past": _PAST[action], "query": query}
    session = session_of(request)
    try:
        where = query.job_filter(blueprint_names(engine))
        as_of = _as_of(str(form.get("as_of") or ""))
        outcome = await engine.run_batch(
            action,
            _before(where, as_of),
            actor=session.client,
            owner=owner_in(session),
            reason=str(form.get("reason") or "").strip()[:500],
        )
        context.update(outcome=outcome, skipped=outcome.skipped[:_SKIPS_SHOWN])
    except ChronikError as exc:
        context["error"] = exc.message
    response = _render(request, context)
    response.headers["HX-Trigger"] = "chronik-batch-done"  # the list on the page reloads itself
    return response


def _before(where: JobFilter, as_of: datetime) -> JobFilter:
    """``where``, narrowed to the jobs created before ``as_of`` (the dry run's time)."""
    bound = as_of if where.created_before is None else min(where.created_before, as_of)
    return msgspec.structs.replace(where, created_before=bound)


def _as_of(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("this form lacks the time of its dry run; start again from the job list") from None
    if moment.tzinfo is None:
        raise InvalidInput("the time of the dry run needs a time zone; start again from the job list")
    return moment


def _render(request: Request[Any, Any, Any], context: dict[str, Any]) -> Template:
    # An HTMX request gets the panel alone; a plain one (no script) a whole page around it.
    template = "batch_panel.html" if request.headers.get("HX-Request") else "batch_page.html"
    return page(request, template, **context)


ROUTES: list[Any] = [batch_preview, batch_run]
