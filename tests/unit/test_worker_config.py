"""workers.toml: tokens per worker and per pattern, errors that name the file, the entry and the field;
and who a worker is under each WORKER_AUTH_MODE."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronik.adapters.config import load_worker_tokens
from chronik.api.worker_auth import WorkerCredentials, WorkerIdentity
from chronik.core.errors import ConfigError, Forbidden, Unauthorized
from chronik.core.wire import SHORT_LIVED_TOKEN_PREFIX, TokenHolder

AVTOMATIKA_DOCS_EXAMPLE = """\
# Section name must be the same as WORKER_ID on the worker side
[gpu-worker-01]
token = "super-secret-token-for-gpu-01"
description = "Primary GPU node for video rendering"

[cpu-worker-01]
token = "another-secret-token-for-cpu-01"
description = "General purpose CPU worker"
"""


def test_tokens_are_read(tmp_path: Path) -> None:
    file = tmp_path / "workers.toml"
    file.write_text('[gpu-1]\ntoken = "a"\n\n[cpu_2]\ntoken = "b"\n')
    assert load_worker_tokens(file) == {"gpu-1": "a", "cpu_2": "b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[w]\ntoken = ""\n', "[w]: field 'token' must be a non-empty string"),
        ("[w]\nsecret = 'x'\n", "[w]: field 'token' must be a non-empty string"),
        ('[w]\ntoken = "x"\nextra = 1\n', "[w]: unknown field(s) 'extra'"),
        ('[w]\ntoken = "x"\ndescription = 1\n', "[w]: field 'description' must be a string"),
        ('["pattern:gpu *"]\ntoken = "x"\n', "[pattern:gpu *]: a pattern is 'pattern:' and a glob"),
        ('["pattern:"]\ntoken = "x"\n', "[pattern:]: a pattern is 'pattern:' and a glob"),
        ('["pattern:w-*"]\ntoken = ""\n', "[pattern:w-*]: field 'token' must be a non-empty string"),
        ('w = "x"\n', "[w] must be a table"),
        ('["bad id"]\ntoken = "x"\n', "a worker id may only have"),
        ("[w\n", "not valid TOML"),
    ],
)
def test_bad_files_name_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "workers.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_worker_tokens(file)
    assert str(file) in caught.value.message and message in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_worker_tokens(tmp_path / "nope.toml")


def test_credentials(tmp_path: Path) -> None:
    file = tmp_path / "workers.toml"
    file.write_text('[own]\ntoken = "own-secret"\n')
    credentials = WorkerCredentials("global", str(file))
    assert credentials.authenticate("anyone", "global") is None
    assert credentials.authenticate("own", "own-secret") == "own-secret"
    for worker_id, token in (("own", "global"), ("anyone", "own-secret"), ("anyone", None)):
        with pytest.raises(Unauthorized):
            credentials.authenticate(worker_id, token)
    with pytest.raises(Unauthorized, match="no worker tokens are configured"):
        WorkerCredentials(None, None).authenticate("w", "t")


def test_an_avtomatika_workers_toml_loads_unchanged(tmp_path: Path) -> None:
    file = tmp_path / "workers.toml"
    file.write_text(AVTOMATIKA_DOCS_EXAMPLE)
    assert load_worker_tokens(file) == {
        "gpu-worker-01": "super-secret-token-for-gpu-01",
        "cpu-worker-01": "another-secret-token-for-cpu-01",
    }


def test_pattern_entries(tmp_path: Path) -> None:
    file = tmp_path / "workers.toml"
    file.write_text(
        '["pattern:gpu-*"]\ntoken = "gpu-fleet"\n\n[gpu-7]\ntoken = "gpu-7-own"\n\n'
        '["pattern:gpu-node-??"]\ntoken = "never: the first pattern wins"\n\n'
        '["pattern:cpu-[0-9]"]\ntoken = "cpu-fleet"\n'
    )
    assert load_worker_tokens(file)["pattern:gpu-*"] == "gpu-fleet"
    credentials = WorkerCredentials("global", str(file))
    assert credentials.reload() == 4
    assert credentials.own_token("gpu-7") == "gpu-7-own"  # an exact entry wins over patterns
    assert credentials.own_token("gpu-node-01") == "gpu-fleet"  # patterns in the file's order
    assert credentials.own_token("cpu-3") == "cpu-fleet"
    assert credentials.own_token("cpu-33") is None and credentials.own_token("GPU-1") is None
    assert credentials.authenticate("gpu-1", "gpu-fleet") == "gpu-fleet"  # its secret: it signs with it
    assert credentials.authenticate("cpu-33", "global") is None
    with pytest.raises(Unauthorized):
        credentials.authenticate("gpu-1", "global")  # a pattern's worker has its own token


# -- who a worker is, by WORKER_AUTH_MODE ----------------------------------------

SHORT = SHORT_LIVED_TOKEN_PREFIX + "abc"
ISSUED = {
    SHORT: TokenHolder(worker_id="w1", by_certificate=False),
    SHORT + "cert": TokenHolder(worker_id="w1", by_certificate=True),
}


async def short_lived(token: str) -> TokenHolder | None:
    return ISSUED.get(token)


async def identify(mode: str, claimed: str | None, token: str | None, cert: str | None) -> WorkerIdentity:
    return await WorkerCredentials("global", None, mode=mode).identify(claimed, token, cert, short_lived)


async def test_mixed_takes_a_certificate_before_a_token() -> None:
    assert await identify("mixed", None, None, "w1") == ("w1", None, "certificate")
    assert await identify("mixed", "w1", "wrong", "w1") == ("w1", None, "certificate")
    assert await identify("mixed", "w2", "global", None) == ("w2", None, "token")
    assert await identify("mixed", None, SHORT, None) == ("w1", None, "short-lived")
    with pytest.raises(Forbidden, match=r"certificate is worker 'w1'.*for worker 'w2'"):
        await identify("mixed", "w2", "global", "w1")
    with pytest.raises(Unauthorized, match="or connect with a client certificate"):
        await identify("mixed", "w2", None, None)


async def test_mtls_only_takes_certificates_and_their_short_lived_tokens() -> None:
    assert await identify("mtls-only", "w1", None, "w1") == ("w1", None, "certificate")
    assert await identify("mtls-only", None, SHORT + "cert", None) == ("w1", None, "short-lived")
    with pytest.raises(Unauthorized, match="client certificate is required"):
        await identify("mtls-only", "w1", "global", None)
    with pytest.raises(Unauthorized, match="client certificate is required"):
        await identify("mtls-only", None, None, None)
    with pytest.raises(Unauthorized, match="issued for a worker token"):
        await identify("mtls-only", "w1", SHORT, None)


async def test_token_only_ignores_certificates() -> None:
    assert await identify("token-only", "w2", "global", "w1") == ("w2", None, "token")
    with pytest.raises(Unauthorized, match="send the worker token"):
        await identify("token-only", "w1", None, "w1")


async def test_short_lived_tokens_that_expired_or_belong_to_another() -> None:
    with pytest.raises(Unauthorized, match=r"has expired .* POST /_worker/auth/token"):
        await identify("mixed", "w1", SHORT_LIVED_TOKEN_PREFIX + "unknown", None)
    with pytest.raises(Unauthorized, match=r"issued to worker 'w1'.*for worker 'w2'"):
        await identify("mixed", "w2", SHORT, None)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="WORKER_AUTH_MODE='mtls'"):
        WorkerCredentials("global", None, mode="mtls")
