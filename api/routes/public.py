"""Public routes under ``/_public``, open to anyone: health."""

from __future__ import annotations

from litestar import get

from ..schemas import Status

__all__ = ["status"]


@get("/_public/status", summary="Health", tags=["public"])
async def status() -> Status:
    """Answers while the process serves requests."""
    return Status()
