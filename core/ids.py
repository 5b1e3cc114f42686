"""Job ids: UUIDv7, so that an id carries the instant its job was created.

The log is partitioned by that instant (``job_time``), and the database derives it from the id
with ``chronik_job_time_v1``; ``job_time`` here is the same rule in Python. Ids of jobs made
before chronik used UUIDv7 are uuid4 and have no time: they belong to the legacy partition.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

__all__ = ["job_time", "new_job_id"]

_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def new_job_id(at: datetime | None = None, *, seed: UUID | None = None) -> UUID:
    """A UUIDv7 for a job created at ``at`` (now when None), with 74 random bits.

    ``seed`` supplies the random bits (a replay passes the id it recorded: an id that is
    already a UUIDv7 comes back unchanged, so a replayed child keeps its id).
    """
    if seed is not None and seed.version == 7:
        return seed
    bits = (seed or uuid4()).int
    # Whole milliseconds by integer arithmetic: ``int(at.timestamp() * 1000)`` truncates a float
    # product, and about one instant in 140 came back from ``job_time`` a millisecond early.
    millis = time.time_ns() // 1_000_000 if at is None else (at.astimezone(UTC) - _EPOCH) // _MILLISECOND
    value = (
        (millis & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | ((bits >> 64) & _RAND_A) << 64
        | 0b10 << 62
        | (bits & _RAND_B)
    )
    return UUID(int=value)


def job_time(job_id: UUID) -> datetime | None:
    """When the job of this id was created, to the millisecond; None for a pre-UUIDv7 id."""
    if job_id.version != 7:
        return None
    return datetime.fromtimestamp((job_id.int >> 80) / 1000, tz=UTC)
