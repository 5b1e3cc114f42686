"""The ``workers`` table: who registered, with which task types, and when they last beat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from .errors import refusing_bad_values
from .queries import QUERIES

__all__ = ["LiveWorker", "count_live", "heartbeat", "list_live", "prune_gone", "register"]

_PRUNE_BATCH = 5000
"""Rows one prune statement deletes at most: a short transaction, however large the backlog."""


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


class LiveWorker(msgspec.Struct, frozen=True, kw_only=True):
    """A registered worker that beat recently, as the ``workers`` table has it."""

    worker_id: str
    task_types: tuple[str, ...]
    capacity: int
    info: dict[str, Any]
    """``worker_type``, ``resources`` and ``capabilities``, as registered."""
    registered_at: datetime
    last_heartbeat_at: datetime
    running_tasks: int
    """The attempts it holds now (leased, lease not run out)."""


_info = msgspec.json.Decoder(dict[str, Any])


async def list_live(conn: asyncpg.Connection, within_seconds: float) -> list[LiveWorker]:
    """The workers that beat within the last ``within_seconds``, by id."""
    rows = await conn.fetch(QUERIES["list_live_workers"], within_seconds)
    return [
        LiveWorker(
            worker_id=row["worker_id"],
            task_types=tuple(row["task_types"]),
            capacity=row["capacity"],
            info=_info.decode(row["info"]),
            registered_at=row["registered_at"],
            last_heartbeat_at=row["last_heartbeat_at"],
            running_tasks=row["running_tasks"],
        )
        for row in rows
    ]


async def count_live(conn: asyncpg.Connection, within_seconds: float) -> int:
    """How many workers beat within the last ``within_seconds``."""
    count: int = await conn.fetchval(QUERIES["count_live_workers"], within_seconds)
    return count


async def prune_gone(conn: asyncpg.Connection, *, limit: int = _PRUNE_BATCH) -> bool:
    """Forget up to ``limit`` workers silent for a day or more; one that comes back registers again.

    Returns whether a whole batch went: then more may be due.
    """
    status = await conn.execute(QUERIES["prune_gone_workers"], limit)
    return int(status.rpartition(" ")[2]) >= limit
