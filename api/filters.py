"""The job list's filters, from a query string (``GET /api/v1/jobs``) or a body (batch actions).

Besides the named ones (``status``, ``blueprint``, ``state``, ``created_after``,
``created_before``, ``id_prefix``), ``data.<key>=<value>`` and ``metadata.<key>=<value>``
pick the jobs whose ``initial_data`` or ``metadata`` has ``<key>`` set to ``<value>``:
the value as JSON when it parses (``data.order=7`` is the number, ``data.tags=["a"]``
contains ``"a"``), else as a string (``data.region=eu``); ``data.order="7"`` is the string.
Several such parameters must all hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from chronik.core.errors import InvalidInput
from chronik.core.records import JobFilter, id_range

__all__ = ["BatchFilter", "containment", "job_filter"]

_PREFIXES = ("data", "metadata")


class BatchFilter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``filter`` of a batch action: the list's filters, ``data`` and ``metadata`` as objects."""

    status: str | None = None
    blueprint: str | None = None
    state: str | None = None
    """The job's current state."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_prefix: str | None = None
    """Hex digits the job's id starts with (dashes ignored)."""
    data: dict[str, Any] | None = None
    """Keys and values the job's ``initial_data`` must contain (JSON containment)."""
    metadata: dict[str, Any] | None = None
    """Keys and values the job's ``metadata`` must contain (JSON containment)."""

    def to_filter(self) -> JobFilter:
        """The filter as the engine takes it; ``InvalidInput`` for a bad time or id prefix."""
        return job_filter(
            blueprint=self.blueprint,
            status=self.status,
            state=self.state,
            created_after=self.created_after,
            created_before=self.created_before,
            id_prefix=self.id_prefix,
            data=self.data or None,
            metadata=self.metadata or None,
        )


def job_filter(
    *,
    blueprint: str | None = None,
    status: str | None = None,
    state: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    id_prefix: str | None = None,
    data: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> JobFilter:
    """A ``JobFilter``, checked: times need a zone, an id prefix is hex digits."""
    for name, moment in (("created_after", created_after), ("created_before", created_before)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone, e.g. 2026-11-23T10:00:00Z")
    if id_prefix is not None:
        id_range(id_prefix)  # raises InvalidInput
    return JobFilter(
        blueprint=blueprint,
        status=status,
        state=state,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
        data=data,
        metadata=metadata,
    )


def containment(pairs: Iterable[tuple[str, str]], prefix: str) -> dict[str, Any] | None:
    """The object that query parameters ``<prefix>.<key>=<value>`` ask a job's field to contain.

    ``None`` when there are none; ``InvalidInput`` for an empty key or a key given twice.
    """
    assert prefix in _PREFIXES
    found: dict[str, Any] = {}
    for name, raw in pairs:
        head, dot, key = name.partition(".")
        if head != prefix or not dot:
            continue
        if not key:
            raise InvalidInput(f"{name}= needs a key after the dot, e.g. {prefix}.customer=acme")
        if key in found:
            raise InvalidInput(f"{name} is given twice; a key can hold one value")
        found[key] = _value(raw)
    return found or None


def _value(raw: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw
