"""The hash chain that makes each job's history tamper-evident.

Every event's hash is SHA-256 over its job's previous hash (nothing for the first event) and a
canonical encoding of the event: the job id, version, type, the data and meta as PostgreSQL
stores them (jsonb's text form), and the recording instant in microseconds since the epoch.
The database computes it on append (``chronik_event_hash_v1``); this module computes the same
to verify a chain, in the database or in an archive file. A database owner who edits an event
with the append-only trigger disabled cannot make its hash, and every later one, match without
rewriting the rest of the job's chain and the head on its ``jobs`` row and in archive manifests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

__all__ = ["ChainBreak", "ChainLink", "event_hash", "first_break"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ChainLink(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the chain encodes it: ``data`` and ``meta`` in jsonb's text form."""

    job_id: UUID
    version: int
    type: str
    data: str
    meta: str
    recorded_at: datetime
    hash: bytes


class ChainBreak(msgspec.Struct, frozen=True, kw_only=True):
    """The first place a job's chain does not hold, and why."""

    job_id: UUID
    version: int
    reason: str


def event_hash(
    prev: bytes | None,
    *,
    job_id: UUID,
    version: int,
    type: str,
    data: str,
    meta: str,
    recorded_at: datetime,
) -> bytes:
    """The hash of one event chained to ``prev`` (None for a job's first event)."""
    micros = (recorded_at - _EPOCH) // _MICROSECOND
    text = f"{job_id}\n{version}\n{type}\n{data}\n{meta}\n{micros}"
    return hashlib.sha256((prev or b"") + text.encode()).digest()


def first_break(links: Iterable[ChainLink], *, head: bytes | None = None) -> ChainBreak | None:
    """Walk one job's events in version order; the first that does not match, or None.

    ``head``, when given, is where the chain must end (the ``jobs`` row's or a manifest's): a
    chain cut short or extended past it is a break too.
    """
    prev: bytes | None = None
    expected = 1
    last: ChainLink | None = None
    for link in links:
        if link.version != expected:
            return ChainBreak(job_id=link.job_id, version=expected, reason=f"version {expected} is missing")
        computed = event_hash(
            prev,
            job_id=link.job_id,
            version=link.version,
            type=link.type,
            data=link.data,
            meta=link.meta,
            recorded_at=link.recorded_at,
        )
        if computed != link.hash:
            return ChainBreak(
                job_id=link.job_id,
                version=link.version,
                reason="the event does not match its hash (its content, or an earlier hash, was changed)",
            )
        prev = link.hash
        expected += 1
        last = link
    if head is not None and last is not None and last.hash != head:
        return ChainBreak(
            job_id=last.job_id,
            version=last.version,
            reason="the chain does not end at the recorded head (events were removed or added after it)",
        )
    return None
