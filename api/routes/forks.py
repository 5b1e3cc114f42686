"""``POST /api/v1/jobs/{job_id}/fork``: start a new job from a job's state as of one of its versions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from chronik.core.errors import InvalidInput

from ..action_schemas import ForkAccepted, ForkRequest
from ..guards import client_entry_of, client_of, owner_of
from ..ports import Orchestrator
from ..schemas import ForkOrigin

__all__ = ["fork_job"]


def _job_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(f"job id {raw!r} is not a UUID") from None


@post("/jobs/{job_id:str}/fork", status_code=HTTP_202_ACCEPTED, summary="Fork a job from one of its versions")
async def fork_job(
    job_id: FromPath[str], data: JSONBody[ForkRequest], state: State, request: Request[Any, Any, Any]
) -> ForkAccepted:
    """Start a new job in the state the job was in at ``from_version``, with its data then.

    The new job belongs to the job's client; the job's history records the fork (``JobForked``).
    400 for a version out of range, 404 for a job the caller does not own.
    """
    engine: Orchestrator = state.engine
    entry = client_entry_of(request)
    source = _job_id(job_id)
    new = await engine.fork_job(
        source,
        data.from_version,
        actor=client_of(request),
        owner=owner_of(request),
        webhook_url=data.webhook_url,
        monthly_quota=entry.monthly_attempts if entry is not None else None,
    )
    return ForkAccepted(job_id=new.job_id, forked_from=ForkOrigin(job_id=source, version=data.from_version))
