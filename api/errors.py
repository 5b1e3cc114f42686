"""One place that turns exceptions into ``{"error": {"code", "message"}}`` responses."""

from __future__ import annotations

import math
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ExceptionHandlersMap

from chronik.adapters.postgres.database import BUSY_ERRORS, UNAVAILABLE_ERRORS, as_busy
from chronik.core.errors import ChronikError, DatabaseBusy, RateLimited

from .schemas import ErrorBody, ErrorDetail

__all__ = ["STATUS_BY_CODE", "error_response", "exception_handlers"]

log = structlog.get_logger("chronik.api")

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_INPUT_ERROR": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "BLUEPRINT_NOT_FOUND": 404,
    "JOB_NOT_FOUND": 404,
    "TASK_NOT_FOUND": 404,
    "WORKER_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "JOB_NOT_CANCELLABLE": 409,
    "VERSION_CONFLICT": 409,
    "JOB_NOT_RETRYABLE": 409,
    "JOB_NOT_AWAITING_APPROVAL": 409,
    "INVALID_DECISION": 422,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "TASK_NOT_HELD": 409,
    "CONFIG_ERROR": 422,
    "BLUEPRINT_ERROR": 422,
    "RATE_LIMITED": 429,
    "QUOTA_EXCEEDED": 429,
    "JOB_ENDED": 409,
    "FILES_NOT_CONFIGURED": 501,
    # An archive that cannot be read or does not verify: the job exists, its history is not at hand.
    "ARCHIVE_FAILED": 503,
    # Every pooled connection stayed busy (pool exhausted, or a database slowed by locks), or a
    # statement was cut by DB_LOCK_TIMEOUT_SECONDS or DB_STATEMENT_TIMEOUT_SECONDS.
    "DATABASE_BUSY": 503,
}

_CODE_BY_STATUS = {400: "INVALID_INPUT_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}
_CODE_BY_STATUS |= {405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMITED"}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    """An error response in chronik's one error shape."""
    return Response(
        ErrorBody(error=ErrorDetail(code=code, message=message)),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _chronik_error(request: Request[Any, Any, Any], exc: ChronikError) -> Response[Any]:
    status = STATUS_BY_CODE.get(exc.code)
    if status is None:  # a fault of the server (an unknown stored event, a migration), not of the request
        log.error("server_error", path=request.url.path, code=exc.code, message=exc.message)
        return error_response(HTTP_500_INTERNAL_SERVER_ERROR, exc.code, exc.message)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    elif isinstance(exc, DatabaseBusy):
        log.warning("database_busy", path=request.url.path, message=exc.message)
        headers = {"Retry-After": str(_RETRY_AFTER_SECONDS)}
    return error_response(status, exc.code, exc.message, headers=headers)


def _http_error(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    message = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        problems = exc.extra if isinstance(exc.extra, list) else [exc.extra]
        message = f"{exc.detail}: " + "; ".join(_describe(problem) for problem in problems)
    code = _CODE_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, message, headers=exc.headers)


def _describe(problem: object) -> str:
    if not isinstance(problem, dict):
        return str(problem)
    key = problem.get("key")
    where = "body" if key in (None, "data") else str(key)
    return f"{where}: {problem.get('message', problem)}"


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path, exc_info=exc)
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error; the server log has the details"
    )


def _database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # An outage, not a bug: one line in the log, no traceback, and an answer a client retries.
    log.warning("database_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return error_response(
        HTTP_503_SERVICE_UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
        "the database cannot be reached just now; send the request again shortly",
        headers={"Retry-After": str(_RETRY_AFTER_SECONDS)},
    )


_RETRY_AFTER_SECONDS = 2
"""How soon a client may try again after a 503: a restarting PostgreSQL is back within seconds."""


def _internal_or_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Busy first: a cancelled statement (57014) is also an OperatorInterventionError. The database
    # module makes DatabaseBusy of these on its connections; this catches one met anywhere else.
    if isinstance(exc, BUSY_ERRORS):
        return _chronik_error(request, as_busy(exc))
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return _database_unavailable(request, exc)
    return _internal_error(request, exc)


exception_handlers: ExceptionHandlersMap = {
    ChronikError: _chronik_error,
    HTTPException: _http_error,
    Exception: _internal_or_unavailable,
}
