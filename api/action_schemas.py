"""Bodies of the routes that act on jobs in bulk or anew: fork, batch cancel and retry."""

from __future__ import annotations

from uuid import UUID

import msgspec

from chronik._runtime.batches import BatchOutcome, BatchPreview

from .filters import BatchFilter
from .schemas import ForkOrigin

__all__ = [
    "BatchOutcomeView",
    "BatchPreviewView",
    "BatchRequest",
    "BatchSkipView",
    "ForkAccepted",
    "ForkRequest",
]


class ForkRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /api/v1/jobs/{job_id}/fork``."""

    from_version: int
    """The version of the job to start from: 1 to the job's ``version``."""
    webhook_url: str | None = None
    """The new job's webhook; the source's is not taken over."""


class ForkAccepted(msgspec.Struct, kw_only=True):
    """A job was forked: the new job was created and its first step queued."""

    status: str = "accepted"
    job_id: UUID
    """The new job."""
    forked_from: ForkOrigin


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /api/v1/jobs/batch/cancel`` and ``.../retry``."""

    filter: BatchFilter = msgspec.field(default_factory=BatchFilter)
    """Which jobs: the list's filters (every one optional; none: all the caller's jobs)."""
    dry_run: bool = True
    """Only count (the default); ``false`` acts."""
    reason: str | None = None
    """The cancellation's reason (cancel only)."""


class BatchPreviewView(msgspec.Struct, kw_only=True):
    """A batch's dry run: how many jobs a real run would act on now, and the first ten ids."""

    dry_run: bool = True
    count: int
    first_ids: list[UUID]
    cap: int
    """The most jobs one real run acts on."""

    @classmethod
    def of(cls, preview: BatchPreview, *, cap: int) -> BatchPreviewView:
        """The view of a preview."""
        return cls(count=preview.count, first_ids=preview.first_ids, cap=cap)


class BatchSkipView(msgspec.Struct, kw_only=True):
    """A job a batch found but did not act on: it ended or moved on meanwhile, say."""

    job_id: UUID
    code: str
    reason: str


class BatchOutcomeView(msgspec.Struct, kw_only=True):
    """What a batch's real run did."""

    dry_run: bool = False
    count: int
    """Jobs it found and tried (``done`` plus ``skipped``), at most ``cap``."""
    done: int
    skipped: list[BatchSkipView]
    more: bool
    """Jobs it would act on remain past the cap: run it again."""
    cap: int

    @classmethod
    def of(cls, outcome: BatchOutcome, *, cap: int) -> BatchOutcomeView:
        """The view of an outcome."""
        return cls(
            count=outcome.count,
            done=outcome.done,
            skipped=[BatchSkipView(job_id=s.job_id, code=s.code, reason=s.reason) for s in outcome.skipped],
            more=outcome.more,
            cap=cap,
        )
