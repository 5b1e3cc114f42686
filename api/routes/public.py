"""Public routes under ``/_public``, open to anyone: health, readiness, metrics, and the approval
link (whose token is its credential)."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from litestar import Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK

from chronik.core.errors import JobNotFound

from ..ports import Orchestrator
from ..schemas import ApprovalAccepted, ErrorBody, ErrorDetail, PublicApprovalRequest, Status

__all__ = ["metrics", "public_approval", "ready", "status"]

_TOKEN = re.compile(r"[0-9a-f]{32}")
"""What an approval token looks like (``uuid4().hex``); anything else is refused before a query."""

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


@post(
    "/_public/webhooks/approval/{job_id:str}",
    status_code=HTTP_200_OK,
    summary="Decide on a job with its public approval link",
    tags=["public"],
)
async def public_approval(
    job_id: FromPath[str],
    data: JSONBody[PublicApprovalRequest],
    state: State,
    token: FromQuery[str | None] = None,
    header_token: Annotated[str | None, HeaderParameter(name="X-Approval-Token")] = None,
) -> ApprovalAccepted:
    """Avtomatika's approval webhook, for an e-mail or chat button: no client token, the link's is enough.

    The token (``?token=``, the ``X-Approval-Token`` header or the body's ``token``) is the one in
    the job's ``approval.public_url``; each approval request has its own. A wrong or missing token,
    or an unknown job, answer 404 ``JOB_NOT_FOUND`` alike.
    """
    engine: Orchestrator = state["engine"]
    sent = token or header_token or data.token
    try:
        parsed = UUID(job_id)
    except ValueError:
        parsed = None
    if not sent or parsed is None or not _TOKEN.fullmatch(sent):
        raise JobNotFound(f"no job has the id {job_id}")
    job = await engine.approve_job(
        parsed, data.decision, comment=data.comment, actor="approval-link", token=sent
    )
    return ApprovalAccepted(job_id=job.job_id)
