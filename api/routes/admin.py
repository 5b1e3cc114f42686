"""Admin routes under ``/api/v1/admin``."""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK

__all__ = ["reload_workers"]


@post("/admin/reload-workers", status_code=HTTP_200_OK, summary="Reload workers.toml", tags=["admin"])
async def reload_workers(state: State) -> dict[str, Any]:
    """Read WORKERS_CONFIG_PATH again.

    A bad file is a 422 naming the entry and field, and the old tokens stay in force.
    """
    count = state.worker_credentials.reload()
    return {"status": "worker_configs_reloaded", "workers": count}
