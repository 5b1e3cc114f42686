"""The one rule for a change that lost a race: read again, decide again, try again.

Every writer of a job appends at the version it read; a ``VersionConflict`` means
another writer moved the job first. Deciding is pure and cheap, so the loser
simply starts over from the job's new state, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from chronik.core.errors import VersionConflict

__all__ = ["MAX_ATTEMPTS", "retry_on_conflict"]

T = TypeVar("T")

MAX_ATTEMPTS = 10
"""How often a change is decided again before the caller is told the job kept moving."""


async def retry_on_conflict(attempt: Callable[[int], Awaitable[T]], *, what: str) -> T:
    """Run ``attempt(n)`` (n from 0) until it does not raise ``VersionConflict``.

    ``attempt`` must read what it decides on afresh each time. After ``MAX_ATTEMPTS``
    conflicts, ``VersionConflict`` names ``what`` kept moving.
    """
    for n in range(MAX_ATTEMPTS):
        try:
            return await attempt(n)
        except VersionConflict:
            continue
    raise VersionConflict(f"{what} kept moving; try again")
