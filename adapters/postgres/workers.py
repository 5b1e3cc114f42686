"""The ``workers`` table: who registered, with which task types, and when they last beat."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from .errors import refusing_bad_values
from .queries import QUERIES

__all__ = ["heartbeat", "register"]


async def register(
    conn: asyncpg.Connection, worker_id: str, *, task_types: list[str], capacity: int, info: dict[str, Any]
) -> None:
    """Register or re-register a worker."""
    async with refusing_bad_values():
        await conn.execute(
            QUERIES["register_worker"], worker_id, task_types, capacity, msgspec.json.encode(info).decode()
        )


async def heartbeat(conn: asyncpg.Connection, worker_id: str) -> bool:
    """Record a heartbeat; ``False`` when the worker is not registered."""
    row = await conn.fetchrow(QUERIES["heartbeat_worker"], worker_id)
    return row is not None
