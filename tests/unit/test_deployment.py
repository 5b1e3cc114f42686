"""compose.yaml and the settings: each command is a real chronik command, each variable one chronik reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from chronik.cli import build_parser
from chronik.settings import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]


def chronik_services() -> dict[str, dict[str, object]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def test_compose_runs_two_orchestrators_and_a_worker() -> None:
    commands = [spec["command"][1] for spec in chronik_services().values()]  # type: ignore[index]
    assert sorted(commands) == ["serve", "serve", "worker"]


@pytest.mark.parametrize("service", sorted(chronik_services()))
def test_each_command_parses_and_each_setting_is_read(service: str) -> None:
    spec = chronik_services()[service]
    command = spec["command"]
    assert isinstance(command, list) and command[0] == "chronik"
    build_parser().parse_args(command[1:])  # exits (fails the test) on an unknown command or option
    environment = spec.get("environment") or {}
    assert isinstance(environment, dict)
    unknown = sorted(set(environment) - set(ENVIRONMENT))
    assert not unknown, f"{service} sets variables chronik does not read: {unknown}"


def test_every_variable_read_is_listed_and_documented() -> None:
    source = "\n".join(
        p.read_text() for folder in ("chronik", "adapters") for p in (ROOT / folder).rglob("*.py")
    )
    readers = r"(?:env\.get|os\.environ\.get|_number\(\s*env,|_flag\(\s*env,|_optional\(\s*env,)"
    read = set(re.findall(readers + r'\(?\s*"([A-Z][A-Z0-9_]+)"', source))
    assert read == set(ENVIRONMENT), read ^ set(ENVIRONMENT)
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(name for name in ENVIRONMENT if f"`{name}`" not in operations)
    assert not missing, f"docs/operations.md does not describe {missing}"
