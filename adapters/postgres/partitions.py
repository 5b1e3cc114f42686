"""The log's partitions: create them ahead, plan which may leave, stream one out, let it go."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from chronik.core.chain import ChainLink

from .database import Connection
from .queries import QUERIES

__all__ = [
    "ArchivedJobRow",
    "JobIndexEntry",
    "PartitionRow",
    "PlanRow",
    "archived_job",
    "drop",
    "ensure",
    "forget_jobs",
    "job_chain",
    "jobs_page",
    "jobs_with_events",
    "list_partitions",
    "mark_archived",
    "plan",
    "record_jobs",
    "stream",
    "unindex_jobs",
]


class PartitionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A partition of the log as ``event_partitions`` records it."""

    name: str
    lo: datetime | None  # None: the legacy partition, from the beginning of time
    hi: datetime
    status: str
    archived_at: datetime | None
    archive_uri: str | None
    events: int | None
    jobs: int | None
    sha256: str | None


class PlanRow(msgspec.Struct, frozen=True, kw_only=True):
    """What holds a closed live partition: its jobs, running and kept-forever ones, when it may leave."""

    name: str
    lo: datetime | None
    hi: datetime
    jobs: int
    running: int
    forever: int
    leaves_at: datetime | None
    holder: UUID | None


class JobIndexEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Where one job's events sit in an archive file, and its chain head."""

    job_id: UUID
    offset: int
    length: int
    events: int
    head: bytes


class ArchivedJobRow(msgspec.Struct, frozen=True, kw_only=True):
    """An archived job as the database still knows it: where its events are, and its owner."""

    job_id: UUID
    partition: str
    key: str
    offset: int
    length: int
    events: int
    chain_head: bytes
    blueprint: str
    status: str
    client: str | None


def _lo(value: datetime) -> datetime | None:
    # asyncpg reads -infinity as datetime.min; the legacy partition starts at the beginning.
    return None if value.year == 1 else value


async def ensure(conn: Connection, *, since: datetime, until: datetime, days: int) -> list[str]:
    """Create the missing partitions from the one holding ``since`` to ``until``; their names."""
    return [row["name"] for row in await conn.fetch(QUERIES["ensure_partitions"], since, until, days)]


async def list_partitions(conn: Connection) -> list[PartitionRow]:
    """Every partition, live or archived, oldest first."""
    rows = await conn.fetch(QUERIES["list_partitions"])
    return [
        PartitionRow(
            name=row["name"],
            lo=_lo(row["lo"]),
            hi=row["hi"],
            status=row["status"],
            archived_at=row["archived_at"],
            archive_uri=row["archive_uri"],
            events=row["events"],
            jobs=row["jobs"],
            sha256=row["sha256"],
        )
        for row in rows
    ]


async def plan(
    conn: Connection,
    *,
    default_seconds: float | None,
    failed_seconds: float | None,
    blueprint_seconds: dict[str, float | None],
) -> list[PlanRow]:
    """Per closed live partition, what holds it (see the ``partition_plan`` query)."""
    names = list(blueprint_seconds)
    rows = await conn.fetch(
        QUERIES["partition_plan"],
        default_seconds,
        failed_seconds,
        names,
        [blueprint_seconds[name] for name in names],
    )
    return [
        PlanRow(
            name=row["name"],
            lo=_lo(row["lo"]),
            hi=row["hi"],
            jobs=row["jobs"],
            running=row["running"],
            forever=row["forever"],
            leaves_at=row["leaves_at"],
            holder=None if row["holder"] is None else UUID(str(row["holder"])),
        )
        for row in rows
    ]


async def stream(
    conn: Connection, *, lo: datetime | None, hi: datetime
) -> AsyncIterator[tuple[int, ChainLink]]:
    """A partition's events with their positions, job after job in version order (in a transaction)."""
    low = lo if lo is not None else datetime.min
    async for row in conn.cursor(QUERIES["partition_events"], low, hi, prefetch=2000):
        yield row["position"], _link(row)


def _link(row: asyncpg.Record) -> ChainLink:
    return ChainLink(
        job_id=UUID(str(row["job_id"])),
        version=row["version"],
        type=row["type"],
        data=row["data"],
        meta=row["meta"],
        recorded_at=row["recorded_at"],
        hash=bytes(row["hash"]),
    )


async def record_jobs(conn: Connection, partition: str, key: str, entries: Sequence[JobIndexEntry]) -> None:
    """Index archived jobs by id (upserting: a partition archived anew replaces its entries)."""
    await conn.execute(
        QUERIES["record_archived_jobs"],
        partition,
        key,
        [entry.job_id for entry in entries],
        [entry.offset for entry in entries],
        [entry.length for entry in entries],
        [entry.events for entry in entries],
        [entry.head for entry in entries],
    )


async def forget_jobs(conn: Connection, job_ids: Sequence[UUID]) -> int:
    """Remove the live rows of archived jobs that did not move since; how many went."""
    count: int = await conn.fetchval(QUERIES["forget_archived_jobs"], list(job_ids))
    return count


async def drop(conn: Connection, name: str, *, expected: int) -> int:
    """Drop the partition if it holds exactly ``expected`` events; how many it held."""
    found: int = await conn.fetchval(QUERIES["drop_partition"], name, expected)
    return found


async def mark_archived(
    conn: Connection, name: str, *, uri: str, events: int, jobs: int, sha256: str
) -> None:
    """Record that a partition left, archived in ``uri``."""
    await conn.execute(QUERIES["mark_partition_archived"], name, uri, events, jobs, sha256)


async def archived_job(conn: Connection, job_id: UUID) -> ArchivedJobRow | None:
    """Where an archived job's events are, or None when it is not archived."""
    row = await conn.fetchrow(QUERIES["archived_job"], job_id)
    if row is None:
        return None
    return ArchivedJobRow(
        job_id=job_id,
        partition=row["partition"],
        key=row["archive_key"],
        offset=row["byte_offset"],
        length=row["byte_length"],
        events=row["events"],
        chain_head=bytes(row["chain_head"]),
        blueprint=row["blueprint"],
        status=row["status"],
        client=row["client"],
    )


async def job_chain(conn: Connection, job_id: UUID) -> tuple[list[ChainLink], bytes | None]:
    """One job's events as the chain encodes them, and the head its ``jobs`` row holds."""
    rows = await conn.fetch(QUERIES["job_chain"], job_id)
    head = rows[0]["chain_head"] if rows else None
    return [_link(row) for row in rows], None if head is None else bytes(head)


async def jobs_page(conn: Connection, *, after: UUID, limit: int) -> list[UUID]:
    """The next job ids after ``after``, in id order."""
    rows = await conn.fetch(QUERIES["chain_jobs_page"], after, limit)
    return [UUID(str(row["job_id"])) for row in rows]


async def jobs_with_events(conn: Connection, job_ids: Sequence[UUID]) -> list[UUID]:
    """Which of these jobs have events in the log now."""
    rows = await conn.fetch(QUERIES["jobs_with_events"], list(job_ids))
    return [UUID(str(row["job_id"])) for row in rows]


async def unindex_jobs(conn: Connection, job_ids: Sequence[UUID]) -> None:
    """Drop restored jobs from the archive index: the log holds their events again."""
    await conn.execute(QUERIES["unindex_archived_jobs"], list(job_ids))
