"""Errors of the domain, each with a stable machine-readable code.

The docstring of each class is its default message. The API maps ``code`` to an
HTTP status in one place (``api/errors.py``); core never speaks HTTP.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ActionError",
    "BlueprintError",
    "BlueprintNotFound",
    "ChronikError",
    "ConfigError",
    "DatabaseBusy",
    "FilesNotConfigured",
    "Forbidden",
    "IdempotencyKeyReused",
    "InvalidDecision",
    "InvalidInitialData",
    "InvalidInput",
    "JobEnded",
    "JobNotAwaitingApproval",
    "JobNotCancellable",
    "JobNotFound",
    "JobNotRetryable",
    "MigrationError",
    "QuotaExceeded",
    "RateLimited",
    "TaskNotFound",
    "TaskNotHeld",
    "Unauthorized",
    "UnknownEventType",
    "VersionConflict",
    "WorkerNotFound",
]


class ChronikError(Exception):
    """chronik failed."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or "").strip()
        super().__init__(self.message)


class BlueprintError(ChronikError):
    """The blueprint is not valid."""

    code = "BLUEPRINT_ERROR"


class ActionError(ChronikError):
    """A handler used its actions wrongly."""

    code = "ACTION_ERROR"


class InvalidInput(ChronikError):
    """The input is not valid."""

    code = "INVALID_INPUT_ERROR"


class InvalidInitialData(InvalidInput):
    """The job's initial_data does not match its blueprint's input_schema."""

    def __init__(self, message: str, *, blueprint: str, path: str) -> None:
        super().__init__(message)
        self.blueprint = blueprint
        self.path = path
        """Where in ``initial_data`` the first problem is, as a JSON path: ``$.items[2].qty``."""


class BlueprintNotFound(ChronikError):
    """No blueprint is registered under that name or endpoint."""

    code = "BLUEPRINT_NOT_FOUND"


class JobNotFound(ChronikError):
    """No job has that id."""

    code = "JOB_NOT_FOUND"


class JobNotCancellable(ChronikError):
    """The job has already ended and cannot be cancelled."""

    code = "JOB_NOT_CANCELLABLE"


class JobNotAwaitingApproval(ChronikError):
    """The job is not waiting for a decision."""

    code = "JOB_NOT_AWAITING_APPROVAL"


class InvalidDecision(ChronikError):
    """The decision is not one the job offers."""

    code = "INVALID_DECISION"


class IdempotencyKeyReused(ChronikError):
    """The idempotency key was used for another request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class JobNotRetryable(ChronikError):
    """Only a quarantined job can be retried."""

    code = "JOB_NOT_RETRYABLE"


class WorkerNotFound(ChronikError):
    """Worker not found; register again."""

    code = "WORKER_NOT_FOUND"


class TaskNotFound(ChronikError):
    """No task has that id."""

    code = "TASK_NOT_FOUND"


class TaskNotHeld(ChronikError):
    """The task is not held by this worker."""

    code = "TASK_NOT_HELD"


class Unauthorized(ChronikError):
    """The credentials are missing or wrong."""

    code = "UNAUTHORIZED"


class Forbidden(ChronikError):
    """The credentials are valid, but not for this."""

    code = "FORBIDDEN"


class VersionConflict(ChronikError):
    """Another writer appended to the job's stream first; reload and decide again."""

    code = "VERSION_CONFLICT"


class UnknownEventType(ChronikError):
    """A stored event has a type this version of chronik does not know."""

    code = "UNKNOWN_EVENT_TYPE"

    def __init__(self, type_: str, position: int) -> None:
        self.type = type_
        self.position = position
        super().__init__(
            f"event at position {position} has type {type_!r}, which this version of chronik does not know; "
            "upgrade chronik or register an upcaster"
        )


class MigrationError(ChronikError):
    """The database schema cannot be brought up to date."""

    code = "MIGRATION_ERROR"


class RateLimited(ChronikError):
    """Too many requests in this window; try again after ``retry_after`` seconds."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseBusy(ChronikError):
    """The database is too busy or too locked to serve this now; nothing was written; try again shortly.

    Raised when every pooled connection stayed busy, and when a statement was cut by a lock or
    statement timeout (its transaction rolled back); the message says which, and what to do.
    """

    code = "DATABASE_BUSY"


class QuotaExceeded(ChronikError):
    """The client used its quota for this month."""

    code = "QUOTA_EXCEEDED"


class ConfigError(ChronikError):
    """A setting is missing or malformed."""

    code = "CONFIG_ERROR"


class FilesNotConfigured(ChronikError):
    """Files need S3-compatible storage, and none is configured: set S3_ENDPOINT (and its keys)."""

    code = "FILES_NOT_CONFIGURED"


class JobEnded(ChronikError):
    """The job has ended; nothing can be added to it."""

    code = "JOB_ENDED"
