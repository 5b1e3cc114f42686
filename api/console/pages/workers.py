"""The workers online: what each takes, how much it holds, when it last beat."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template

from ...ports import Orchestrator
from ..session import page

__all__ = ["ROUTES"]


@get("/workers", include_in_schema=False)
async def workers(request: Request[Any, Any, Any], state: State) -> Template:
    """Every live worker (they serve every client, so every client sees them); refreshes itself."""
    engine: Orchestrator = state["engine"]
    found = await engine.live_workers()
    results_only = request.headers.get("HX-Target") == "worker-list"
    return page(request, "workers_list.html" if results_only else "workers.html", workers=found)


ROUTES: list[Any] = [workers]
