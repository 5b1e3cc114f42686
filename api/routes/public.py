"""Public routes under ``/_public``, open to anyone: health, readiness and metrics."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from ..ports import Orchestrator
from ..schemas import ErrorBody, ErrorDetail, Status

__all__ = ["metrics", "ready", "status"]

_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@get("/_public/status", summary="Health", tags=["public"])
async def status() -> Status:
    """Answers while the process serves requests (liveness)."""
    return Status()


@get("/_public/ready", summary="Readiness", tags=["public"])
async def ready(state: State) -> Response[Status | ErrorBody]:
    """200 when the database answers and every migration is applied; 503 ``NOT_READY`` otherwise."""
    engine: Orchestrator = state["engine"]
    problem = await engine.readiness()
    if problem is not None:
        return Response(ErrorBody(error=ErrorDetail(code="NOT_READY", message=problem)), status_code=503)
    return Response(Status(status="ready"))


@get("/_public/metrics", summary="Prometheus metrics", tags=["public"], media_type=_METRICS_TYPE)
async def metrics(state: State) -> Response[bytes]:
    """This instance's counters and histograms, and the cluster's queues and projection lag."""
    engine: Orchestrator = state["engine"]
    return Response(await engine.metrics_text(), media_type=_METRICS_TYPE)
