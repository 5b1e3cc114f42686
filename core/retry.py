"""Worker error codes (Avtomatika's set) and what each leads to; the retry backoff."""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["FAIL_CODES", "QUARANTINE_CODES", "RETRYABLE_CODES", "RetryPolicy"]

RETRYABLE_CODES: Final = frozenset(
    {"TRANSIENT_ERROR", "RESOURCE_EXHAUSTED_ERROR", "TIMEOUT_ERROR", "INTERNAL_ERROR"}
)
"""Retried with backoff up to the task's ``max_retries``; then the job is quarantined.

A code outside all three sets is treated as retryable, as Avtomatika does.
"""

QUARANTINE_CODES: Final = frozenset({"PERMANENT_ERROR", "SECURITY_ERROR", "DEPENDENCY_ERROR"})
"""Retrying cannot help: the job is quarantined at once for a person to look at."""

FAIL_CODES: Final = frozenset({"INVALID_INPUT_ERROR"})
"""The job's input is wrong: it follows ``transitions["failure"]`` when given, else it fails."""


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with "equal jitter": each delay is at least the previous one's maximum / 2 * 2.

    Retry ``n`` (from 1) waits between ``b/2`` and ``b`` seconds, where
    ``b = min(max_seconds, base_seconds * 2**(n-1))``, so delays grow with each
    retry while instances retrying at once still spread apart.
    """

    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, retry: int, rand: float) -> float:
        """The delay before retry number ``retry``, given a uniform random number in [0, 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** (retry - 1))
        return ceiling / 2 + rand * ceiling / 2
