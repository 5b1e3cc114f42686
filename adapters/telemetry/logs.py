"""structlog set-up for the CLI: JSON lines on stderr, or readable text with ``LOG_FORMAT=text``."""

from __future__ import annotations

import logging
import sys

import structlog

from chronik.adapters.postgres.database import UNAVAILABLE_ERRORS
from chronik.core.errors import ConfigError

__all__ = ["LOG_FORMATS", "OutageWithoutTraceback", "configure_logging"]

LOG_FORMATS = ("json", "text")


class OutageWithoutTraceback(logging.Filter):
    """One line, not a traceback, for asyncpg's pool failing to reconnect while the database is down.

    asyncpg's pool logs "Failed to restore the pool connection floor; retrying" with the
    whole traceback of the refused connection, again each second of an outage: what an
    operator reads as a crash, when the pool is only waiting (found by the fault harness
    in a PostgreSQL restart). A real bug's traceback passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, UNAVAILABLE_ERRORS):
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str = "INFO", log_format: str = "json") -> None:
    """Log at ``level`` and above on stderr, as JSON objects (one a line) or as readable text.

    Every line carries what the code bound for it: ``job_id`` in the executor,
    ``task_id`` and ``worker_id`` in the worker protocol, ``instance`` on start.
    """
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT={log_format!r} must be one of {', '.join(LOG_FORMATS)}")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(found, OutageWithoutTraceback) for found in pool_log.filters):
        pool_log.addFilter(OutageWithoutTraceback())
