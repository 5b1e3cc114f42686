"""The projection runner: every instance runs one; each batch is taken by one of them.

A batch is one transaction: take the projection's checkpoint row (skipping it when
another instance holds it), apply the next page of the log, move the checkpoint.
The runner looks every ``interval`` while events come in; idle, it backs off to
``idle_interval``, and a notification (a job changed) brings it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import structlog

from chronik.adapters.postgres import checkpoints
from chronik.adapters.postgres.database import Database
from chronik.adapters.postgres.listener import Signal
from chronik.projections.framework import Projector, StateCache, apply_batch

from .loops import BUSY, log_failure, run_loop

__all__ = ["ProjectionRunner"]

log = structlog.get_logger("chronik.projections")


class ProjectionRunner:
    """Keeps the asynchronous projections up with the log."""

    def __init__(
        self,
        database: Database,
        projectors: tuple[Projector, ...],
        *,
        interval: float,
        idle_interval: float | None = None,
        wake: Sequence[Signal] = (),
        batch: int = 1000,
    ) -> None:
        self._database = database
        self._projectors = projectors
        self._interval = interval
        self._idle_interval = idle_interval
        self._wake = wake
        self._batch = batch
        self._caches = {projector.name: StateCache() for projector in projectors}

    @property
    def held(self) -> dict[str, frozenset[UUID]]:
        """By projection, the jobs whose state it keeps between batches (the running ones)."""
        return {name: cache.job_ids for name, cache in self._caches.items()}

    async def run(self, stop: asyncio.Event) -> None:
        """Apply new events until ``stop``; a page that moved a projection is followed at once by the next."""
        await run_loop(
            "projections",
            self._tick,
            stop,
            interval=self._interval,
            idle_interval=self._idle_interval,
            wake=self._wake,
        )

    async def _tick(self) -> float | None:
        busy = False
        for projector in self._projectors:
            try:
                busy = await self.step(projector) or busy
            except Exception as exc:
                # One projection's failure must not hold the others back.
                log_failure(exc, "projection_failed", projection=projector.name)
        return BUSY if busy else None

    async def step(self, projector: Projector) -> bool:
        """Apply one page of new events to ``projector``; whether there was any."""
        async with self._database.transaction() as conn:
            at = await checkpoints.lock(conn, projector.name)
            if at is None:
                return False  # another instance (or a rebuild) holds it
            moved = await apply_batch(
                conn, projector, projector.name, at, self._caches[projector.name], limit=self._batch
            )
            if moved is None:
                return False
            await checkpoints.save(conn, projector.name, moved)
            return True

    async def catch_up(self) -> None:
        """Apply every event that is safe to read now (for tests, which must not wait for the poll)."""
        for projector in self._projectors:
            while await self.step(projector):
                pass
