"""``chronik events export`` and ``import``: the log as JSON lines, and back.

An export is the whole truth: every projection, queue and timer is derived from
it. An import loads one into an empty database in a single transaction (all of
it or nothing), then derives the ``jobs`` rows, the step and task queues and the
asynchronous projections from it, exactly as the live engine would have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any
from uuid import UUID

import msgspec

from chronik.adapters.postgres.queries import QUERIES
from chronik.core.errors import InvalidInput
from chronik.core.events import decode_event
from chronik.core.evolve import EventOutOfOrder, evolve
from chronik.core.state import JobState
from chronik.projections.rebuild import rebuild
from chronik.projections.setup import PROJECTORS

from .store import JobStore

__all__ = ["Imported", "export_events", "import_events"]

_BATCH = 5000


class Imported(msgspec.Struct, frozen=True):
    """What an import loaded."""

    events: int
    jobs: int


class _Line(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    position: int
    job_id: UUID
    version: int
    type: str
    data: dict[str, Any]
    meta: dict[str, Any]
    recorded_at: datetime


_decode_line = msgspec.json.Decoder(_Line)


async def export_events(store: JobStore, out: IO[str], *, since: int = 0) -> int:
    """Write every event after position ``since`` to ``out``, one JSON object a line; how many."""
    count = 0
    async with store.pool.acquire() as conn, conn.transaction(readonly=True):
        async for row in conn.cursor(QUERIES["export_events"], since, prefetch=1000):
            line = {
                "position": row["position"],
                "job_id": str(row["job_id"]),
                "version": row["version"],
                "type": row["type"],
                "data": json.loads(row["data"]),
                "meta": json.loads(row["meta"]),
                "recorded_at": row["recorded_at"].isoformat(),
            }
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
    return count


async def import_events(store: JobStore, lines: Iterable[str], *, name: str = "the import") -> Imported:
    """Load an export into an empty database and derive every projection from it.

    Each line is checked before anything is written: a known event type, valid
    fields, and each job's versions in order from its JobCreated. ``InvalidInput``
    names the line that is wrong.
    """
    states: dict[UUID, JobState] = {}
    count = 0
    async with store.pool.acquire() as conn:
        async with conn.transaction():
            existing = await conn.fetchval(QUERIES["count_events"])
            if existing:
                raise InvalidInput(
                    f"{name}: an import needs an empty database; this one has {existing} events"
                )
            batch: list[_Line] = []
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                line = _parse(text, number, name)
                try:
                    event = decode_event(line.type, msgspec.json.encode(line.data))
                except msgspec.ValidationError as exc:
                    raise InvalidInput(f"{name}, line {number}: {line.type} event: {exc}") from None
                if event is None:
                    raise InvalidInput(f"{name}, line {number}: unknown event type {line.type!r}")
                before = states.get(line.job_id)
                expected = (before.version if before is not None else 0) + 1
                if line.version != expected:
                    raise InvalidInput(
                        f"{name}, line {number}: job {line.job_id} version {line.version} where {expected} "
                        "was due (lines must be in position order, as exported)"
                    )
                try:
                    states[line.job_id] = evolve(before, event)
                except EventOutOfOrder as exc:
                    raise InvalidInput(f"{name}, line {number}: {exc}") from None
                batch.append(line)
                count += 1
                if len(batch) >= _BATCH:
                    await _insert(conn, batch)
                    batch = []
            await _insert(conn, batch)
            await conn.execute(QUERIES["continue_positions"])
            for state in states.values():
                await store.project(conn, state)
        # The asynchronous projections read only committed transactions: after the commit.
        for projector in PROJECTORS:
            await rebuild(conn, projector)
    return Imported(events=count, jobs=len(states))


def _parse(text: str, number: int, name: str) -> _Line:
    try:
        return _decode_line.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidInput(f"{name}, line {number}: {exc}") from None


async def _insert(conn: Any, batch: list[_Line]) -> None:
    if not batch:
        return
    await conn.execute(
        QUERIES["import_events"],
        [line.position for line in batch],
        [line.job_id for line in batch],
        [line.version for line in batch],
        [line.type for line in batch],
        [msgspec.json.encode(line.data).decode() for line in batch],
        [msgspec.json.encode(line.meta).decode() for line in batch],
        [line.recorded_at for line in batch],
    )
