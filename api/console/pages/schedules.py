"""The instance's schedules: what each starts and when, its next fire, its last fire and job.

Schedules are the instance's configuration (``SCHEDULES_CONFIG_PATH``), not a client's, so every
signed-in client sees them. The job a fire started belongs to no client: it is linked only for
an admin, who may open it (``ConsoleStats.schedules`` decides).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template

from ...ports import Orchestrator
from ..session import owner_in, page, session_of

__all__ = ["ROUTES"]


@get("/schedules", include_in_schema=False)
async def schedules(request: Request[Any, Any, Any], state: State) -> Template:
    """Each schedule with its trigger, next fire and last fire."""
    engine: Orchestrator = state["engine"]
    found = await engine.console_stats.schedules(owner=owner_in(session_of(request)))
    return page(request, "schedules.html", schedules=found)


ROUTES: list[Any] = [schedules]
