"""``worker_tokens``: the digests of short-lived worker tokens, whom they were issued to, until when."""

from __future__ import annotations

from chronik.core.wire import TokenHolder

from .database import Connection
from .errors import refusing_bad_values
from .queries import QUERIES

__all__ = ["find", "issue", "prune"]


async def issue(
    conn: Connection, digest: bytes, worker_id: str, *, by_certificate: bool, seconds: float
) -> float:
    """Keep the digest of a token issued to ``worker_id`` for ``seconds``; the seconds it has left."""
    async with refusing_bad_values():
        remaining: float = await conn.fetchval(
            QUERIES["issue_worker_token"], digest, worker_id, by_certificate, seconds
        )
    return remaining


async def find(conn: Connection, digest: bytes) -> tuple[TokenHolder, float] | None:
    """Whom the token of ``digest`` was issued to, and the seconds it has left; None when it has
    expired or was never issued."""
    row = await conn.fetchrow(QUERIES["find_worker_token"], digest)
    if row is None:
        return None
    holder = TokenHolder(worker_id=row["worker_id"], by_certificate=row["by_certificate"])
    return holder, float(row["remaining"])


async def prune(conn: Connection) -> None:
    """Forget the tokens that expired."""
    await conn.execute(QUERIES["prune_worker_tokens"])
