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
from chronik.core.wire import EventBody, HeartbeatBody, RegisterBody, ResultBody, ResultsBody

from .errors import STATUS_BY_CODE
from .schemas import ErrorBody

__all__ = [
    "CREATE_PATH",
    "OPERATION_ERRORS",
    "BlueprintOpenAPIConfig",
    "add_create_operations",
    "describe_errors",
]

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
        describe_errors(schema)
        _unions_as_any_of(schema)
        _add_worker_bodies(schema)
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


# The errors every guarded route can answer with: a bad request (a body, a query or path parameter;
# Litestar's own validation renders in the same shape), a missing or wrong token, a token without
# the right (a worker's id, a signature), a spent rate limit, and PostgreSQL out of reach.
_GUARDED = ("INVALID_INPUT_ERROR", "UNAUTHORIZED", "FORBIDDEN", "RATE_LIMITED", "DATABASE_UNAVAILABLE")
_GUARDED_PREFIXES = ("/api/v1/", "/_worker/")
_UNAVAILABLE = 503  # DATABASE_UNAVAILABLE: api/errors.py's answer to an outage; not a ChronikError code

OPERATION_ERRORS: dict[str, tuple[str, ...]] = {
    "POST /api/v1/jobs/{api_endpoint}": ("IDEMPOTENCY_KEY_REUSED", "QUOTA_EXCEEDED", "BLUEPRINT_ERROR"),
    "POST /api/v1/jobs/{job_id}/approval": ("JOB_NOT_AWAITING_APPROVAL", "INVALID_DECISION"),
    "POST /api/v1/jobs/{job_id}/cancel": ("JOB_NOT_CANCELLABLE",),
    "POST /api/v1/jobs/{job_id}/retry": ("JOB_NOT_RETRYABLE",),
    "POST /api/v1/jobs/{job_id}/fork": ("JOB_NOT_CANCELLABLE", "QUOTA_EXCEEDED"),
    "GET /api/v1/jobs/{job_id}": ("ARCHIVE_FAILED",),
    "GET /api/v1/jobs/{job_id}/history": ("ARCHIVE_FAILED",),
    "GET /api/v1/jobs/{job_id}/events": ("ARCHIVE_FAILED",),
    "GET /api/v1/jobs/{job_id}/files/upload": ("FILES_NOT_CONFIGURED", "JOB_ENDED"),
    "PUT /api/v1/jobs/{job_id}/files/content/{filename}": ("FILES_NOT_CONFIGURED", "JOB_ENDED"),
    "GET /api/v1/jobs/{job_id}/files/download/{filename}": ("FILES_NOT_CONFIGURED",),
    "GET /api/v1/blueprints/{name}/graph": ("BLUEPRINT_NOT_FOUND",),
    "POST /api/v1/admin/reload-workers": ("CONFIG_ERROR",),
    "PATCH /_worker/workers/{worker_id}": ("WORKER_NOT_FOUND",),
    "GET /_worker/workers/{worker_id}/tasks/next": ("WORKER_NOT_FOUND",),
    "POST /_worker/tasks/result": ("TASK_NOT_FOUND", "TASK_NOT_HELD"),
    "POST /_worker/events": ("TASK_NOT_FOUND", "TASK_NOT_HELD"),
    "POST /_public/webhooks/approval/{job_id}": (
        "INVALID_INPUT_ERROR",
        "UNAUTHORIZED",
        "JOB_NOT_FOUND",
        "JOB_NOT_AWAITING_APPROVAL",
        "INVALID_DECISION",
    ),
}
"""The errors of each operation beyond those of every guarded route (and a job id's, a blueprint
endpoint's ``NOT_FOUND``), by ``METHOD path`` as the document writes it."""


def describe_errors(document: dict[str, Any]) -> None:
    """Give every operation the error answers it can give, each in chronik's one shape (``ErrorBody``).

    Litestar documents a 400 of its own shape (``status_code``, ``detail``), which is not what
    ``api/errors.py`` answers, and no other error. Each status gets one response, whose description
    lists the codes it carries; the fuzz test (tests/fuzz) fails on any status not declared here.
    """
    paths: dict[str, Any] = document.get("paths", {})
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    added = False
    for path, operations in paths.items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = list(_GUARDED) if path.startswith(_GUARDED_PREFIXES) else []
            if "{job_id}" in path:
                codes.append("JOB_NOT_FOUND")
            if "{api_endpoint}" in path:
                codes.append("BLUEPRINT_NOT_FOUND")
            codes.extend(OPERATION_ERRORS.get(f"{method.upper()} {path}", ()))
            by_status: dict[int, list[str]] = {}
            for code in dict.fromkeys(codes):
                by_status.setdefault(STATUS_BY_CODE.get(code, _UNAVAILABLE), []).append(code)
            responses: dict[str, Any] = operation["responses"]
            for key in [key for key in responses if key.startswith(("4", "5"))]:
                del responses[key]  # Litestar's own shape; each is described again below
            for status, named in sorted(by_status.items()):
                responses[str(status)] = {
                    "description": ", ".join(named),
                    "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}ErrorBody"}}},
                }
                added = True
    if added:
        _add_error_body(schemas)


def _unions_as_any_of(document: dict[str, Any]) -> None:
    """A handler's union return type is ``anyOf``, not Litestar's ``oneOf``: a Python union's members
    may overlap (``JobView | dict[str, Any]``: a whole view is an object too), and ``oneOf`` then
    refuses the very answers the route gives."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for response in responses.values():
                for media in response.get("content", {}).values():
                    schema = media.get("schema", {})
                    if "oneOf" in schema:
                        schema["anyOf"] = schema.pop("oneOf")


_WORKER_BODIES: dict[str, type[msgspec.Struct]] = {
    "POST /_worker/workers/register": RegisterBody,
    "PATCH /_worker/workers/{worker_id}": HeartbeatBody,
    "POST /_worker/tasks/result": ResultBody,
    "POST /_worker/tasks/results": ResultsBody,
    "POST /_worker/events": EventBody,
}
"""The worker routes' messages: their handlers read the body themselves (a signature covers it as
sent), so Litestar sees no body to document."""


def _add_worker_bodies(document: dict[str, Any]) -> None:
    paths: dict[str, Any] = document.get("paths", {})
    present: dict[str, dict[str, Any]] = {}
    for key in _WORKER_BODIES:
        method, path = key.split(" ", 1)
        operation = paths.get(path, {}).get(method.lower())
        if operation is not None:
            present[key] = operation
    if not present:
        return
    refs, components = msgspec.json.schema_components(
        [_WORKER_BODIES[key] for key in present], ref_template=_COMPONENTS + "{name}"
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        schemas.setdefault(name, schema)
    for (_key, operation), ref in zip(present.items(), refs, strict=True):
        operation["requestBody"] = {"content": {"application/json": {"schema": ref}}, "required": True}
