"""The blueprints an instance runs, by name and by the API endpoint that creates their jobs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

import structlog

from chronik.core.blueprint import Blueprint
from chronik.core.errors import BlueprintError, BlueprintNotFound

from .input_check import check_input_schema

__all__ = ["BlueprintRegistry"]

log = structlog.get_logger("chronik.engine")


class BlueprintRegistry(Mapping[str, Blueprint]):
    """Blueprints by name (a read-only mapping), each with an ``api_endpoint`` of its own."""

    def __init__(self) -> None:
        self._by_name: dict[str, Blueprint] = {}
        self._by_endpoint: dict[str, Blueprint] = {}

    def register(self, blueprint: Blueprint) -> None:
        """Validate ``blueprint`` and add it; a ``BlueprintError`` names what is wrong."""
        for warning in blueprint.validate():
            log.warning("blueprint_unchecked", detail=warning)
        check_input_schema(blueprint)
        if blueprint.name in self._by_name and self._by_name[blueprint.name] is not blueprint:
            raise BlueprintError(f"a blueprint named {blueprint.name!r} is already registered")
        other = self._by_endpoint.get(blueprint.api_endpoint)
        if other is not None and other is not blueprint:
            raise BlueprintError(
                f"blueprint {blueprint.name!r}: api_endpoint {blueprint.api_endpoint!r} is already used by "
                f"blueprint {other.name!r}"
            )
        self._by_name[blueprint.name] = blueprint
        self._by_endpoint[blueprint.api_endpoint] = blueprint

    @property
    def endpoints(self) -> Mapping[str, Blueprint]:
        """The blueprints by ``api_endpoint`` (``POST /api/v1/jobs/{endpoint}``)."""
        return MappingProxyType(self._by_endpoint)

    def for_endpoint(self, endpoint: str) -> Blueprint:
        """The blueprint whose jobs are created at ``POST /api/v1/jobs/{endpoint}``."""
        blueprint = self._by_endpoint.get(endpoint)
        if blueprint is None:
            known = ", ".join(sorted(self._by_endpoint)) or "none"
            raise BlueprintNotFound(f"no blueprint has the api_endpoint {endpoint!r} (known: {known})")
        return blueprint

    def named(self, name: str) -> Blueprint:
        """The blueprint ``name``; ``BlueprintNotFound`` (with the known names) when there is none."""
        blueprint = self._by_name.get(name)
        if blueprint is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise BlueprintNotFound(f"no blueprint is named {name!r} (known: {known})")
        return blueprint

    def __getitem__(self, name: str) -> Blueprint:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
