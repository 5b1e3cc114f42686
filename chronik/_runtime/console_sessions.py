"""Console sign-ins: a session id for the browser's cookie, its digest and client in the database."""

from __future__ import annotations

import hashlib
import secrets

from chronik.adapters.postgres import console_sessions
from chronik.adapters.postgres.console_sessions import ConsoleSession
from chronik.adapters.postgres.database import Database

__all__ = ["SESSION_SECONDS", "ConsoleSession", "ConsoleSessions"]

SESSION_SECONDS = 12 * 3600.0
"""How long a console sign-in lasts (a working day); signing out ends it at once."""


class ConsoleSessions:
    """Opens, finds and closes console sessions; the database keeps them for every instance."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def open(self, client: str, *, is_admin: bool) -> tuple[str, ConsoleSession]:
        """A new session of ``client``: its id (for the cookie only) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = ConsoleSession(client=client, is_admin=is_admin, csrf_token=secrets.token_urlsafe(32))
        async with self._database.connection() as conn:
            await console_sessions.open_session(conn, _digest(session_id), session, seconds=SESSION_SECONDS)
        return session_id, session

    async def find(self, session_id: str) -> ConsoleSession | None:
        """The live session of the id a cookie holds; None for an unknown or ended one."""
        async with self._database.connection() as conn:
            return await console_sessions.find(conn, _digest(session_id))

    async def close(self, session_id: str) -> None:
        """Sign out."""
        async with self._database.connection() as conn:
            await console_sessions.close(conn, _digest(session_id))


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()
