"""Translate PostgreSQL's refusals of bad values into ``InvalidInput``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from chronik.core.errors import InvalidInput

__all__ = ["refusing_bad_values"]


@asynccontextmanager
async def refusing_bad_values() -> AsyncIterator[None]:
    """Turn a value PostgreSQL cannot store (a NUL character in JSON or text, a number out of
    range) into ``InvalidInput`` naming the problem, instead of a server error."""
    try:
        yield
    except (asyncpg.DataError, asyncpg.UntranslatableCharacterError) as exc:
        raise InvalidInput(f"a value cannot be stored: {exc}") from exc
    except OverflowError as exc:  # asyncpg refuses an int too large for its column before sending
        raise InvalidInput(f"a number is out of range: {exc}") from exc
