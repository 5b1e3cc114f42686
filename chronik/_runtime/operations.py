"""What an operator asks of a database: readiness, metrics, projection status and rebuilds, export
and import of the log."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from chronik.adapters.postgres import checkpoints, stats
from chronik.adapters.postgres.checkpoints import CheckpointStatus
from chronik.adapters.postgres.database import DATABASE_ERRORS
from chronik.adapters.postgres.migrate import pending_migrations
from chronik.adapters.telemetry.metrics import Metrics
from chronik.core.records import LogPosition
from chronik.projections.rebuild import rebuild
from chronik.projections.setup import PROJECTORS, projector_named

from .archive import Imported, export_events, import_events
from .store import JobStore

__all__ = ["Operations"]


class Operations:
    """Operator commands over one job store (the CLI's, and the public routes')."""

    def __init__(self, store: JobStore, metrics: Metrics) -> None:
        self._store = store
        self._database = store.database
        self._metrics = metrics

    async def readiness(self) -> str | None:
        """Why this instance is not ready to serve (``None`` when it is): the database must answer and
        every migration be applied."""
        try:
            async with self._database.connection(wait_seconds=5) as conn:
                pending = await pending_migrations(conn)
        except DATABASE_ERRORS as exc:
            return f"the database does not answer: {exc}"
        if pending:
            return f"migrations not applied: {', '.join(pending)} (run chronik db migrate)"
        return None

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of this instance, with the cluster's queues read now."""
        async with self._database.connection() as conn:
            snapshot = await stats.cluster_snapshot(conn)
        return self._metrics.render(snapshot)

    async def projection_status(self) -> list[CheckpointStatus]:
        """Each asynchronous projection's checkpoint and how far behind the log it is."""
        async with self._database.connection() as conn:
            return await checkpoints.list_with_lag(conn)

    async def rebuild_projections(self, name: str | None = None) -> list[tuple[str, LogPosition]]:
        """Refold one projection (``name``) or all from the log and swap each in; where each got to.

        ``KeyError`` names the known projections when ``name`` is not one of them.
        """
        chosen = [projector_named(name)] if name else list(PROJECTORS)
        reached = []
        async with self._database.connection() as conn:
            for projector in chosen:
                reached.append((projector.name, await rebuild(conn, projector)))
        return reached

    async def export_events(self, out: IO[str], *, since: int = 0) -> int:
        """Write the log after position ``since`` to ``out`` as JSON lines; how many events."""
        return await export_events(self._store, out, since=since)

    async def import_events(
        self,
        lines: Iterable[str],
        *,
        name: str = "the import",
        restore: bool = False,
        partition_days: int = 7,
    ) -> Imported:
        """Load an export into this (empty) database, or restore an archive file (``restore``), and
        derive every projection, queue and timer."""
        return await import_events(
            self._store, lines, name=name, restore=restore, partition_days=partition_days
        )
