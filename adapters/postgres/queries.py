"""Named SQL blocks from ``chronik.sql/queries/*.sql``, loaded once.

Each block starts with ``-- name: <name>`` followed by comment lines that say
what it does and list its positional parameters.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

__all__ = ["QUERIES", "load_queries"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries() -> dict[str, LiteralString]:
    """Parse every query file; a name defined twice is an error."""
    queries: dict[str, LiteralString] = {}
    folder = resources.files("chronik.sql") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        parts = _NAME.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice (again in {entry.name})")
            queries[name] = cast(LiteralString, body.strip())
    return queries


QUERIES = load_queries()
