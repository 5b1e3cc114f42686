"""Named clients from clients.toml: each token is a name, and the log records who did what."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from chronik.adapters.config import load_clients
from chronik.api.app import create_app
from chronik.core.errors import ConfigError
from chronik.demo import blueprints
from tests.conftest import wait_for

CLIENTS = """
[billing]
token = "billing-token-0123456789"
plan = "pro"

[ops-desk]
token = "ops-desk-token-0123456789"
"""


async def test_each_client_is_named_in_the_log(make_engine: Any, tmp_path: Path) -> None:
    config = tmp_path / "clients.toml"
    config.write_text(CLIENTS)
    engine = await make_engine(*blueprints, start=False)
    app = create_app(engine, client_token=None, clients_config_path=str(config))
    billing = {"X-Client-Token": "billing-token-0123456789"}
    ops = {"X-Client-Token": "ops-desk-token-0123456789"}
    async with AsyncTestClient(app=app) as client:
        created = await client.post(
            "/api/v1/jobs/review", json={"initial_data": {"amount": 1}}, headers=billing
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]

        async def ended() -> Any:
            job = (await client.get(f"/api/v1/jobs/{job_id}", headers=billing)).json()
            return job if job["status"] == "finished" else None

        await wait_for(ended)
        history = (await client.get(f"/api/v1/jobs/{job_id}/history", headers=billing)).json()
        assert history[0]["meta"]["actor"] == "billing"
        assert history[0]["data"]["client"] == "billing"
        # A demo job waits for a worker (none runs here) until ops-desk cancels it.
        other = (await client.post("/api/v1/jobs/demo", json={"initial_data": {}}, headers=ops)).json()[
            "job_id"
        ]
        cancelled = await client.post(f"/api/v1/jobs/{other}/cancel", headers=ops)
        assert cancelled.status_code == 200, cancelled.text
        events = (await client.get(f"/api/v1/jobs/{other}/history", headers=ops)).json()
        assert events[0]["meta"]["actor"] == "ops-desk"
        assert events[-1]["type"] == "JobCancelled" and events[-1]["data"]["actor"] == "ops-desk"
        refused = await client.get(f"/api/v1/jobs/{job_id}", headers={"X-Client-Token": "billing-token"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a]\ntoken = 'short'\n", "[a]: field 'token' must be a string of at least 16 characters"),
        ("[a]\ntoken = 'long-enough-token-1'\nrole = 'root'\n", "[a]: field 'role' must be one of"),
        (
            "[a]\ntoken = 'long-enough-token-1'\n[b]\ntoken = 'long-enough-token-1'\n",
            "[b]: field 'token' is the token",
        ),
        ('["bad name"]\ntoken = "long-enough-token-1"\n', "a client name may only have"),
    ],
)
def test_a_bad_clients_file_names_the_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "clients.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_clients(config)
    assert str(config) in caught.value.message and message in caught.value.message


def test_tokens_are_kept_only_as_digests(tmp_path: Path) -> None:
    config = tmp_path / "clients.toml"
    config.write_text(CLIENTS)
    loaded = load_clients(config)
    assert set(loaded) == {"billing", "ops-desk"}
    assert "billing-token-0123456789" not in repr(loaded)


async def test_the_watcher_forgets_old_idempotency_keys_and_rate_windows(make_engine: Any) -> None:
    engine = await make_engine(*blueprints)
    assert engine.instance.watcher is not None
    async with engine.database.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys (client, key, job_id, request, created_at) VALUES "
            "('c', 'old', gen_random_uuid(), 'x', now() - interval '25 hours'), "
            "('c', 'new', gen_random_uuid(), 'x', now())"
        )
        await conn.execute(
            "INSERT INTO rate_limit_counters (key, window_start, hits) VALUES "
            "('worker:w:polls', now() - interval '2 days', 5), ('worker:w:polls', now(), 1), "
            "('quota:c', now() - interval '20 days', 3)"
        )
        engine.instance.watcher._next_prune = 0.0
        await engine.instance.watcher.sweep()
        assert [r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")] == ["new"]
        left = await conn.fetch("SELECT key, hits FROM rate_limit_counters ORDER BY key, hits")
        assert [(r["key"], r["hits"]) for r in left] == [("quota:c", 3), ("worker:w:polls", 1)]


def test_plans_give_their_clients_limits_unless_a_client_has_its_own(tmp_path: Path) -> None:
    config = tmp_path / "clients.toml"
    config.write_text(
        "[plans.pro]\nrate_limit_per_minute = 300\nmonthly_attempts = 5000\n\n"
        '[a]\ntoken = "a-token-0123456789"\nplan = "pro"\n\n'
        '[b]\ntoken = "b-token-0123456789"\nplan = "pro"\nrate_limit_per_minute = 10\n'
    )
    loaded = load_clients(config)
    assert (loaded["a"].rate_limit_per_minute, loaded["a"].monthly_attempts) == (300, 5000)
    assert (loaded["b"].rate_limit_per_minute, loaded["b"].monthly_attempts) == (10, 5000)
    config.write_text(
        '[plans.pro]\nrate_limit_per_minute = 3\n\n[a]\ntoken = "a-token-0123456789"\nplan = "gold"\n'
    )
    with pytest.raises(
        ConfigError, match=r"\[a\]: field 'plan' names 'gold', which \[plans\] does not define"
    ):
        load_clients(config)
    config.write_text("[plans.pro]\nburst = 3\n")
    with pytest.raises(ConfigError, match=r"\[plans.pro\]: unknown field\(s\) 'burst'"):
        load_clients(config)


def test_client_token_and_clients_toml_cannot_share_a_name_or_a_token(tmp_path: Path) -> None:
    from chronik.api.app import create_app

    config = tmp_path / "clients.toml"
    config.write_text('[client]\ntoken = "long-enough-token-1"\n')
    with pytest.raises(ConfigError, match=r"\[client\] is the name of CLIENT_TOKEN's jobs"):
        create_app(object(), client_token="other-token-0123456789", clients_config_path=str(config))  # type: ignore[arg-type]
    config.write_text('[billing]\ntoken = "long-enough-token-1"\n')
    with pytest.raises(ConfigError, match="CLIENT_TOKEN is also a token"):
        create_app(object(), client_token="long-enough-token-1", clients_config_path=str(config))  # type: ignore[arg-type]
