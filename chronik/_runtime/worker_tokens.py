"""Short-lived worker tokens: issued to an authenticated worker, valid on every instance until they expire.

The tokens live in PostgreSQL (their SHA-256 digests only), so a token one instance
issued is good on all of them. Each instance remembers the tokens it has verified until
they expire, so a busy worker costs a query for its token once per instance, not once
per request. Expired rows are deleted by the watcher's housekeeping.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from chronik.adapters.postgres import worker_tokens
from chronik.adapters.postgres.database import Database
from chronik.core.wire import SHORT_LIVED_TOKEN_PREFIX, TokenAnswer, TokenHolder

__all__ = ["WorkerTokens"]

_SWEEP_SECONDS = 60.0
"""How often the in-process memory of verified tokens drops those that expired."""
_REMEMBER_SECONDS = 60.0
"""The longest a verified token is believed without asking the database again: a token deleted
there (revoked) stops working on every instance within this, not at its expiry."""


class WorkerTokens:
    """Issues and verifies one instance's short-lived worker tokens."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._database = database
        self._clock = clock
        self._known: dict[bytes, tuple[TokenHolder, float]] = {}
        """Verified tokens by digest: their holder, and when (by ``clock``) they expire."""
        self._next_sweep = 0.0

    async def issue(self, worker_id: str, *, by_certificate: bool, seconds: float) -> TokenAnswer:
        """A new token for ``worker_id``, valid for ``seconds`` on every instance."""
        token = SHORT_LIVED_TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(token)
        async with self._database.connection() as conn:
            remaining = await worker_tokens.issue(
                conn, digest, worker_id, by_certificate=by_certificate, seconds=seconds
            )
        self._remember(digest, TokenHolder(worker_id=worker_id, by_certificate=by_certificate), remaining)
        return TokenAnswer(access_token=token, expires_in=int(seconds), worker_id=worker_id)

    async def verify(self, token: str) -> TokenHolder | None:
        """Whom ``token`` was issued to; None when it expired or was never issued."""
        digest = _digest(token)
        known = self._known.get(digest)
        if known is not None:
            holder, expires = known
            if self._clock() < expires:
                return holder
            del self._known[digest]  # the database says whether it still holds
        async with self._database.connection() as conn:
            found = await worker_tokens.find(conn, digest)
        if found is None:
            return None
        holder, remaining = found
        self._remember(digest, holder, remaining)
        return holder

    def _remember(self, digest: bytes, holder: TokenHolder, remaining: float) -> None:
        # The database measured the time left, so the clocks of the instances need not agree.
        now = self._clock()
        self._known[digest] = (holder, now + min(remaining, _REMEMBER_SECONDS))
        if now >= self._next_sweep:
            self._known = {key: known for key, known in self._known.items() if known[1] > now}
            self._next_sweep = now + _SWEEP_SECONDS


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
