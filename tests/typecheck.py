"""Type-check the repository as checked out: ``python -m tests.typecheck [MYPY OPTIONS]``.

The distribution assembles ``chronik`` from several top-level folders (``core/`` is
``chronik.core``, ``adapters/`` is ``chronik.adapters``, ...: setuptools ``package-dir``
in pyproject.toml). mypy names a file after its folders and has no such mapping
(python/mypy#10564): given ``core/events.py`` it checks a module ``core.events``, and
through a tree of symlinks it reports the link's path, never the file's. So this hands
mypy each file of the distribution with its own path *and* its module name, both read
from the same ``package-dir`` and ``packages`` tables the build uses: errors name the
files you edit, and a new folder needs no change here. The settings are
``[tool.mypy]`` in pyproject.toml; options and files given here (``tests``) are added.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

__all__ = ["ROOT", "run", "sources"]

ROOT = Path(__file__).resolve().parents[1]


def sources(root: Path = ROOT) -> list[BuildSource]:
    """Every module of the distribution: its file (relative to the working directory) and its name."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools.get("package-dir", {})
    found = []
    for package in setuptools["packages"]:
        folder = root / _folder_of(package, package_dir)
        for path in sorted(folder.glob("*.py")):
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found.append(BuildSource(os.path.relpath(path), module))
    return found


def _folder_of(package: str, package_dir: dict[str, str]) -> str:
    # setuptools' rule: the longest mapped prefix, then the remaining names as folders.
    parts = package.split(".")
    for cut in range(len(parts), -1, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return "/".join([package_dir[prefix], *parts[cut:]]).lstrip("/")
    return "/".join(parts)


def run(args: Sequence[str] = ()) -> tuple[list[str], int]:
    """mypy's messages on the distribution, its summary last, and its exit status (0: no errors)."""
    config = ["--config-file", str(ROOT / "pyproject.toml")]
    named, options = process_options([*config, *args], require_targets=False)
    checked = sources() + named
    try:
        result = build.build(checked, options)
        result.manager.metastore.close()
        messages, blocked = result.errors, False
    except CompileError as exc:
        messages, blocked = list(exc.messages), True
    errors = [m for m in messages if ": error:" in m]
    if errors or blocked:
        files = {m.split(":", 1)[0] for m in errors}
        summary = (
            f"Found {len(errors)} error{'s' * (len(errors) != 1)} in {len(files)} "
            f"file{'s' * (len(files) != 1)} (checked {len(checked)} source files)"
        )
        return [*messages, summary], 2 if blocked else 1
    return [*messages, f"Success: no issues found in {len(checked)} source files"], 0


def main() -> None:
    """Print mypy's messages and exit with its status."""
    messages, status = run(sys.argv[1:])
    print("\n".join(messages))
    sys.exit(status)


if __name__ == "__main__":
    main()
