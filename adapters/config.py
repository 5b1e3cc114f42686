"""Configuration files (TOML), validated with errors that name the file, the entry and the field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from chronik.core.errors import ConfigError

__all__ = ["load_worker_tokens"]

_WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def load_worker_tokens(path: str | Path) -> dict[str, str]:
    """Per-worker tokens from a ``workers.toml`` in Avtomatika's format.

    ```toml
    [gpu-worker-1]
    token = "a-long-random-secret"
    ```
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found (WORKERS_CONFIG_PATH)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    tokens: dict[str, str] = {}
    for worker_id, entry in document.items():
        if not _WORKER_ID.match(worker_id):
            raise ConfigError(
                f"{file}: [{worker_id}]: a worker id may only have letters, digits, '_' and '-' (1-128)"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"{file}: [{worker_id}] must be a table with a 'token' field")
        token = entry.get("token")
        if not isinstance(token, str) or not token:
            raise ConfigError(f"{file}: [{worker_id}]: field 'token' must be a non-empty string")
        unknown = sorted(set(entry) - {"token"})
        if unknown:
            raise ConfigError(f"{file}: [{worker_id}]: unknown field(s) {', '.join(map(repr, unknown))}")
        tokens[worker_id] = token
    return tokens
