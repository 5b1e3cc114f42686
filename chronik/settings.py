"""Settings read from the environment, each with a default that runs anywhere."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from chronik.adapters.s3 import S3Config
from chronik.core.errors import ConfigError

__all__ = ["ENVIRONMENT", "Settings"]

ENVIRONMENT: dict[str, str] = {
    "DATABASE_URL": "the PostgreSQL to use; unset: the embedded one",
    "CHRONIK_DATA_DIR": "where the embedded PostgreSQL keeps its data",
    "CLIENT_TOKEN": "the token clients send as X-Client-Token",
    "CLIENTS_CONFIG_PATH": "a clients.toml of named clients and their tokens",
    "EXECUTOR_MAX_CONCURRENT_JOBS": "handlers running at once per instance",
    "POLL_INTERVAL_SECONDS": "the safety-net poll for missed notifications; the slowest pace of idle loops",
    "STEP_LEASE_SECONDS": "how long a claimed step is an instance's",
    "DB_POOL_MAX_SIZE": "database connections per instance",
    "INSTANCE_ID": "this instance's name in logs and event metadata",
    "SERVE_PROCESSES": "engine processes chronik serve runs on one port",
    "GLOBAL_WORKER_TOKEN": "the token any worker may send as X-Worker-Token",
    "WORKERS_CONFIG_PATH": "a workers.toml of per-worker tokens",
    "TASK_LEASE_SECONDS": "how long a worker holds a task without a heartbeat",
    "WATCHER_INTERVAL_SECONDS": "how often the watcher looks for expired leases while the queues are busy",
    "TASK_RETRY_BASE_SECONDS": "the first retry's backoff",
    "TASK_RETRY_MAX_SECONDS": "the longest backoff",
    "WORKER_POLL_MAX_SECONDS": "the longest a worker's long-poll is held",
    "PROJECTION_INTERVAL_SECONDS": "how often projections look for new events while jobs move",
    "SCHEDULES_CONFIG_PATH": "a schedules.toml of jobs to start on a schedule",
    "CLIENT_RATE_LIMIT_PER_MINUTE": "requests per minute of a client without its own limit",
    "ENABLE_CLIENT_API": "false: serve only the worker routes and /_public (no client API)",
    "CONSOLE_ENABLED": "false: no web console at /console",
    "DB_POOL_TIMEOUT_SECONDS": "how long a request waits for a database connection before a 503",
    "DB_LOCK_TIMEOUT_SECONDS": "how long a statement waits for a lock before a 503 (0: no limit)",
    "DB_STATEMENT_TIMEOUT_SECONDS": "how long a statement may run before a 503 (0: no limit)",
    "PARTITION_DAYS": "days of job creations per partition of the log (default 7)",
    "RETENTION_DAYS": "days ended jobs stay before they are archived; unset: history stays",
    "RETENTION_FAILED_DAYS": "days failed and quarantined jobs stay, when longer than RETENTION_DAYS",
    "ARCHIVE_URL": "where archived partitions go: file:///a/folder or s3://bucket/prefix",
    "ARCHIVE_INTERVAL_SECONDS": "how often the archiver runs (default 3600)",
    "MAX_TRANSITIONS_PER_JOB": "the states a job may enter before it fails (a blueprint in a cycle)",
    "WORKER_RATE_LIMIT_HEARTBEATS": "too-frequent heartbeats per minute per worker",
    "WORKER_RATE_LIMIT_POLLS": "empty polls per minute per worker",
    "WORKER_RATE_LIMIT_OTHER": "refused worker requests and failed authentications per minute",
    "WEBHOOK_SECRET": "the key that signs webhook notifications",
    "S3_ENDPOINT": "the S3-compatible storage of task_files (http(s)://host:port)",
    "S3_ACCESS_KEY": "its access key",
    "S3_SECRET_KEY": "its secret key",
    "S3_BUCKET": "the bucket of task_files",
    "S3_REGION": "its region, when it needs one",
    "WEBHOOK_MAX_ATTEMPTS": "attempts per notification before it is given up",
    "WEBHOOK_RETRY_BASE_SECONDS": "the first retry's backoff for a webhook",
    "WEBHOOK_CONCURRENCY": "notifications sent at once per instance",
    "WEBHOOK_INTERVAL_SECONDS": "how often an idle sender looks for due notifications",
    "TZ": "the time zone of the schedules",
    "LOG_LEVEL": "the command line's log level",
    "LOG_FORMAT": "json or text logs",
    "OTEL_TRACES_EXPORTER": "where traces go: otlp, console or none (with the other OTEL_ variables)",
    "ORCHESTRATOR_URL": "(workers, chronik.Client) the orchestrator to call",
    "WORKER_TOKEN": "(workers) the token a worker sends",
    "WORKER_ID": "(workers) the worker's id",
    "CHRONIK_PARENT_PID": "(workers) drain and exit once this pid's process is gone (chronik dev sets it)",
    "TLS_CERT_PATH": "serve HTTPS with this certificate (PEM); (workers) the client certificate to present",
    "TLS_KEY_PATH": "the private key of TLS_CERT_PATH (PEM), unless that file holds it",
    "TLS_CA_PATH": "the CA that signs workers' client certificates; (workers) the CA of the orchestrator's",
    "TLS_REQUIRE_CLIENT_CERT": "true: refuse TLS connections without a client certificate of TLS_CA_PATH",
    "WORKER_AUTH_MODE": "how workers authenticate: mixed, mtls-only or token-only",
    "WORKER_TOKEN_TTL_SECONDS": "how long a short-lived worker token (POST /_worker/auth/token) lasts",
    "WORKER_TOKEN_EXCHANGE": "(workers) true: exchange the worker's credential for short-lived tokens",
}
"""Every environment variable chronik reads, with what it is for; docs/operations.md has the defaults."""

N = TypeVar("N", int, float)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """chronik's settings; ``Settings.from_env()`` reads them from environment variables.

    Every field is documented in docs/operations.md under its variable's name.
    """

    database_url: str | None = None
    """``DATABASE_URL``: the PostgreSQL to use; unset means the embedded server."""
    data_dir: str = ".chronik/pgdata"
    """``CHRONIK_DATA_DIR``: where the embedded server keeps its data."""
    client_token: str | None = None
    """``CLIENT_TOKEN``: the token clients send as ``X-Client-Token``."""
    clients_config_path: str | None = None
    """``CLIENTS_CONFIG_PATH``: a ``clients.toml`` of named clients (``[name] token = "..."``)."""
    max_concurrent_jobs: int = 100
    """``EXECUTOR_MAX_CONCURRENT_JOBS``: handlers running at once in this instance."""
    poll_interval: float = 30.0
    """``POLL_INTERVAL_SECONDS``: the safety-net poll for missed notifications (jittered), and the
    slowest pace the watcher and projections back off to while nothing happens."""
    step_lease_seconds: float = 300.0
    """``STEP_LEASE_SECONDS``: how long a claimed step is this instance's before another may take it."""
    pool_max_size: int = 20
    """``DB_POOL_MAX_SIZE``: the most database connections this instance opens (plus one for LISTEN)."""
    pool_timeout: float = 30.0
    """``DB_POOL_TIMEOUT_SECONDS``: how long a request waits for a free database connection before
    it answers 503 ``DATABASE_BUSY`` (with ``Retry-After``)."""
    lock_timeout: float = 10.0
    """``DB_LOCK_TIMEOUT_SECONDS``: how long a statement on a pooled connection waits for a lock that
    another session holds (a long transaction, ``LOCK TABLE``, a migration) before it is cancelled,
    its transaction rolled back, and a request answers 503 ``DATABASE_BUSY``; 0: no limit."""
    statement_timeout: float = 30.0
    """``DB_STATEMENT_TIMEOUT_SECONDS``: how long a statement on a pooled connection may run before
    it is cancelled, its transaction rolled back, and a request answers 503 ``DATABASE_BUSY``; 0: no
    limit. Work that legitimately runs long (migrations, the archive, export and import) lifts it."""
    instance_id: str = ""
    """``INSTANCE_ID``: this instance's name in logs and event metadata; host and pid by default."""
    serve_processes: int = 1
    """``SERVE_PROCESSES``: engine processes ``chronik serve`` runs, sharing its port (``--processes``)."""
    global_worker_token: str | None = None
    """``GLOBAL_WORKER_TOKEN``: the token any worker may send as ``X-Worker-Token``."""
    workers_config_path: str | None = None
    """``WORKERS_CONFIG_PATH``: a ``workers.toml`` of per-worker tokens (``[worker_id] token = "..."``)."""
    task_lease_seconds: float = 60.0
    """``TASK_LEASE_SECONDS``: how long a worker holds a task without a heartbeat or progress."""
    watcher_interval: float = 2.0
    """``WATCHER_INTERVAL_SECONDS``: how often the watcher looks for expired leases and timeouts
    while tasks are queued (idle, it backs off to ``POLL_INTERVAL_SECONDS``)."""
    retry_base_seconds: float = 1.0
    """``TASK_RETRY_BASE_SECONDS``: the first retry waits between half of this and this."""
    retry_max_seconds: float = 300.0
    """``TASK_RETRY_MAX_SECONDS``: the longest wait between retries."""
    max_poll_seconds: float = 60.0
    """``WORKER_POLL_MAX_SECONDS``: the longest a worker's long-poll is held, whatever it asks."""
    projection_interval: float = 1.0
    """``PROJECTION_INTERVAL_SECONDS``: how often projections look for new events while jobs move
    (jittered; idle, they back off to ``POLL_INTERVAL_SECONDS``)."""
    schedules_config_path: str | None = None
    """``SCHEDULES_CONFIG_PATH``: a ``schedules.toml`` of blueprints to start on a schedule."""
    client_rate_limit: int = 0
    """``CLIENT_RATE_LIMIT_PER_MINUTE``: requests per minute of a client without its own limit; 0: none."""
    enable_client_api: bool = True
    console_enabled: bool = True
    """``CONSOLE_ENABLED``: the web console at ``/console`` (with the client API only)."""
    """``ENABLE_CLIENT_API``: false serves only the worker routes and ``/_public`` (Avtomatika's
    holon mode: jobs come from schedules and the embedding program, not from clients)."""
    max_transitions: int = 100
    """``MAX_TRANSITIONS_PER_JOB``: how many times a job may enter a state before it fails with
    ``MAX_TRANSITIONS_EXCEEDED``; a create request's ``max_transitions`` overrides it."""
    worker_rate_heartbeats: int = 120
    """``WORKER_RATE_LIMIT_HEARTBEATS``: heartbeats per minute per worker that come sooner than
    ``60 / this`` seconds after the worker's previous one (a steady beat costs nothing); 0: none."""
    worker_rate_polls: int = 60
    """``WORKER_RATE_LIMIT_POLLS``: empty polls (204) per minute per worker; a poll that takes a task
    costs nothing; 0: none."""
    worker_rate_other: int = 100
    """``WORKER_RATE_LIMIT_OTHER``: refused requests (4xx) per minute per worker, and failed
    authentications per minute per worker id and per client address; 0: none."""
    partition_days: int = 7
    """``PARTITION_DAYS``: how many days of job creations one partition of the log holds."""
    retention_days: float | None = None
    """``RETENTION_DAYS``: how long ended jobs stay in the hot tables before their partition is archived
    and leaves; unset: history stays (a blueprint's ``retention_days`` overrides it)."""
    retention_failed_days: float | None = None
    """``RETENTION_FAILED_DAYS``: how long failed (and quarantined) jobs stay, when longer."""
    archive_url: str | None = None
    """``ARCHIVE_URL``: where archived partitions go: ``file:///a/folder`` or ``s3://bucket/prefix``."""
    archive_interval: float = 3600.0
    """``ARCHIVE_INTERVAL_SECONDS``: how often the archiver looks for partitions past retention."""
    s3: S3Config | None = None
    """``S3_ENDPOINT``, ``S3_ACCESS_KEY``, ``S3_SECRET_KEY``, ``S3_BUCKET``, ``S3_REGION``: where
    ``task_files`` keep job payloads; None (no ``S3_ENDPOINT``): no ``task_files``."""
    webhook_secret: str | None = None
    """``WEBHOOK_SECRET``: the key of each notification's HMAC-SHA256 signature; webhooks need it."""
    webhook_max_attempts: int = 10
    """``WEBHOOK_MAX_ATTEMPTS``: attempts per notification before it is marked failed."""
    webhook_retry_base_seconds: float = 2.0
    """``WEBHOOK_RETRY_BASE_SECONDS``: the first retry waits up to this, each next one twice as long."""
    webhook_concurrency: int = 16
    """``WEBHOOK_CONCURRENCY``: notifications this instance sends at once."""
    webhook_interval: float = 1.0
    """``WEBHOOK_INTERVAL_SECONDS``: how often an idle sender looks for due notifications (jittered)."""
    timezone: str = "UTC"
    """``TZ``: the IANA time zone the schedules' times are in (``Europe/Berlin``)."""
    tls_cert_path: str | None = None
    """``TLS_CERT_PATH``: serve HTTPS with this certificate (PEM, its chain after it); None: HTTP."""
    tls_key_path: str | None = None
    """``TLS_KEY_PATH``: the certificate's private key (PEM); None: ``TLS_CERT_PATH`` holds it."""
    tls_ca_path: str | None = None
    """``TLS_CA_PATH``: the CA certificates (PEM) that sign workers' client certificates; with it the
    server asks each connection for a certificate, and a verified one's CN is the worker's id."""
    tls_require_client_cert: bool = False
    """``TLS_REQUIRE_CLIENT_CERT``: refuse a TLS connection without a verified client certificate
    (every route then needs one, clients' too); false: ask for one but let connections without in."""
    worker_auth_mode: str = "mixed"
    """``WORKER_AUTH_MODE``: ``mixed`` (a client certificate or a token), ``mtls-only`` (a certificate,
    or a short-lived token issued for one) or ``token-only`` (tokens; certificates are ignored)."""
    worker_token_ttl_seconds: float = 3600.0
    """``WORKER_TOKEN_TTL_SECONDS``: how long a short-lived worker token lasts."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a malformed value is a ``ConfigError`` naming the variable."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=env.get("CHRONIK_DATA_DIR") or ".chronik/pgdata",
            client_token=env.get("CLIENT_TOKEN") or None,
            clients_config_path=env.get("CLIENTS_CONFIG_PATH") or None,
            max_concurrent_jobs=_number(env, "EXECUTOR_MAX_CONCURRENT_JOBS", int, 100, minimum=1),
            poll_interval=_number(env, "POLL_INTERVAL_SECONDS", float, 30.0, minimum=0.05),
            step_lease_seconds=_number(env, "STEP_LEASE_SECONDS", float, 300.0, minimum=1),
            pool_max_size=_number(env, "DB_POOL_MAX_SIZE", int, 20, minimum=2),
            pool_timeout=_number(env, "DB_POOL_TIMEOUT_SECONDS", float, 30.0, minimum=0.1),
            lock_timeout=_number(env, "DB_LOCK_TIMEOUT_SECONDS", float, 10.0, minimum=0, maximum=86400.0),
            statement_timeout=_number(
                env, "DB_STATEMENT_TIMEOUT_SECONDS", float, 30.0, minimum=0, maximum=86400.0
            ),
            instance_id=env.get("INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}",
            serve_processes=_number(env, "SERVE_PROCESSES", int, 1, minimum=1),
            global_worker_token=env.get("GLOBAL_WORKER_TOKEN") or None,
            workers_config_path=env.get("WORKERS_CONFIG_PATH") or None,
            task_lease_seconds=_number(env, "TASK_LEASE_SECONDS", float, 60.0, minimum=1),
            watcher_interval=_number(env, "WATCHER_INTERVAL_SECONDS", float, 2.0, minimum=0.05),
            retry_base_seconds=_number(env, "TASK_RETRY_BASE_SECONDS", float, 1.0, minimum=0),
            retry_max_seconds=_number(env, "TASK_RETRY_MAX_SECONDS", float, 300.0, minimum=0),
            max_poll_seconds=_number(env, "WORKER_POLL_MAX_SECONDS", float, 60.0, minimum=0),
            projection_interval=_number(env, "PROJECTION_INTERVAL_SECONDS", float, 1.0, minimum=0.05),
            schedules_config_path=env.get("SCHEDULES_CONFIG_PATH") or None,
            timezone=_zone(env.get("TZ") or "UTC"),
            webhook_secret=env.get("WEBHOOK_SECRET") or None,
            s3=S3Config.from_env(env),
            client_rate_limit=_number(env, "CLIENT_RATE_LIMIT_PER_MINUTE", int, 0, minimum=0),
            enable_client_api=_flag(env, "ENABLE_CLIENT_API", True),
            console_enabled=_flag(env, "CONSOLE_ENABLED", True),
            max_transitions=_number(env, "MAX_TRANSITIONS_PER_JOB", int, 100, minimum=1),
            worker_rate_heartbeats=_number(env, "WORKER_RATE_LIMIT_HEARTBEATS", int, 120, minimum=0),
            worker_rate_polls=_number(env, "WORKER_RATE_LIMIT_POLLS", int, 60, minimum=0),
            worker_rate_other=_number(env, "WORKER_RATE_LIMIT_OTHER", int, 100, minimum=0),
            webhook_max_attempts=_number(env, "WEBHOOK_MAX_ATTEMPTS", int, 10, minimum=1),
            webhook_retry_base_seconds=_number(env, "WEBHOOK_RETRY_BASE_SECONDS", float, 2.0, minimum=0),
            webhook_concurrency=_number(env, "WEBHOOK_CONCURRENCY", int, 16, minimum=1),
            webhook_interval=_number(env, "WEBHOOK_INTERVAL_SECONDS", float, 1.0, minimum=0.05),
            tls_cert_path=env.get("TLS_CERT_PATH") or None,
            tls_key_path=env.get("TLS_KEY_PATH") or None,
            tls_ca_path=env.get("TLS_CA_PATH") or None,
            tls_require_client_cert=_flag(env, "TLS_REQUIRE_CLIENT_CERT", False),
            worker_auth_mode=_auth_mode(env.get("WORKER_AUTH_MODE") or "mixed"),
            worker_token_ttl_seconds=_number(
                env, "WORKER_TOKEN_TTL_SECONDS", float, 3600.0, minimum=1, maximum=86400.0
            ),
            partition_days=_number(env, "PARTITION_DAYS", int, 7, minimum=1, maximum=366),
            retention_days=_optional(env, "RETENTION_DAYS"),
            retention_failed_days=_optional(env, "RETENTION_FAILED_DAYS"),
            archive_url=env.get("ARCHIVE_URL") or None,
            archive_interval=_number(env, "ARCHIVE_INTERVAL_SECONDS", float, 3600.0, minimum=1.0),
        ).checked()

    def checked(self) -> Settings:
        """These settings, once the ones that only work together are found consistent."""
        if (
            self.retention_days is not None or self.retention_failed_days is not None
        ) and not self.archive_url:
            raise ConfigError(
                "RETENTION_DAYS (or RETENTION_FAILED_DAYS) is set but ARCHIVE_URL is not: history leaves "
                "the database only into an archive; set ARCHIVE_URL=file:///a/folder or s3://bucket/prefix"
            )
        return self


WORKER_AUTH_MODES = ("mixed", "mtls-only", "token-only")
"""The values of ``WORKER_AUTH_MODE``, as in Avtomatika."""


def _auth_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in WORKER_AUTH_MODES:
        raise ConfigError(f"WORKER_AUTH_MODE={value!r} must be one of {', '.join(WORKER_AUTH_MODES)}")
    return mode


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={env.get(name)!r} must be true or false")


def _zone(name: str) -> str:
    # POSIX allows TZ=":Europe/Berlin"; the zone database knows it without the colon.
    zone = name.removeprefix(":")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"TZ={name!r} is not a time zone (use an IANA name such as Europe/Berlin)"
        ) from None
    return zone


def _optional(env: Mapping[str, str], name: str) -> float | None:
    # Unset: no limit (history stays). Set: a positive number of days.
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    days = _number(env, name, float, 0.0, minimum=0.0)
    if days <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive number of days (unset it to keep history)")
    return days


def _number(
    env: Mapping[str, str], name: str, kind: type[N], default: N, *, minimum: N, maximum: N | None = None
) -> N:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} must be a finite number")
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={raw!r} must be at most {maximum}")
    return value
