"""Jinja filters of the console: how times, durations and JSON are shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from jinja2 import Environment

__all__ = ["install_filters"]

_json = msgspec.json.Encoder(order="sorted")


def install_filters(environment: Environment) -> None:
    """Add the console's filters to ``environment``."""
    environment.filters["when"] = when
    environment.filters["pretty_json"] = pretty_json
    environment.filters["seconds"] = seconds
    environment.filters["brief_json"] = brief_json


def when(moment: datetime | None) -> str:
    """A UTC time to the second, as every page shows times (``2026-12-01 10:04:05``)."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty_json(value: Any) -> str:
    """Indented JSON of any value (escaped by the template like any text)."""
    return msgspec.json.format(_json.encode(msgspec.to_builtins(value)), indent=2).decode()


def seconds(value: float | None) -> str:
    """A duration for people: ``850 ms``, ``12.3 s``, ``4 min 10 s``."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def brief_json(value: Any, limit: int = 80) -> str:
    """Compact JSON of any value, cut to ``limit`` characters with an ellipsis (escaped as text)."""
    text = _json.encode(msgspec.to_builtins(value)).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"
