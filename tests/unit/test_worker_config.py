"""workers.toml: tokens per worker, and errors that name the file, the entry and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronik.adapters.config import load_worker_tokens
from chronik.api.worker_auth import WorkerCredentials
from chronik.core.errors import ConfigError, Unauthorized


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
