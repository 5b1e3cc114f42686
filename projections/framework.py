"""Asynchronous projections: projectors that fold the log into read-model tables.

A projector turns events into rows. The framework feeds it every event of the log
exactly once, in (transaction, position) order, with the job's state just before
and after the event, inside the transaction that moves its checkpoint: a batch is
applied whole or not at all, so a crash never applies an event twice or skips one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

import msgspec

from chronik.adapters.postgres import projection_tables
from chronik.adapters.postgres.database import Connection
from chronik.adapters.postgres.event_store import read_log, read_stream
from chronik.core.evolve import evolve, fold
from chronik.core.records import LogPosition, RecordedEvent
from chronik.core.state import JobState

__all__ = ["STATE_CACHE_LIMIT", "Change", "Projector", "StateCache", "apply_batch"]

STATE_CACHE_LIMIT = 10_000
"""Running jobs whose state each projection keeps between batches; past it, the least recently moved go."""


class Change(msgspec.Struct, frozen=True):
    """One event with the job's state just before and just after it."""

    recorded: RecordedEvent
    before: JobState | None
    after: JobState


class Projector:
    """A read model that follows the log. Subclasses name their table and turn changes into rows."""

    name: ClassVar[str]
    """The projection's table, and its name in ``projection_checkpoints`` and on the CLI."""
    version: ClassVar[int]
    """Raise it when the rows change shape or meaning: the table is then rebuilt from the log."""
    columns: ClassVar[tuple[str, ...]]

    def rows(self, change: Change) -> list[tuple[Any, ...]]:
        """The rows one change adds, in ``columns`` order (often none)."""
        raise NotImplementedError

    async def apply(self, conn: Connection, table: str, changes: Sequence[Change]) -> None:
        """Write the rows of ``changes`` into ``table`` (the live table or its shadow)."""
        records = [row for change in changes for row in self.rows(change)]
        await projection_tables.copy_rows(conn, table, self.columns, records)


class StateCache:
    """Job states as of the last event a runner applied, so a batch need not refold each stream.

    A miss (a new runner, or a job whose events come out of stream order because
    one transaction wrote two streams) folds the stream's prefix from the log:
    version N is only ever appended once N-1 has committed, so the prefix is there.

    It holds the jobs still running, at most ``limit`` of them: an ended job is
    forgotten with its last event. And it holds them only while this runner applied
    every page: when the checkpoint moved under another runner (another instance, a
    rebuild), the jobs that ended there would be held for ever, so the cache starts
    empty. Both leaks showed in the soak (docs/reliability.md, scenario 8): an
    instance grew by 1.5-3 KB a job, 20-30 MB per 10 minutes. A miss costs one read
    of the job's stream; an ended job seldom gets another event (a fork, a retry).
    """

    def __init__(self, limit: int = STATE_CACHE_LIMIT) -> None:
        self._states: OrderedDict[UUID, JobState] = OrderedDict()
        self._limit = limit
        self._at: LogPosition | None = None

    def resume(self, after: LogPosition) -> None:
        """Start a page after ``after``: forget everything unless this cache's last page ended there."""
        if after != self._at:
            self._states.clear()
        self._at = None  # until the page is applied: a page that fails leaves the cache to be forgotten

    def reached(self, at: LogPosition) -> None:
        """The page just applied ended at ``at``."""
        self._at = at

    @property
    def job_ids(self) -> frozenset[UUID]:
        """The jobs whose state is held."""
        return frozenset(self._states)

    async def before(self, conn: Connection, recorded: RecordedEvent) -> JobState | None:
        """The job's state just before ``recorded``."""
        if recorded.version == 1:
            return None
        cached = self._states.get(recorded.job_id)
        if cached is not None and cached.version == recorded.version - 1:
            return cached
        prefix = await read_stream(conn, recorded.job_id, limit=recorded.version - 1)
        return fold(item.event for item in prefix)

    def remember(self, state: JobState) -> None:
        """Keep ``state`` as the job's latest; forget the job if it has ended."""
        if state.is_terminal:
            self._states.pop(state.job_id, None)
            return
        self._states[state.job_id] = state
        self._states.move_to_end(state.job_id)
        while len(self._states) > self._limit:
            self._states.popitem(last=False)


async def apply_batch(
    conn: Connection,
    projector: Projector,
    table: str,
    after: LogPosition,
    cache: StateCache,
    *,
    limit: int = 1000,
) -> LogPosition | None:
    """Apply the next page of the log after ``after`` to ``table``; the new position, or None at the end."""
    page = await read_log(conn, after, limit=limit)
    if not page:
        return None
    cache.resume(after)
    changes = []
    for _position, recorded in page:
        before = await cache.before(conn, recorded)
        state = evolve(before, recorded.event)
        cache.remember(state)
        changes.append(Change(recorded, before, state))
    await projector.apply(conn, table, changes)
    cache.reached(page[-1][0])
    return page[-1][0]
