"""``chronik events export`` and ``import``: the log as JSON lines, and back.

An export is the whole truth: every projection, queue and timer is derived from
it. An import loads one into an empty database in a single transaction (all of
it or nothing), then derives the ``jobs`` rows, the step and task queues and the
asynchronous projections from it, exactly as the live engine would have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO
from uuid import UUID

import msgspec

from chronik.adapters.postgres import archive
from chronik.adapters.postgres.archive import ExportedEvent
from chronik.adapters.postgres.database import savepoint
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


_decode_line = msgspec.json.Decoder(ExportedEvent)


async def export_events(store: JobStore, out: IO[str], *, since: int = 0) -> int:
    """Write every event after position ``since`` to ``out``, one JSON object a line; how many."""
    count = 0
    async with store.database.transaction(readonly=True) as conn:
        async for event in archive.stream_events(conn, since=since):
            line = {
                "position": event.position,
                "job_id": str(event.job_id),
                "version": event.version,
                "type": event.type,
                "data": event.data,
                "meta": event.meta,
                "recorded_at": event.recorded_at.isoformat(),
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
    async with store.database.connection() as conn:
        async with savepoint(conn):
            existing = await archive.count_events(conn)
            if existing:
                raise InvalidInput(
                    f"{name}: an import needs an empty database; this one has {existing} events"
                )
            batch: list[ExportedEvent] = []
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
                    await archive.insert_events(conn, batch)
                    batch = []
            await archive.insert_events(conn, batch)
            await archive.continue_positions(conn)
            for state in states.values():
                await store.project(conn, state)
        # The asynchronous projections read only committed transactions: after the commit.
        for projector in PROJECTORS:
            await rebuild(conn, projector)
    return Imported(events=count, jobs=len(states))


def _parse(text: str, number: int, name: str) -> ExportedEvent:
    try:
        return _decode_line.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidInput(f"{name}, line {number}: {exc}") from None
