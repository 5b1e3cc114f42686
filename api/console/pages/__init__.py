"""The console's pages, one module each; ``PAGES`` lists every route handler they define."""

from __future__ import annotations

from typing import Any

from .analytics import ROUTES as ANALYTICS
from .batch import ROUTES as BATCH
from .job import ROUTES as JOB
from .job_actions import ROUTES as JOB_ACTIONS
from .jobs import ROUTES as JOBS
from .overview import ROUTES as OVERVIEW
from .retention import ROUTES as RETENTION
from .schedules import ROUTES as SCHEDULES
from .workers import ROUTES as WORKERS

__all__ = ["PAGES"]

PAGES: list[Any] = [
    *OVERVIEW,
    *JOBS,
    *JOB,
    *JOB_ACTIONS,
    *BATCH,
    *WORKERS,
    *SCHEDULES,
    *ANALYTICS,
    *RETENTION,
]
