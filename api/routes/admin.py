"""Admin routes under ``/api/v1/admin``."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK

from chronik.core.errors import Forbidden

from ..guards import owner_of

__all__ = ["reload_workers"]


@post("/admin/reload-workers", status_code=HTTP_200_OK, summary="Reload workers.toml", tags=["admin"])
async def reload_workers(state: State, request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Read WORKERS_CONFIG_PATH again (admins only: ``role = "admin"``, or ``CLIENT_TOKEN``).

    A bad file is a 422 naming the entry and field, and the old tokens stay in force. It reloads
    the process that answers; with several, reload each (or restart them).
    """
    if owner_of(request) is not None:
        raise Forbidden('reloading workers.toml is for admins (role = "admin" in clients.toml)')
    count = state.worker_credentials.reload()
    return {"status": "worker_configs_reloaded", "workers": count}
