"""chronik: an event-sourced workflow orchestrator on PostgreSQL alone.

```python
from chronik import Blueprint, Engine
```
"""

from __future__ import annotations

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

from .engine import Engine
from .settings import Settings
from .worker import Result, TaskError, Worker

__all__ = [
    "Actions",
    "Blueprint",
    "BlueprintError",
    "BlueprintNotFound",
    "ChronikError",
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
