"""mypy passes on the checked-out package, as ``python -m tests.typecheck`` runs it (strict)."""

from __future__ import annotations

from pathlib import Path

from tests.typecheck import run, sources


def test_each_module_is_checked_in_its_own_file() -> None:
    found = {source.module: Path(source.path or "").resolve() for source in sources()}
    root = Path(__file__).resolve().parents[2]
    assert found["chronik.core.events"] == root / "core" / "events.py"
    assert found["chronik.adapters.postgres.database"] == root / "adapters" / "postgres" / "database.py"
    assert found["chronik.cli"] == root / "chronik" / "cli" / "__init__.py"


def test_mypy_finds_no_errors() -> None:
    messages, status = run()
    assert status == 0, "\n".join(messages)
