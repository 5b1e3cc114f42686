"""Configuration files (TOML), validated with errors that name the file, the entry and the field."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from chronik.core.errors import ConfigError

__all__ = [
    "WORKER_PATTERN_PREFIX",
    "ClientEntry",
    "ScheduleEntry",
    "load_clients",
    "load_schedules",
    "load_worker_tokens",
]


class ClientEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A named client: its token's digest and its limits (None: the instance's default, or none)."""

    token_sha256: str
    plan: str = ""
    rate_limit_per_minute: int | None = None
    monthly_attempts: int | None = None
    """Jobs it may create per calendar month (UTC)."""
    role: str = "client"
    """``client``: sees and acts on its own jobs only; ``admin``: on every client's."""
    params: dict[str, Any] = {}
    """Any other fields of its entry (Avtomatika's client parameters: ``languages = [...]``), kept as
    given; chronik itself reads none of them."""


_WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WHEN = ("interval_seconds", "daily_at", "weekly_days", "monthly_dates", "cron")


class ScheduleEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``schedules.toml``, checked: a blueprint to start and when."""

    name: str
    blueprint: str
    input_data: dict[str, Any]
    interval_seconds: float | None = None
    at: tuple[int, int] | None = None
    """(hour, minute) for ``daily_at``, and for ``time`` with weekly days or monthly dates."""
    weekly_days: tuple[str, ...] = ()
    monthly_dates: tuple[int, ...] = ()
    cron: str | None = None


def load_schedules(path: str | Path) -> list[ScheduleEntry]:
    """Schedules from a ``schedules.toml`` in Avtomatika's format (plus ``cron``).

    ```toml
    [nightly_report]
    blueprint = "reports"
    input_data = {scope = "all"}
    daily_at = "02:30"            # or: interval_seconds = 3600
                                  # or: weekly_days = ["mon", "fri"] and time = "09:00"
                                  # or: monthly_dates = [1, 15] and time = "10:00"
                                  # or: cron = "*/5 * * * *"
    ```
    A mistake is a ``ConfigError`` naming the file, the entry and the field.
    """
    file = Path(path)
    document = _read_toml(file, "SCHEDULES_CONFIG_PATH")
    entries = []
    for name, entry in document.items():
        where = f"{file}: [{name}]"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: a schedule name may only have letters, digits, '_', '.' and '-'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with 'blueprint' and when to run it")
        unknown = sorted(set(entry) - {"blueprint", "input_data", "time", *_WHEN})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        blueprint = entry.get("blueprint")
        if not isinstance(blueprint, str) or not blueprint:
            raise ConfigError(f"{where}: field 'blueprint' must name a blueprint")
        input_data = entry.get("input_data", {})
        if not isinstance(input_data, dict):
            raise ConfigError(f"{where}: field 'input_data' must be a table")
        when = [field for field in _WHEN if field in entry]
        if len(when) != 1:
            raise ConfigError(
                f"{where}: give exactly one of {', '.join(_WHEN)} (it has {', '.join(when) or 'none'})"
            )
        entries.append(_schedule(where, name, blueprint, input_data, when[0], entry))
    return entries


def _schedule(
    where: str, name: str, blueprint: str, input_data: dict[str, Any], field: str, entry: dict[str, Any]
) -> ScheduleEntry:
    value = entry[field]
    needs_time = field in ("weekly_days", "monthly_dates")
    if "time" in entry and not needs_time:
        raise ConfigError(f"{where}: field 'time' goes with weekly_days or monthly_dates, not {field}")
    at = _time(where, "time", entry.get("time")) if needs_time else None
    base = ScheduleEntry(name=name, blueprint=blueprint, input_data=input_data)
    match field:
        case "interval_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 1:
                raise ConfigError(
                    f"{where}: field 'interval_seconds' must be a number of seconds, at least 1"
                )
            return msgspec.structs.replace(base, interval_seconds=float(value))
        case "daily_at":
            return msgspec.structs.replace(base, at=_time(where, "daily_at", value))
        case "weekly_days":
            days = value if isinstance(value, list) else None
            if not days or not all(isinstance(d, str) and d.lower()[:3] in _DAYS for d in days):
                raise ConfigError(
                    f'{where}: field \'weekly_days\' must list days such as ["mon", "fri"], got {value!r}'
                )
            return msgspec.structs.replace(base, at=at, weekly_days=tuple(d.lower()[:3] for d in days))
        case "monthly_dates":
            dates = value if isinstance(value, list) else None
            if not dates or not all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 31 for d in dates
            ):
                raise ConfigError(
                    f"{where}: field 'monthly_dates' must list days of the month (1-31), got {value!r}"
                )
            return msgspec.structs.replace(base, at=at, monthly_dates=tuple(dates))
        case _:
            if not isinstance(value, str) or len(value.split()) != 5:
                raise ConfigError(
                    f"{where}: field 'cron' must have five fields (minute hour day month weekday)"
                )
            return msgspec.structs.replace(base, cron=value)


def _time(where: str, field: str, value: object) -> tuple[int, int]:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f'{where}: field {field!r} must be a time as "HH:MM" (24 h), got {value!r}')
    return int(match.group(1)), int(match.group(2))


def _read_toml(file: Path, setting: str) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found ({setting})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


def load_clients(path: str | Path) -> dict[str, ClientEntry]:
    """Named clients from a ``clients.toml`` in Avtomatika's format, by name.

    ```toml
    [billing]
    token = "a-long-random-secret"
    plan = "pro"                  # its limits come from [plans.pro] ...
    rate_limit_per_minute = 600   # ... unless it has its own; default CLIENT_RATE_LIMIT_PER_MINUTE
    monthly_attempts = 100000     # optional: jobs it may create per calendar month
    role = "client"               # or "admin": sees and acts on every client's jobs
    languages = ["en", "de"]      # any other field is kept as the client's parameters

    [plans.pro]
    rate_limit_per_minute = 300
    monthly_attempts = 50000
    ```
    ``plans`` is therefore not a client name.
    Only the tokens' SHA-256 digests are kept in memory; the name is what the log
    records as the actor of everything the client does.
    """
    file = Path(path)
    document = _read_toml(file, "CLIENTS_CONFIG_PATH")
    plans = _plans(file, document.pop("plans", {}))
    clients: dict[str, ClientEntry] = {}
    for name, entry in document.items():
        where = f"{file}: [{name}]"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: a client name may only have letters, digits, '_', '.' and '-'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with a 'token' field")
        token = entry.get("token")
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigError(f"{where}: field 'token' must be a string of at least 16 characters")
        role = entry.get("role", "client")
        if role not in _ROLES:
            raise ConfigError(
                f"{where}: field 'role' must be one of {', '.join(map(repr, _ROLES))}, got {role!r}"
            )
        for field in ("monthly_attempts", "rate_limit_per_minute"):
            value = entry.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{where}: field {field!r} must be a whole number from 1, got {value!r}")
        plan = entry.get("plan", "")
        if not isinstance(plan, str):
            raise ConfigError(f"{where}: field 'plan' must be a string")
        if plan and plans and plan not in plans:
            raise ConfigError(f"{where}: field 'plan' names {plan!r}, which [plans] does not define")
        defaults = plans.get(plan, {})
        digest = hashlib.sha256(token.encode()).hexdigest()
        if any(known.token_sha256 == digest for known in clients.values()):
            raise ConfigError(f"{where}: field 'token' is the token of another client; give each its own")
        clients[name] = ClientEntry(
            token_sha256=digest,
            plan=plan,
            rate_limit_per_minute=entry.get("rate_limit_per_minute", defaults.get("rate_limit_per_minute")),
            monthly_attempts=entry.get("monthly_attempts", defaults.get("monthly_attempts")),
            role=role,
            params={key: value for key, value in entry.items() if key not in _CLIENT_FIELDS},
        )
    return clients


_ROLES = ("client", "admin")
_CLIENT_FIELDS = frozenset({"token", "plan", "monthly_attempts", "rate_limit_per_minute", "role"})


def _plans(file: Path, table: object) -> dict[str, dict[str, int]]:
    """``[plans.<name>]`` tables: the limits of the clients on each plan (a client's own win)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [plans] must hold one table per plan")
    plans: dict[str, dict[str, int]] = {}
    for name, limits in table.items():
        where = f"{file}: [plans.{name}]"
        if not isinstance(limits, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = sorted(set(limits) - {"rate_limit_per_minute", "monthly_attempts"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        for field, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: field {field!r} must be a whole number from 1, got {value!r}")
        plans[name] = dict(limits)
    return plans


_WORKER_PATTERN = re.compile(r"^[A-Za-z0-9_*?!\[\]-]{1,128}$")
WORKER_PATTERN_PREFIX = "pattern:"
"""A ``workers.toml`` section named ``"pattern:<glob>"`` gives the token of every worker id matching it."""


def load_worker_tokens(path: str | Path) -> dict[str, str]:
    """Per-worker tokens from a ``workers.toml`` in Avtomatika's format, by section name.

    ```toml
    [gpu-worker-01]
    token = "a-long-random-secret"
    description = "Primary GPU node"   # optional, for people; not used

    ["pattern:cpu-worker-*"]           # every worker id matching the fnmatch glob
    token = "another-secret"
    ```
    A section is a worker id, or ``pattern:`` and a glob (``*``, ``?``, ``[...]``); its key in
    the result is the section name as written (``api/worker_auth.py`` does the matching: an
    exact entry wins over patterns, and patterns are tried in the file's order).
    A mistake is a ``ConfigError`` naming the file, the entry and the field.
    """
    file = Path(path)
    document = _read_toml(file, "WORKERS_CONFIG_PATH")
    tokens: dict[str, str] = {}
    for name, entry in document.items():
        where = f"{file}: [{name}]"
        if name.startswith(WORKER_PATTERN_PREFIX):
            if not _WORKER_PATTERN.match(name.removeprefix(WORKER_PATTERN_PREFIX)):
                raise ConfigError(
                    f"{where}: a pattern is 'pattern:' and a glob of letters, digits, '_', '-' and the "
                    "wildcards * ? [ ] ! (1-128 characters)"
                )
        elif not _WORKER_ID.match(name):
            raise ConfigError(
                f"{where}: a worker id may only have letters, digits, '_' and '-' (1-128); "
                'a section for many workers is named "pattern:<glob>"'
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with a 'token' field")
        token = entry.get("token")
        if not isinstance(token, str) or not token:
            raise ConfigError(f"{where}: field 'token' must be a non-empty string")
        if not isinstance(entry.get("description", ""), str):
            raise ConfigError(f"{where}: field 'description' must be a string")
        unknown = sorted(set(entry) - {"token", "description"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        tokens[name] = token
    return tokens
