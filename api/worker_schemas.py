"""Bodies of the worker protocol (Avtomatika's ``rxon`` 1.0b17 wire format).

Workers send more fields than chronik reads; unknown fields are accepted and
ignored, as the protocol expects. Fields the official SDK leaves out when they
hold their default (``status`` of a successful result) get that default here.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = ["EventBody", "HeartbeatBody", "RegisterBody", "ResultBody", "SkillInfo", "TaskErrorBody"]


class SkillInfo(msgspec.Struct, kw_only=True):
    """One skill a worker offers; tasks are routed by its ``name``."""

    name: str
    type: str | None = None


class RegisterBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/workers/register``."""

    worker_id: str
    worker_type: str = "generic"
    supported_skills: list[SkillInfo] = []
    available_skills: list[str] = []
    task_types: list[str] = []
    """chronik's SDK names its task types here; Avtomatika's names skills in ``supported_skills``."""
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    resources: dict[str, Any] = {}
    capabilities: dict[str, Any] = {}

    def all_task_types(self) -> list[str]:
        """Every task type the worker can run."""
        names = [skill.name for skill in self.supported_skills] + self.available_skills + self.task_types
        return sorted(set(names))


class HeartbeatBody(msgspec.Struct, kw_only=True):
    """``PATCH /_worker/workers/{worker_id}``; may be empty."""

    worker_id: str | None = None
    status: str | None = None
    current_tasks: list[str] | None = None
    """The attempts the worker runs; only their leases are extended when it is sent."""


class TaskErrorBody(msgspec.Struct, kw_only=True):
    """A failed result's error."""

    code: str = "TRANSIENT_ERROR"
    message: str = ""
    details: Any = None


class ResultBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/tasks/result``."""

    task_id: str
    job_id: str | None = None
    worker_id: str | None = None
    status: str = "success"
    data: Any = None
    error: TaskErrorBody | None = None
    files: list[str] = []
    """Object keys the task stored in its job's folder (``task_files``), recorded in the history."""


class EventBody(msgspec.Struct, kw_only=True):
    """``POST /_worker/events``: progress (``event_type="progress"``) or a custom event."""

    event_type: str
    worker_id: str | None = None
    event_id: str | None = None
    payload: dict[str, Any] = {}
    target_task_id: str | None = None
    origin_task_id: str | None = None
    target_job_id: str | None = None
