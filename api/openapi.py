"""Each blueprint's own create operation in the OpenAPI document, ``initial_data`` typed by its input_schema.

Jobs of every blueprint are created by one route, ``POST /api/v1/jobs/{api_endpoint}``, and
it stays the only one: no handler is generated per blueprint. The document adds, for each
blueprint with an ``input_schema``, that route's operation at the blueprint's own path
(``POST /api/v1/jobs/orders``), whose body types ``initial_data`` by the schema. The schema's
definitions (``$defs``) become components named after the endpoint (``orders.Order``), and its
references are rewritten to point at them, as a reference in a component resolves against
the whole document.

The operations are added when the document is rendered (Litestar renders it once, on the
first request for it), not when the app is made: blueprints registered after ``create_app``
are documented too, and an app served without a lifespan gets them as well.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPI

from chronik.core.blueprint import Blueprint

from .schemas import ErrorBody

__all__ = ["CREATE_PATH", "BlueprintOpenAPIConfig", "add_create_operations"]

log = structlog.get_logger("chronik.api")

CREATE_PATH = "/api/v1/jobs/{api_endpoint}"
"""The create route's path as the OpenAPI document writes it."""

_COMPONENTS = "#/components/schemas/"
_DEFINITIONS = ("$defs", "definitions")  # 2019-09 and later; draft 7 and before
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]")  # what an OpenAPI component name may not hold

Endpoints = Callable[[], Mapping[str, Blueprint]]


@dataclasses.dataclass
class BlueprintOpenAPIConfig(OpenAPIConfig):
    """Litestar's ``OpenAPIConfig``, whose document also has each blueprint's create operation."""

    endpoints: Endpoints | None = None
    """The registered blueprints by ``api_endpoint``, read when the document is rendered."""

    def to_openapi_schema(self) -> OpenAPI:
        """The document Litestar fills in with the routes; it adds the blueprints' when rendered."""
        base = super().to_openapi_schema()
        values = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
        return _Document(**values, endpoints=self.endpoints)


@dataclasses.dataclass
class _Document(OpenAPI):
    endpoints: Endpoints | None = None

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        schema.pop("endpoints", None)
        if self.endpoints is not None:
            add_create_operations(schema, self.endpoints())
        return schema


def add_create_operations(document: dict[str, Any], endpoints: Mapping[str, Blueprint]) -> None:
    """Add ``POST /api/v1/jobs/{endpoint}`` of each blueprint with an ``input_schema`` to ``document``."""
    typed = sorted((endpoint, bp) for endpoint, bp in endpoints.items() if bp.input_json_schema is not None)
    if not typed:
        return
    paths: dict[str, Any] = document.setdefault("paths", {})
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    generic = paths.get(CREATE_PATH, {}).get("post")
    media = generic.get("requestBody", {}).get("content", {}).get("application/json", {}) if generic else {}
    body = _resolve(schemas, media)
    if generic is None or not isinstance(body.get("properties"), dict):
        return  # no client API served (ENABLE_CLIENT_API=false): nothing creates jobs here
    _add_error_body(schemas)
    for endpoint, blueprint in typed:
        assert blueprint.input_json_schema is not None
        path = f"/api/v1/jobs/{endpoint}"
        if path in paths:
            # A route of its own has this path, and the router prefers it to the create route.
            log.warning("blueprint_endpoint_shadowed", blueprint=blueprint.name, path=path)
            continue
        prefix = f"{_NOT_NAME.sub('_', endpoint)}."
        initial_data, components = _as_components(blueprint.input_json_schema, prefix)
        request = f"{prefix}CreateJobRequest"
        schemas.update(components)
        schemas[request] = {
            **body,
            "title": request,
            "properties": {**body["properties"], "initial_data": initial_data},
        }
        paths[path] = {"post": _operation(generic, blueprint, request)}


def _resolve(schemas: dict[str, Any], media: dict[str, Any]) -> dict[str, Any]:
    schema = media.get("schema", {})
    ref = schema.get("$ref", "")
    found = schemas.get(ref.removeprefix(_COMPONENTS), {}) if ref.startswith(_COMPONENTS) else schema
    return found if isinstance(found, dict) else {}


def _operation(generic: dict[str, Any], blueprint: Blueprint, request: str) -> dict[str, Any]:
    """The create operation of one blueprint: the generic one, without the path parameter."""
    refused = {
        "description": "INVALID_INPUT_ERROR: the body is malformed, or initial_data does not match the "
        "blueprint's input_schema; the message names the field by its JSON path ($.items[2].qty)",
        "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}ErrorBody"}}},
    }
    return {
        **generic,
        "summary": f"Create a job of {blueprint.name}",
        "description": blueprint.description or generic.get("description", ""),
        "operationId": f"CreateJob_{_NOT_NAME.sub('_', blueprint.api_endpoint)}",
        "parameters": [p for p in generic.get("parameters", ()) if p.get("in") != "path"],
        "requestBody": {
            "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}{request}"}}},
            "required": True,
        },
        "responses": {**generic.get("responses", {}), "400": refused},
    }


def _as_components(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``initial_data``'s schema in the document, and the components it refers to, named with ``prefix``."""
    root = copy.deepcopy(schema)
    lifted = {key: root.pop(key) for key in _DEFINITIONS if isinstance(root.get(key), dict)}
    names = {
        (key, name): f"{prefix}{_NOT_NAME.sub('_', name)}" for key, defs in lifted.items() for name in defs
    }
    whole = f"{prefix}input"

    def rewrite(ref: str) -> str:
        for (key, name), component in names.items():
            head = f"#/{key}/{name.replace('~', '~0').replace('/', '~1')}"
            if ref == head or ref.startswith(f"{head}/"):
                return f"{_COMPONENTS}{component}{ref.removeprefix(head)}"
        return f"{_COMPONENTS}{whole}{ref[1:]}" if ref == "#" or ref.startswith("#/") else ref

    components = {
        names[key, name]: _rewritten(definition, rewrite)
        for key, defs in lifted.items()
        for name, definition in defs.items()
    }
    root = _rewritten(root, rewrite)
    if set(root) == {"$ref"}:  # a Struct's schema: a reference to its definition, used as it is
        return root, components
    return {"$ref": f"{_COMPONENTS}{whole}"}, {**components, whole: root}


def _rewritten(value: Any, rewrite: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {
            key: rewrite(item) if key == "$ref" and isinstance(item, str) else _rewritten(item, rewrite)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rewritten(item, rewrite) for item in value]
    return value


def _add_error_body(schemas: dict[str, Any]) -> None:
    _refs, components = msgspec.json.schema_components([ErrorBody], ref_template=_COMPONENTS + "{name}")
    for name, schema in components.items():
        schemas.setdefault(name, schema)
