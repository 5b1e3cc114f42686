"""The job list: filter, page through, and open a job; the filters live in the URL, to share a view.

The filter form sends a GET, so a filtered list is a link (it never holds the token or the CSRF
token: the session is a cookie). With HTMX, the form swaps only the results and pushes the URL.
Bad input (a date that is not one, an id prefix that is not hex, ``key=value`` without ``=``)
is said above the results; it is never a server error. Pages are keyset pages whose cursor is
the API's (``next_cursor`` of ``GET /api/v1/jobs``), encoded by the API's own functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template

from chronik._runtime.overview import JOB_STATUSES
from chronik.core.errors import ChronikError, InvalidInput
from chronik.core.records import JobFilter

from ...filters import containment, job_filter
from ...ports import Orchestrator
from ...routes.jobs import _decode_cursor, _encode_cursor
from ..session import owner_in, page, session_of

__all__ = ["FILTER_FIELDS", "ROUTES", "JobQuery"]

PAGE_SIZE = 50

FILTER_FIELDS = ("status", "blueprint", "created_after", "created_before", "id", "data", "meta")
"""The list's filters, as the form and the URL name them (the cursor comes on top)."""


class JobQuery:
    """The filters of a job list as typed (every value a string, "" when empty), and the filter they make."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = {name: values.get(name, "").strip() for name in FILTER_FIELDS}

    @classmethod
    def of(cls, request: Request[Any, Any, Any]) -> JobQuery:
        """The filters in the request's query string."""
        return cls({name: request.query_params.get(name) or "" for name in FILTER_FIELDS})

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(self.values.values())

    def query_string(self, **extra: str) -> str:
        """The filters set (and ``extra``), URL-encoded: the list's address without the cursor."""
        return urlencode(
            {**{k: v for k, v in self.values.items() if v}, **{k: v for k, v in extra.items() if v}}
        )

    def job_filter(self, blueprints: list[str]) -> JobFilter:
        """The filter; ``InvalidInput`` naming the first field that is not right."""
        status = self.values["status"] or None
        if status is not None and status not in JOB_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)}, got {status!r}")
        blueprint = self.values["blueprint"] or None
        if blueprint is not None and blueprint not in blueprints:
            raise InvalidInput(
                f"no blueprint is named {blueprint!r} (known: {', '.join(blueprints) or 'none'})"
            )
        return job_filter(
            status=status,
            blueprint=blueprint,
            created_after=_moment("created after", self.values["created_after"]),
            created_before=_moment("created before", self.values["created_before"]),
            id_prefix=self.values["id"] or None,
            data=_pair("initial data", "data", self.values["data"]),
            metadata=_pair("metadata", "metadata", self.values["meta"]),
        )


def _moment(name: str, raw: str) -> datetime | None:
    """A time from a ``datetime-local`` field, read as UTC (or with the zone it names)."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date and time such as 2026-12-01T10:30, got {raw!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _pair(name: str, field: str, raw: str) -> dict[str, Any] | None:
    """``key=value`` as ``{key: value}``, the value read as the API reads ``data.<key>=<value>``: as
    JSON when it is JSON (``order_id=7`` the number, ``order_id="7"`` the text), else as text."""
    if not raw:
        return None
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise InvalidInput(f"{name} must be key=value, e.g. order_id=7, got {raw!r}")
    return containment([(f"{field}.{key.strip()}", value.strip())], field)


def blueprint_names(engine: Orchestrator) -> list[str]:
    """The registered blueprints' names, sorted."""
    return sorted(engine.blueprints)


@get("/jobs", include_in_schema=False)
async def job_list(request: Request[Any, Any, Any], state: State) -> Template:
    """The job list: the filter form and a page of results (only the results for an HTMX swap)."""
    engine: Orchestrator = state["engine"]
    query = JobQuery.of(request)
    blueprints = blueprint_names(engine)
    cursor = request.query_params.get("cursor") or None
    jobs: list[Any] = []
    next_cursor: str | None = None
    error: str | None = None
    try:
        where = query.job_filter(blueprints)
        found, last = await engine.list_jobs(
            where, limit=PAGE_SIZE, after=_decode_cursor(cursor), owner=owner_in(session_of(request))
        )
        jobs, next_cursor = found, _encode_cursor(last)
    except ChronikError as exc:  # the engine's InvalidInput too (e.g. a bad id prefix)
        error = exc.message
    results_only = request.headers.get("HX-Target") == "job-results"
    shown = page(
        request,
        "listing_results.html" if results_only else "listing.html",
        query=query,
        statuses=JOB_STATUSES,
        blueprints=blueprints,
        jobs=jobs,
        error=error,
        paged=cursor is not None,
        next_url=f"/console/jobs?{query.query_string(cursor=next_cursor)}" if next_cursor else None,
        first_url=f"/console/jobs?{query.query_string()}",
    )
    if results_only:
        # The address bar shows the filters that are set, not every empty field of the form.
        shown.headers["HX-Push-Url"] = f"/console/jobs?{query.query_string(cursor=cursor or '')}"
    return shown


ROUTES: list[Any] = [job_list]
