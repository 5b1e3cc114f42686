"""``chronik events export`` and ``import``: the log as JSON lines, and back.

An export is the whole truth: every projection, queue and timer is derived from
it. An import loads one into an empty database in a single transaction (all of
it or nothing), then derives the ``jobs`` rows, the step and task queues and the
asynchronous projections from it, exactly as the live engine would have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import IO
from uuid import UUID

import msgspec

from chronik.adapters.postgres import archive, partitions
from chronik.adapters.postgres.archive import ExportedEvent
from chronik.adapters.postgres.database import Connection, lift_timeouts, savepoint
from chronik.core.chain import event_hash
from chronik.core.errors import InvalidInput
from chronik.core.events import decode_event
from chronik.core.evolve import EventOutOfOrder, evolve
from chronik.core.ids import job_time
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


class _RawParts(msgspec.Struct):
    """A line's JSON documents exactly as written, for the hash chain and the insert."""

    data: msgspec.Raw
    meta: msgspec.Raw


_decode_line = msgspec.json.Decoder(ExportedEvent)
_decode_raw = msgspec.json.Decoder(_RawParts)


async def export_events(store: JobStore, out: IO[str], *, since: int = 0) -> int:
    """Write every event after position ``since`` to ``out``, one JSON object a line; how many."""
    count = 0
    async with store.database.transaction(readonly=True) as conn:
        # The whole log: a page may legitimately take longer than DB_STATEMENT_TIMEOUT_SECONDS.
        await lift_timeouts(conn)
        async for event in archive.stream_events(conn, since=since):
            line = {
                "position": event.position,
                "job_id": str(event.job_id),
                "version": event.version,
                "type": event.type,
                "data": event.data,
                "meta": event.meta,
                "recorded_at": event.recorded_at.isoformat(),
                "hash": event.hash,
            }
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
    return count


async def import_events(
    store: JobStore,
    lines: Iterable[str],
    *,
    name: str = "the import",
    restore: bool = False,
    partition_days: int = 7,
) -> Imported:
    """Load an export into an empty database (or restore an archive file) and derive every projection.

    Each line is checked before anything is written: a known event type, valid
    fields, each job's versions in order from its JobCreated, and, where the line
    carries one, its hash in the job's chain. ``InvalidInput`` names the line that
    is wrong. ``restore`` loads an archive file into a database that has other jobs:
    only jobs the log does not hold, and they leave the archive index.
    """
    states: dict[UUID, JobState] = {}
    heads: dict[UUID, bytes] = {}
    count = 0
    async with store.database.connection() as conn:
        async with savepoint(conn):
            # One transaction over the whole file, counting the whole log first (a restore's may be
            # large): no statement of it is cut by DB_STATEMENT_TIMEOUT_SECONDS. The projections'
            # rebuild after it runs in pages, each well within it.
            await lift_timeouts(conn)
            existing = await archive.count_events(conn)
            if existing and not restore:
                raise InvalidInput(
                    f"{name}: an import needs an empty database; this one has {existing} events"
                )
            batch: list[tuple[int, ExportedEvent, _RawParts]] = []
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
                batch.append((number, line, _decode_raw.decode(text)))
                count += 1
                if len(batch) >= _BATCH:
                    await _load(conn, batch, heads, name=name, restore=restore, days=partition_days)
                    batch = []
            await _load(conn, batch, heads, name=name, restore=restore, days=partition_days)
            await archive.continue_positions(conn)
            for state in states.values():
                await store.project(conn, state)
            if restore:
                await partitions.unindex_jobs(conn, list(states))
        # The asynchronous projections read only committed transactions: after the commit.
        for projector in PROJECTORS:
            await rebuild(conn, projector)
    return Imported(events=count, jobs=len(states))


async def _load(
    conn: Connection,
    batch: list[tuple[int, ExportedEvent, _RawParts]],
    heads: dict[UUID, bytes],
    *,
    name: str,
    restore: bool,
    days: int,
) -> None:
    """Insert a batch: its partitions made, its hashes chained (and checked where the lines carry them)."""
    if not batch:
        return
    lines = [line for _, line, _ in batch]
    if restore:
        first = {line.job_id for line in lines if line.version == 1}
        present = await partitions.jobs_with_events(conn, list(first))
        if present:
            raise InvalidInput(
                f"{name}: job {present[0]} is already in the log; a restore loads only missing jobs"
            )
    times = [t for t in (job_time(line.job_id) for line in lines) if t is not None]
    if times:
        await partitions.ensure(
            conn, since=min(times), until=max(times) + timedelta(milliseconds=1), days=days
        )
    written = [bytes(part).decode() for _, _, raw in batch for part in (raw.data, raw.meta)]
    texts = await archive.canonical_json(conn, written)
    hashes = []
    for index, (number, line, _) in enumerate(batch):
        computed = event_hash(
            heads.get(line.job_id),
            job_id=line.job_id,
            version=line.version,
            type=line.type,
            data=texts[2 * index],
            meta=texts[2 * index + 1],
            recorded_at=line.recorded_at,
        )
        if line.hash is not None and bytes.fromhex(line.hash) != computed:
            raise InvalidInput(
                f"{name}, line {number}: job {line.job_id} version {line.version} does not match its hash "
                "(the event, or an earlier one of its job, was changed after it was written)"
            )
        heads[line.job_id] = computed
        hashes.append(computed)
    await archive.insert_events(conn, lines, data=texts[0::2], meta=texts[1::2], hashes=hashes)


def _parse(text: str, number: int, name: str) -> ExportedEvent:
    try:
        return _decode_line.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidInput(f"{name}, line {number}: {exc}") from None
