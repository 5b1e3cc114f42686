"""Retention for admins: the log's partitions, which may leave now, and why the others stay.

The same plan as ``chronik events archive --plan``. Partitions hold every client's jobs, so the
page is for admins, and tells anyone else so.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template

from ...ports import Orchestrator
from ..session import page, session_of

__all__ = ["ROUTES"]


@get("/retention", include_in_schema=False)
async def retention(request: Request[Any, Any, Any], state: State) -> Template:
    """Every partition (live or archived) and, for the closed live ones, the plan."""
    if not session_of(request).is_admin:
        return page(request, "retention.html", allowed=False)
    engine: Orchestrator = state["engine"]
    found = await engine.archiver.partitions()
    plans = {plan.name: plan for plan in await engine.archiver.plan()}
    return page(request, "retention.html", allowed=True, partitions=found, plans=plans)


ROUTES: list[Any] = [retention]
