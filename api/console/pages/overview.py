"""The overview: the signed-in client's jobs by status, the queue, the workers, the projections,
and its jobs created and ended over the last hour and day, with why jobs failed.

Two parts refresh themselves by HTMX, each fetching only itself: the cards every 5 seconds (cheap
counts), the activity every 30 seconds (a day's index ranges: bars of a minute need no fresher).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template

from ...ports import Orchestrator
from ..charts import buckets_chart
from ..session import owner_in, page, session_of

__all__ = ["ROUTES"]

_PARTS = {"overview-cards": "overview_cards.html", "overview-activity": "overview_activity.html"}


@get("/", include_in_schema=False)
async def overview(request: Request[Any, Any, Any], state: State) -> Template:
    """The whole page, or the one part an HTMX refresh asks for (by its ``HX-Target``)."""
    engine: Orchestrator = state["engine"]
    owner = owner_in(session_of(request))
    part = request.headers.get("HX-Target")
    context: dict[str, Any] = {}
    if part != "overview-activity":
        projections = await engine.projection_status()
        context.update(
            dashboard=await engine.dashboard(owner=owner),
            queue=await engine.console_stats.queue(owner=owner),
            projections=projections,
            lag_events=max((status.lag_events for status in projections), default=0),
            lag_seconds=max((status.lag_seconds for status in projections), default=0.0),
            held_by=next((status.held_by for status in projections if status.held_by), None),
        )
    if part != "overview-cards":
        activity = await engine.console_stats.activity(owner=owner)
        context.update(
            activity=activity,
            per_minute=buckets_chart(
                "Jobs created and ended per minute, last hour",
                activity.per_minute,
                label_format="%H:%M",
                tick_every=10,
            ),
            per_hour=buckets_chart(
                "Jobs created and ended per hour, last day",
                activity.per_hour,
                label_format="%H:00",
                tick_every=3,
            ),
        )
    return page(request, _PARTS.get(part or "", "overview.html"), **context)


ROUTES: list[Any] = [overview]
