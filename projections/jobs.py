"""The ``jobs`` projection: each job's current state, written with every append.

The row is derived from the folded ``JobState`` by one function, ``job_row``;
the same function serves the live write and a check against a fresh fold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik.adapters.postgres.errors import refusing_bad_values
from chronik.adapters.postgres.event_store import read_stream
from chronik.adapters.postgres.queries import QUERIES
from chronik.core.evolve import fold
from chronik.core.state import JobState

__all__ = ["JobFilter", "job_row", "list_states", "load_state", "load_with_progress", "refold_differences"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JobState)


def job_row(state: JobState) -> tuple[Any, ...]:
    """The projection row of a state, in the column order of the ``jobs`` table.

    ``commit_job`` writes it in the statement that appends the events.
    """
    return (
        state.job_id,
        state.blueprint,
        state.status,
        state.current_state,
        state.version,
        state.created_at,
        state.updated_at,
        state.finished_at,
        _encoder.encode(state).decode(),
    )


async def load_state(conn: asyncpg.Connection, job_id: UUID) -> JobState | None:
    """The job's current state from the projection; ``None`` for an unknown job."""
    raw = await conn.fetchval(QUERIES["get_job_state"], job_id)
    return None if raw is None else _decoder.decode(raw)


async def load_with_progress(
    conn: asyncpg.Connection, job_id: UUID
) -> tuple[JobState, dict[str, Any] | None] | None:
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


class JobFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which jobs to list; every field is optional."""

    blueprint: str | None = None
    status: str | None = None
    state: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def list_states(
    conn: asyncpg.Connection, where: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
) -> tuple[list[JobState], tuple[datetime, UUID] | None]:
    """A page of jobs, newest first, and the keyset of the last one (``None`` on the last page)."""
    async with refusing_bad_values():
        rows = await conn.fetch(
            QUERIES["list_jobs"],
            where.blueprint,
            where.status,
            where.state,
            where.created_after,
            where.created_before,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    page = rows[:limit]
    more = len(rows) > limit
    last = (page[-1]["created_at"], UUID(str(page[-1]["job_id"]))) if more and page else None
    return [_decoder.decode(row["state"]) for row in page], last


async def refold_differences(conn: asyncpg.Connection, job_id: UUID) -> dict[str, tuple[Any, Any]]:
    """Fold the job's stream afresh and compare with its stored row, column by column.

    Returns ``{column: (stored, refolded)}`` for every column that differs; empty
    when the projection is exactly what the log says. Both sides pass through
    PostgreSQL's own text form, so the comparison is byte for byte.
    """
    stored = await conn.fetchrow(QUERIES["get_job_row"], job_id)
    state = fold(recorded.event for recorded in await read_stream(conn, job_id))
    if state is None or stored is None:
        return {} if state is None and stored is None else {"row": (stored, state)}
    refolded = await conn.fetchrow(QUERIES["normalize_job_row"], *job_row(state))
    before, after = dict(stored), dict(refolded)
    return {key: (value, after[key]) for key, value in before.items() if value != after[key]}
