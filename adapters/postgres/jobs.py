"""The ``jobs`` projection: each job's current state, written with every append (see ``commit``).

The row is ``JobRow.of(state)``, one function for the live write and for a check
against a fresh fold of the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from chronik.core.effects import JobRow
from chronik.core.evolve import fold
from chronik.core.records import JobFilter, id_range
from chronik.core.state import JobState

from .database import Connection
from .errors import refusing_bad_values
from .event_store import read_stream
from .queries import QUERIES

__all__ = [
    "columns_of",
    "count_jobs",
    "list_keys",
    "list_states",
    "listing_arguments",
    "load_state",
    "load_with_progress",
    "refold_differences",
]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JobState)


def columns_of(row: JobRow) -> tuple[Any, ...]:
    """The row's values in the column order of the ``jobs`` table (``job_id`` first)."""
    return (
        row.job_id,
        row.blueprint,
        row.status,
        row.current_state,
        row.version,
        row.created_at,
        row.updated_at,
        row.finished_at,
        _encoder.encode(row.state).decode(),
    )


async def load_state(conn: Connection, job_id: UUID) -> JobState | None:
    """The job's current state from the projection; ``None`` for an unknown job."""
    raw = await conn.fetchval(QUERIES["get_job_state"], job_id)
    return None if raw is None else _decoder.decode(raw)


async def load_with_progress(conn: Connection, job_id: UUID) -> tuple[JobState, dict[str, Any] | None] | None:
    """The job's state and the last progress its worker reported, in one query."""
    row = await conn.fetchrow(QUERIES["get_job_with_progress"], job_id)
    if row is None:
        return None
    progress = None
    if row["progress_at"] is not None:
        progress = {
            "progress": row["progress"],
            "message": row["progress_message"],
            "at": row["progress_at"],
            "worker_id": row["worker_id"],
        }
    return _decoder.decode(row["state"]), progress


async def list_states(
    conn: Connection, where: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
    """A page of jobs, newest first, and the keyset of the last one (``None`` on the last page)."""
    async with refusing_bad_values():
        rows = await conn.fetch(QUERIES["list_jobs"], *listing_arguments(where, limit=limit + 1, after=after))
    page = rows[:limit]
    more = len(rows) > limit
    last = (page[-1]["created_at"], UUID(str(page[-1]["job_id"]))) if more and page else None
    return [_decoder.decode(row["state"]) for row in page], last


async def list_keys(
    conn: Connection, where: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
) -> list[tuple[datetime, UUID]]:
    """The keys (``created_at``, ``job_id``) of up to ``limit`` jobs ``where`` finds, newest first."""
    async with refusing_bad_values():
        rows = await conn.fetch(QUERIES["list_job_keys"], *listing_arguments(where, limit=limit, after=after))
    return [(row["created_at"], UUID(str(row["job_id"]))) for row in rows]


async def count_jobs(conn: Connection, where: JobFilter) -> int:
    """How many jobs ``where`` finds."""
    low, high = id_range(where.id_prefix) if where.id_prefix is not None else (None, None)
    async with refusing_bad_values():
        found = await conn.fetchval(
            QUERIES["count_jobs"],
            where.blueprint,
            where.status,
            where.state,
            where.created_after,
            where.created_before,
            where.client,
            low,
            high,
            _jsonb(where.data),
            _jsonb(where.metadata),
            None if where.statuses is None else list(where.statuses),
        )
    return int(found)


def listing_arguments(
    where: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
) -> tuple[Any, ...]:
    """The parameters of ``list_jobs`` and ``list_job_keys``, in order (for ``EXPLAIN`` too)."""
    low, high = id_range(where.id_prefix) if where.id_prefix is not None else (None, None)
    return (
        where.blueprint,
        where.status,
        where.state,
        where.created_after,
        where.created_before,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        where.client,
        low,
        high,
        _jsonb(where.data),
        _jsonb(where.metadata),
        None if where.statuses is None else list(where.statuses),
    )


def _jsonb(value: dict[str, Any] | None) -> str | None:
    return None if value is None else _encoder.encode(value).decode()


async def refold_differences(conn: Connection, job_id: UUID) -> dict[str, tuple[Any, Any]]:
    """Fold the job's stream afresh and compare with its stored row, column by column.

    Returns ``{column: (stored, refolded)}`` for every column that differs; empty
    when the projection is exactly what the log says. Both sides pass through
    PostgreSQL's own text form, so the comparison is byte for byte.
    """
    stored = await conn.fetchrow(QUERIES["get_job_row"], job_id)
    state = fold(recorded.event for recorded in await read_stream(conn, job_id))
    if state is None or stored is None:
        return {} if state is None and stored is None else {"row": (stored, state)}
    refolded = await conn.fetchrow(QUERIES["normalize_job_row"], *columns_of(JobRow.of(state)))
    before, after = dict(stored), dict(refolded)
    return {key: (value, after[key]) for key, value in before.items() if value != after[key]}
