"""The client's exceptions: one base with ``code``, ``message`` and ``status``, one subclass per kind.

They are the client's own, not ``chronik.core.errors``: a server error reaches the client as
``{"error": {"code", "message"}}`` and an HTTP status, and that is all these carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import msgspec

if TYPE_CHECKING:
    from ._views import JobView

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ChronikClientError",
    "ConflictError",
    "JobFailedError",
    "NetworkError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
    "UnprocessableError",
    "WaitTimeoutError",
    "error_from_response",
]


class ChronikClientError(Exception):
    """Base of every exception the client raises."""

    code: str
    """What went wrong, machine-readable: the server's code (``JOB_NOT_FOUND``) or the client's own."""
    message: str
    """What went wrong, for a person."""
    status: int | None
    """The HTTP status of the answer; None when there was none (network, timeout, a job's end)."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.code}: {self.message}{where}"


class ApiError(ChronikClientError):
    """The server refused the request: an error answer, or one the client could not read."""

    status: int

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code, status=status)


class BadRequestError(ApiError):
    """400: the request was malformed (``INVALID_INPUT_ERROR``): a bad field, limit or cursor."""


class AuthenticationError(ApiError):
    """401 or 403: the ``X-Client-Token`` is missing, wrong or not allowed here."""


class NotFoundError(ApiError):
    """404: ``JOB_NOT_FOUND`` (or another client's job), ``BLUEPRINT_NOT_FOUND``, ``NOT_FOUND``."""


class ConflictError(ApiError):
    """409: the job is not in a state for this: ``JOB_NOT_CANCELLABLE``, ``JOB_NOT_RETRYABLE``,
    ``JOB_NOT_AWAITING_APPROVAL``."""


class UnprocessableError(ApiError):
    """422: well-formed but refused: ``INVALID_DECISION``, ``IDEMPOTENCY_KEY_REUSED``."""


class RateLimitedError(ApiError):
    """429: ``RATE_LIMITED`` or ``QUOTA_EXCEEDED``; ``retry_after`` says when to try again."""

    retry_after: float | None
    """Seconds to wait, from the ``Retry-After`` header (None without one)."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed (``INTERNAL_ERROR``: its log has the details) or is not ready."""


class NetworkError(ChronikClientError):
    """No answer: the connection failed or timed out (the httpx exception is ``__cause__``)."""


class WaitTimeoutError(ChronikClientError, TimeoutError):
    """``wait()`` ran out of time before the job ended; ``job`` is its state at that moment."""

    job: JobView
    """The job as the last answer showed it."""

    def __init__(self, job: JobView, timeout: float) -> None:
        super().__init__(
            f"job {job.job_id} is still {job.status} after {timeout:g} s", code="WAIT_TIMEOUT", status=None
        )
        self.job = job


class JobFailedError(ChronikClientError):
    """``result()`` found the job failed, cancelled or quarantined; ``job`` says why.

    ``code`` and ``message`` are the job's ``error``; a quarantined job can still be retried.
    """

    job: JobView
    """The ended job, with its ``status`` and ``error``."""

    def __init__(self, job: JobView) -> None:
        error = job.error
        code = error.code if error is not None else job.status.upper()
        detail = error.message if error is not None else "no error was recorded"
        super().__init__(f"job {job.job_id} ended {job.status}: {detail}", code=code, status=None)
        self.job = job


class _ErrorDetail(msgspec.Struct):
    code: str
    message: str


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer (its body already read)."""
    status = response.status_code
    try:
        detail = msgspec.json.decode(response.content, type=_ErrorBody).error
        code, message = detail.code, detail.message
    except msgspec.MsgspecError:  # a proxy's page, not chronik's: keep what it said
        code, message = f"HTTP_{status}", response.text[:500] or response.reason_phrase
    if status == 429:
        return RateLimitedError(message, code=code, status=status, retry_after=_seconds(response))
    kind = ServerError if status >= 500 else _BY_STATUS.get(status, ApiError)
    return kind(message, code=code, status=status)


def _seconds(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):  # absent, or an HTTP date: chronik sends seconds
        return None
