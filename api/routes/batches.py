"""``POST /api/v1/jobs/batch/cancel`` and ``.../retry``: act on every job a filter finds.

``dry_run`` (the default) counts the jobs the action applies to and shows the first
ids; a real run acts on up to the cap of them, each as its own command, and reports
the ones that ended or moved on meanwhile as skipped.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from chronik._runtime.batches import BATCH_CAP, BatchAction
from chronik.core.errors import InvalidInput

from ..action_schemas import BatchOutcomeView, BatchPreviewView, BatchRequest
from ..guards import client_of, owner_of
from ..ports import Orchestrator

__all__ = ["batch_cancel", "batch_retry"]


@post("/jobs/batch/cancel", status_code=HTTP_200_OK, summary="Cancel every job a filter finds")
async def batch_cancel(
    data: JSONBody[BatchRequest], state: State, request: Request[Any, Any, Any]
) -> BatchPreviewView | BatchOutcomeView:
    """Cancel the caller's jobs that the filter finds and that have not ended (dry run by default)."""
    return await _batch("cancel", data, state, request)


@post("/jobs/batch/retry", status_code=HTTP_200_OK, summary="Retry every quarantined job a filter finds")
async def batch_retry(
    data: JSONBody[BatchRequest], state: State, request: Request[Any, Any, Any]
) -> BatchPreviewView | BatchOutcomeView:
    """Re-run the caller's quarantined jobs that the filter finds (dry run by default)."""
    if data.reason is not None:
        raise InvalidInput("a retry takes no reason; reason is for batch/cancel")
    return await _batch("retry", data, state, request)


async def _batch(
    action: BatchAction, data: BatchRequest, state: State, request: Request[Any, Any, Any]
) -> BatchPreviewView | BatchOutcomeView:
    engine: Orchestrator = state.engine
    where, owner = data.filter.to_filter(), owner_of(request)
    if data.dry_run:
        return BatchPreviewView.of(await engine.preview_batch(action, where, owner=owner), cap=BATCH_CAP)
    done = await engine.run_batch(
        action, where, actor=client_of(request), owner=owner, reason=data.reason or ""
    )
    return BatchOutcomeView.of(done, cap=BATCH_CAP)
