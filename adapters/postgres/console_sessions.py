"""``console_sessions``: who signed in to the console, by the digest of their session id."""

from __future__ import annotations

import msgspec

from .database import Connection
from .queries import QUERIES

__all__ = ["ConsoleSession", "close", "find", "open_session", "prune"]


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """A live console session: its client, whether that client is an admin, its CSRF token."""

    client: str
    is_admin: bool
    csrf_token: str


async def open_session(conn: Connection, digest: bytes, session: ConsoleSession, *, seconds: float) -> None:
    """Keep a new session under the digest of its id for ``seconds``."""
    await conn.execute(
        QUERIES["open_console_session"], digest, session.client, session.is_admin, session.csrf_token, seconds
    )


async def find(conn: Connection, digest: bytes) -> ConsoleSession | None:
    """The live session of ``digest``; None when it ended or never was."""
    row = await conn.fetchrow(QUERIES["find_console_session"], digest)
    if row is None:
        return None
    return ConsoleSession(client=row["client"], is_admin=row["is_admin"], csrf_token=row["csrf_token"])


async def close(conn: Connection, digest: bytes) -> None:
    """End the session of ``digest`` now."""
    await conn.execute(QUERIES["close_console_session"], digest)


async def prune(conn: Connection) -> None:
    """Forget the sessions that expired."""
    await conn.execute(QUERIES["prune_console_sessions"])
