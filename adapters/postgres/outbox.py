"""``webhook_deliveries``: the webhook outbox, written by ``commit`` and worked off by senders."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = ["DueNotice", "claim_due", "of_job", "prune_ended", "record_attempt"]

_PRUNE_BATCH = 5000
"""Rows one prune statement deletes at most: a short transaction, however large the backlog."""


class DueNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A notification leased to this sender."""

    event_id: str
    url: str
    payload: bytes
    attempts: int


async def claim_due(conn: Connection, *, limit: int, lease_seconds: float) -> list[DueNotice]:
    """Lease up to ``limit`` due notifications for ``lease_seconds`` (SKIP LOCKED: senders share)."""
    rows = await conn.fetch(QUERIES["claim_webhooks"], limit, lease_seconds)
    return [
        DueNotice(event_id=row["event_id"], url=row["url"], payload=row["payload"].encode(),
                  attempts=row["attempts"])
        for row in rows
    ]  # fmt: skip


async def record_attempt(
    conn: Connection, event_id: str, attempt: dict[str, Any], *, status: str, next_at: datetime | None
) -> None:
    """One attempt's outcome: ``delivered``, ``pending`` again at ``next_at``, or ``failed`` for good."""
    await conn.execute(QUERIES["record_webhook_attempt"], event_id, json.dumps(attempt), status, next_at)


async def of_job(conn: Connection, job_id: UUID) -> list[dict[str, Any]]:
    """A job's notifications with every attempt, oldest first."""
    rows = await conn.fetch(QUERIES["webhooks_of_job"], job_id)
    return [{**dict(row), "attempt_log": json.loads(row["attempt_log"])} for row in rows]


async def prune_ended(conn: Connection, *, limit: int = _PRUNE_BATCH) -> bool:
    """Forget up to ``limit`` notifications delivered or failed 7 days ago or more; pending ones stay.

    Returns whether a whole batch went: then more may be due.
    """
    status = await conn.execute(QUERIES["prune_webhook_deliveries"], limit)
    return int(status.rpartition(" ")[2]) >= limit
