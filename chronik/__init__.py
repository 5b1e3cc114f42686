"""chronik: an event-sourced workflow orchestrator on PostgreSQL alone.

```python
from chronik import Blueprint, Engine, Worker, Client
```

The pure names (blueprints, actions, states, errors) load with the package; ``Engine``,
``Settings``, the worker SDK and the client load on first use, so that a program that only
creates jobs with ``Client`` never imports the server, its database drivers or its S3 library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chronik.core.actions import Actions
from chronik.core.blueprint import Blueprint
from chronik.core.errors import (
    BlueprintError,
    BlueprintNotFound,
    ChronikError,
    JobNotCancellable,
    JobNotFound,
    VersionConflict,
)
from chronik.core.injection import JobContext
from chronik.core.state import JobState, JobStatus

if TYPE_CHECKING:
    from .client import AsyncClient, ChronikClientError, Client
    from .engine import Engine
    from .settings import Settings
    from .worker import Result, TaskError, Worker

__all__ = [
    "Actions",
    "AsyncClient",
    "Blueprint",
    "BlueprintError",
    "BlueprintNotFound",
    "ChronikClientError",
    "ChronikError",
    "Client",
    "Engine",
    "JobContext",
    "JobNotCancellable",
    "JobNotFound",
    "JobState",
    "JobStatus",
    "Result",
    "Settings",
    "TaskError",
    "VersionConflict",
    "Worker",
]

_LAZY = {
    "AsyncClient": "chronik.client",
    "ChronikClientError": "chronik.client",
    "Client": "chronik.client",
    "Engine": "chronik.engine",
    "Result": "chronik.worker",
    "Settings": "chronik.settings",
    "TaskError": "chronik.worker",
    "Worker": "chronik.worker",
}
"""Names loaded on first use, and the module of each (PEP 562)."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chronik' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
