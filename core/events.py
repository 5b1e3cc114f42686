"""The event types of a job's stream.

Each event is a frozen msgspec Struct tagged by an explicit name, so renaming or
moving a class never changes what is stored. Events evolve only by appending
fields with defaults; history is never rewritten. The time an event happened is
part of the event (``at``), which keeps the fold pure: replaying the same events
gives the same state, byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "ErrorInfo",
    "Event",
    "HandlerFailed",
    "JobCancelled",
    "JobCreated",
    "JobFailed",
    "JobFinished",
    "StateEntered",
    "decode_event",
    "encode_event_data",
]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What went wrong, as stored in events and shown to clients."""

    code: str
    """A machine-readable code, e.g. ``HANDLER_ERROR`` or ``FAILURE_STATE``."""
    message: str
    """What happened, for a person."""
    type: str | None = None
    """The Python exception type, when an exception caused it."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event; ``at`` is when it happened (UTC)."""

    at: datetime


class JobCreated(Event, frozen=True, tag="JobCreated"):
    """A client created the job; it starts in ``start_state``."""

    job_id: UUID
    blueprint: str
    start_state: str
    initial_data: dict[str, Any] = {}


class StateEntered(Event, frozen=True, tag="StateEntered"):
    """The handler of ``from_state`` moved the job to ``state``.

    ``updates`` and ``removed`` are the changes the handler made to
    ``state_history`` (top-level keys), recorded so that the fold can repeat them.
    """

    state: str
    from_state: str
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class HandlerFailed(Event, frozen=True, tag="HandlerFailed"):
    """The handler of ``state`` raised or misused its actions."""

    state: str
    error: ErrorInfo
    traceback: str = ""


class JobFinished(Event, frozen=True, tag="JobFinished"):
    """The job ended in the end state ``state``."""

    state: str
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class JobFailed(Event, frozen=True, tag="JobFailed"):
    """The job ended as failed, in ``state``, for ``error``."""

    state: str
    error: ErrorInfo
    updates: dict[str, Any] = {}
    removed: tuple[str, ...] = ()


class JobCancelled(Event, frozen=True, tag="JobCancelled"):
    """Someone cancelled the job."""

    reason: str = ""
    actor: str = ""


AnyEvent = JobCreated | StateEntered | HandlerFailed | JobFinished | JobFailed | JobCancelled

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (JobCreated, StateEntered, HandlerFailed, JobFinished, JobFailed, JobCancelled)
}
"""Every event class by its stored tag; a snapshot test pins this list."""

_encoder = msgspec.json.Encoder()
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    tag: msgspec.json.Decoder(cls) for tag, cls in EVENT_TYPES.items()
}


def encode_event_data(event: Event) -> bytes:
    """Encode an event for the ``data`` column; its tag goes in the ``type`` column too."""
    return _encoder.encode(event)


def decode_event(type_: str, data: bytes | str) -> AnyEvent | None:
    """Decode one stored event by its ``type`` column; ``None`` when the type is unknown.

    The caller turns ``None`` into ``UnknownEventType`` with the row's position.
    """
    decoder = _decoders.get(type_)
    if decoder is None:
        return None
    event: AnyEvent = decoder.decode(data)
    return event
