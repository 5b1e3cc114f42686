"""Settings from the environment: defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from chronik.core.errors import ConfigError
from chronik.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.max_concurrent_jobs == 100
    assert settings.data_dir == ".chronik/pgdata"
    assert settings.instance_id


def test_values_are_read() -> None:
    settings = Settings.from_env(
        {"EXECUTOR_MAX_CONCURRENT_JOBS": "7", "POLL_INTERVAL_SECONDS": "0.5", "CLIENT_TOKEN": "t"}
    )
    assert (settings.max_concurrent_jobs, settings.poll_interval, settings.client_token) == (7, 0.5, "t")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXECUTOR_MAX_CONCURRENT_JOBS": "many"}, "EXECUTOR_MAX_CONCURRENT_JOBS='many' is not a valid int"),
        ({"EXECUTOR_MAX_CONCURRENT_JOBS": "0"}, "EXECUTOR_MAX_CONCURRENT_JOBS='0' must be at least 1"),
        ({"POLL_INTERVAL_SECONDS": "x"}, "POLL_INTERVAL_SECONDS='x' is not a valid float"),
    ],
)
def test_malformed_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_database_timeouts_default_to_safe_limits_and_0_lifts_them() -> None:
    defaults = Settings.from_env({})
    assert (defaults.pool_timeout, defaults.lock_timeout, defaults.statement_timeout) == (30.0, 10.0, 30.0)
    off = Settings.from_env({"DB_LOCK_TIMEOUT_SECONDS": "0", "DB_STATEMENT_TIMEOUT_SECONDS": "0.5"})
    assert (off.lock_timeout, off.statement_timeout) == (0.0, 0.5)
    with pytest.raises(ConfigError, match="DB_LOCK_TIMEOUT_SECONDS='-1' must be at least 0"):
        Settings.from_env({"DB_LOCK_TIMEOUT_SECONDS": "-1"})
    with pytest.raises(ConfigError, match="DB_STATEMENT_TIMEOUT_SECONDS='1e9' must be at most"):
        Settings.from_env({"DB_STATEMENT_TIMEOUT_SECONDS": "1e9"})
