"""Analytics for admins: time per state, error rate per task type, jobs ended over time.

Read from the ``chronik_analytics`` views (docs/analytics.md). The views have no owner column
(they are the data team's interface, over every client's jobs), and scoping them by client would
mean a join of ``job_history`` and ``task_attempts`` with ``jobs`` per row: so the page is for
admins, and tells anyone else so.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template

from chronik._runtime.console_stats import ANALYTICS_WINDOWS

from ...ports import Orchestrator
from ..charts import buckets_chart
from ..session import page, session_of

__all__ = ["ROUTES"]

_LABELS = {"1h": ("%H:%M", 10), "24h": ("%H:00", 3), "7d": ("%m-%d", 4)}
"""How each window labels its throughput bars: the time format, and every how many bars."""


@get("/analytics", include_in_schema=False)
async def analytics(request: Request[Any, Any, Any], state: State) -> Template:
    """The analytics of the last hour, day or week (``?window=``); a note for anyone but an admin."""
    if not session_of(request).is_admin:
        return page(request, "analytics.html", allowed=False, windows=list(ANALYTICS_WINDOWS))
    window = request.query_params.get("window") or "24h"
    if window not in ANALYTICS_WINDOWS:
        error = f"window must be one of {', '.join(ANALYTICS_WINDOWS)}, got {window!r}"
        return page(request, "analytics.html", allowed=True, windows=list(ANALYTICS_WINDOWS), error=error)
    engine: Orchestrator = state["engine"]
    found = await engine.console_stats.analytics(window)
    chart = None
    if found.throughput is not None:
        label_format, tick_every = _LABELS[window]
        chart = buckets_chart(
            f"Jobs ended per {_bucket_name(window)}",
            found.throughput,
            label_format=label_format,
            tick_every=tick_every,
        )
    return page(
        request, "analytics.html", allowed=True, windows=list(ANALYTICS_WINDOWS), found=found, chart=chart
    )


def _bucket_name(window: str) -> str:
    width = ANALYTICS_WINDOWS[window][1].total_seconds()
    return {60.0: "minute", 3600.0: "hour"}.get(width, f"{width / 3600:g} hours")


ROUTES: list[Any] = [analytics]
