"""The projections that follow the log, and their tables' set-up."""

from __future__ import annotations

from chronik.adapters.postgres import checkpoints, projection_tables
from chronik.adapters.postgres.database import Connection, lift_timeouts, savepoint

from .attempts import TaskAttempts
from .framework import Projector
from .history import JobHistory

__all__ = ["PROJECTORS", "ensure_projections", "projector_named"]

PROJECTORS: tuple[Projector, ...] = (JobHistory(), TaskAttempts())
"""The projections that follow the log asynchronously (``jobs`` is written inline)."""


def projector_named(name: str) -> Projector:
    """The projector called ``name``; ``KeyError`` naming the known ones otherwise."""
    for projector in PROJECTORS:
        if projector.name == name:
            return projector
    raise KeyError(f"no projection is named {name!r}; known: {', '.join(p.name for p in PROJECTORS)}")


async def ensure_projections(conn: Connection) -> list[str]:
    """Create each projection's table when it is missing or of another version; the ones (re)created.

    A (re)created table starts empty at the beginning of the log: the runner refills
    it, and ``chronik projections status`` shows it catching up.
    """
    created: list[str] = []
    async with savepoint(conn):
        # Set-up, like the migrations before it: an instance starting beside another waits its
        # turn at the lock below instead of failing its start after DB_LOCK_TIMEOUT_SECONDS.
        await lift_timeouts(conn, lock=True)
        await projection_tables.ensure_setup_lock(conn)
        grants = await projection_tables.analytics_grants(conn)
        for projector in PROJECTORS:
            found = await checkpoints.get(conn, projector.name)
            exists = await projection_tables.table_exists(conn, projector.name)
            if found is not None and exists and found.version == projector.version:
                continue
            await projection_tables.create_table(conn, projector.name, projector.name)
            await checkpoints.reset(conn, projector.name, projector.version)
            created.append(projector.name)
        if created or not await projection_tables.analytics_installed(conn):
            await projection_tables.install_analytics(conn, grants)
    return created
