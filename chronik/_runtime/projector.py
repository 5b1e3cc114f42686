"""The projection runner: every instance runs one; each batch is taken by one of them.

A batch is one transaction: take the projection's checkpoint row (skipping it when
another instance holds it), apply the next page of the log, move the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import asyncpg
import structlog

from chronik.adapters.postgres.queries import QUERIES
from chronik.core.records import LogPosition
from chronik.projections.framework import Projector, StateCache, apply_batch

__all__ = ["ProjectionRunner"]

log = structlog.get_logger("chronik.projections")


class ProjectionRunner:
    """Keeps the asynchronous projections up with the log."""

    def __init__(
        self, pool: asyncpg.Pool, projectors: tuple[Projector, ...], *, interval: float, batch: int = 1000
    ) -> None:
        self._pool = pool
        self._projectors = projectors
        self._interval = interval
        self._batch = batch
        self._caches = {projector.name: StateCache() for projector in projectors}

    async def run(self, stop: asyncio.Event) -> None:
        """Apply new events until ``stop``; a full page is followed at once by the next."""
        while not stop.is_set():
            busy = False
            for projector in self._projectors:
                try:
                    busy = await self.step(projector) or busy
                except Exception:
                    log.exception("projection_failed", projection=projector.name)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval * random.uniform(0.8, 1.2))

    async def step(self, projector: Projector) -> bool:
        """Apply one page of new events to ``projector``; whether there was any."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(QUERIES["lock_checkpoint"], projector.name)
            if row is None:
                return False  # another instance (or a rebuild) holds it
            at = LogPosition(int(row["tx"]), row["position"])
            moved = await apply_batch(
                conn, projector, projector.name, at, self._caches[projector.name], limit=self._batch
            )
            if moved is None:
                return False
            await conn.execute(QUERIES["save_checkpoint"], projector.name, moved.tx, moved.position)
            return True

    async def catch_up(self) -> None:
        """Apply every event that is safe to read now (for tests, which must not wait for the poll)."""
        for projector in self._projectors:
            while await self.step(projector):
                pass
