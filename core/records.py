"""What readers of the log see and ask for: the stored-event record, a log position, a job filter."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from .events import AnyEvent

__all__ = ["JobFilter", "LogPosition", "RecordedEvent"]


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: its place in the log and the domain event."""

    position: int
    job_id: UUID
    version: int
    type: str
    event: AnyEvent
    meta: dict[str, Any]
    recorded_at: datetime


class LogPosition(msgspec.Struct, frozen=True, order=True):
    """A place in the log as projections read it: (transaction id, position)."""

    tx: int = 0
    position: int = 0


class JobFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which jobs to list; every field is optional."""

    blueprint: str | None = None
    status: str | None = None
    state: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    client: str | None = None
    """Only the jobs this client owns (None: every client's)."""
