"""What readers of the log see and ask for: the stored-event record, a log position, a job filter."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from .errors import InvalidInput
from .events import AnyEvent

__all__ = ["JobFilter", "LogPosition", "RecordedEvent", "id_range"]


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
    id_prefix: str | None = None
    """Only the jobs whose id starts with these hex digits (dashes ignored); see ``id_range``."""
    data: dict[str, Any] | None = None
    """Only the jobs whose ``initial_data`` contains this object (JSON containment, ``@>``)."""
    metadata: dict[str, Any] | None = None
    """Only the jobs whose ``metadata`` contains this object (JSON containment, ``@>``)."""
    statuses: tuple[str, ...] | None = None
    """Only the jobs in one of these statuses (with ``status`` too: in both)."""


_HEX = frozenset("0123456789abcdef")


def id_range(prefix: str) -> tuple[UUID, UUID]:
    """The lowest and highest job id that start with the hex digits ``prefix`` (dashes ignored).

    A range, so that the primary key's index finds them; ``InvalidInput`` for anything else
    than 1 to 32 hex digits.
    """
    digits = prefix.replace("-", "").lower()
    if not 1 <= len(digits) <= 32 or not set(digits) <= _HEX:
        raise InvalidInput(f"id_prefix must be 1 to 32 hex digits of a job id, got {prefix!r}")
    return UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))
