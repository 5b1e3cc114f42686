"""Client routes about the orchestrator itself: its live workers, a dashboard, a blueprint's graph."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath

from chronik.core.graph import to_dot

from ..catalog_schemas import DashboardView, WorkerView
from ..guards import owner_of
from ..ports import Orchestrator

__all__ = ["DOT_MEDIA_TYPE", "blueprint_graph", "dashboard", "list_workers"]

DOT_MEDIA_TYPE = "text/vnd.graphviz"
"""The media type of a Graphviz DOT document (Avtomatika's answer to ``/graph``)."""


def _engine(state: State) -> Orchestrator:
    engine: Orchestrator = state.engine
    return engine


@get("/workers", summary="List the live workers")
async def list_workers(state: State) -> list[WorkerView]:
    """Every worker that beat within the task lease, by id (Avtomatika's route: a plain array).

    Workers are shared: every client sees all of them.
    """
    return [WorkerView.of(worker) for worker in await _engine(state).live_workers()]


@get("/dashboard", summary="Live workers and the caller's jobs by status")
async def dashboard(state: State, request: Request[Any, Any, Any]) -> DashboardView:
    """``{"workers": {"total"}, "jobs": {"queued", <status>: n}}``: the caller's jobs (an admin: all)."""
    return DashboardView.of(await _engine(state).dashboard(owner=owner_of(request)))


@get(
    "/blueprints/{name:str}/graph",
    summary="A blueprint's state machine in Graphviz DOT",
    media_type=DOT_MEDIA_TYPE,
)
async def blueprint_graph(name: FromPath[str], state: State) -> Response[str]:
    """The blueprint's states and transitions as a DOT digraph; 404 for an unknown blueprint."""
    return Response(to_dot(_engine(state).blueprints.named(name)), media_type=DOT_MEDIA_TYPE)
