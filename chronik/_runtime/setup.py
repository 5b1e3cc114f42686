"""Set up a database for this version: apply pending migrations, then the projections' tables."""

from __future__ import annotations

from chronik.adapters.postgres.database import Connection
from chronik.adapters.postgres.migrate import migrate
from chronik.projections.setup import ensure_projections

__all__ = ["prepare_database"]


async def prepare_database(conn: Connection) -> list[str]:
    """Apply pending migrations, then set up the projections; the migrations applied."""
    applied = await migrate(conn)
    await ensure_projections(conn)
    return applied
