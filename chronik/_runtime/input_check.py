"""Checking a job's ``initial_data`` against its blueprint's ``input_schema``, on every path that creates one.

A ``msgspec.Struct`` is checked by ``msgspec.convert``; a JSON Schema by the ``jsonschema``
package, which is why this lives here and not in ``core`` (stdlib and msgspec only). The
first problem is reported with its JSON path (``$.items[2].qty``) and what was expected.
Nothing is converted: the job keeps ``initial_data`` exactly as it was sent, plain JSON.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.validators import Draft202012Validator, validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from chronik.core.actions import RunBlueprint
from chronik.core.blueprint import Blueprint
from chronik.core.decide import HandlerOutcome
from chronik.core.errors import BlueprintError, InvalidInitialData
from chronik.core.events import ErrorInfo

__all__ = ["check_child_input", "check_initial_data", "check_input_schema"]

# A compiled validator per blueprint object, so that a create does not build one. Weak keys: a
# blueprint that is dropped (a test's, a reloaded app's) takes its validator with it.
_validators: weakref.WeakKeyDictionary[Blueprint, Any] = weakref.WeakKeyDictionary()

_MISSING = re.compile(r"^Object missing required field `(?P<field>.+)`$")


def check_input_schema(blueprint: Blueprint) -> None:
    """Refuse a JSON Schema ``input_schema`` that is not a valid schema, with a ``BlueprintError``.

    The schema is checked against its dialect's meta-schema (its ``$schema``, else Draft 2020-12),
    and every ``$ref`` must resolve inside it: chronik fetches no schema from elsewhere. A Struct
    was checked when the blueprint was made (it has a JSON Schema, and is not ``array_like``).
    """
    if isinstance(blueprint.input_schema, dict):
        _validator(blueprint)


def check_initial_data(blueprint: Blueprint, initial_data: Mapping[str, Any] | None) -> None:
    """Raise ``InvalidInitialData`` (``INVALID_INPUT_ERROR``, 400) when ``initial_data`` does not fit."""
    schema = blueprint.input_schema
    if schema is None:
        return
    data = _as_stored(initial_data)
    if isinstance(schema, dict):
        error = best_match(_validator(blueprint).iter_errors(data))
        if error is None:
            return
        path, problem = _jsonschema_problem(error)
    else:
        try:
            msgspec.convert(data, schema)
            return
        except msgspec.ValidationError as exc:
            path, problem = _msgspec_problem(str(exc))
    raise InvalidInitialData(
        f"initial_data of blueprint {blueprint.name!r} at {path}: {problem}",
        blueprint=blueprint.name,
        path=path,
    )


def check_child_input(outcome: HandlerOutcome, blueprints: Mapping[str, Blueprint]) -> HandlerOutcome:
    """The handler's outcome, or its failure when it ran a child job whose ``initial_data`` does not fit.

    The child is refused before anything is written, and the parent's step fails as if its
    handler had raised the error: ``HandlerFailed`` with ``INVALID_INPUT_ERROR``, naming the field.
    """
    action = outcome.action
    if not isinstance(action, RunBlueprint) or action.blueprint not in blueprints:
        return outcome  # an unknown blueprint is the decider's to refuse
    try:
        check_initial_data(blueprints[action.blueprint], action.initial_data)
    except InvalidInitialData as exc:
        error = ErrorInfo(code=exc.code, type=type(exc).__name__, message=f"run_blueprint: {exc.message}")
        return HandlerOutcome(state=outcome.state, error=error)
    return outcome


def _as_stored(initial_data: Mapping[str, Any] | None) -> Any:
    """``initial_data`` as the job will hold it, through JSON (a ``datetime`` from Python is its string)."""
    data = {} if initial_data is None else initial_data
    try:
        return msgspec.json.decode(msgspec.json.encode(data))
    except (TypeError, msgspec.EncodeError):
        return data  # not JSON at all: the create refuses it on its own, after this check


def _validator(blueprint: Blueprint) -> Any:
    schema = blueprint.input_schema
    assert isinstance(schema, dict), "only a JSON Schema input_schema has a validator"
    found = _validators.get(blueprint)
    if found is None:
        where = f"blueprint {blueprint.name!r}: input_schema"
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise BlueprintError(
                f"{where} is not a valid JSON Schema: at {exc.json_path}: {exc.message}"
            ) from None
        _check_references(schema, where)
        found = _validators[blueprint] = cls(schema)
    return found


def _check_references(schema: dict[str, Any], where: str) -> None:
    """Every ``$ref`` must resolve within the schema, or each create would fail with a server error."""
    nodes = list(_nodes(schema))
    if any("$id" in node for node in nodes[1:]):
        return  # an embedded resource changes the base of the references under it: left to jsonschema
    specification = specification_with(str(schema.get("$schema", "")), default=DRAFT202012)
    resolver = Registry().with_resource("", specification.create_resource(schema)).resolver()
    for ref in (node["$ref"] for node in nodes if isinstance(node.get("$ref"), str)):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise BlueprintError(
                f"{where}: $ref {ref!r} does not resolve inside the schema; chronik fetches no other "
                "schema, so put what it refers to under $defs and refer to it as '#/$defs/...'"
            ) from None


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in a JSON document, the root first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def _jsonschema_problem(error: ValidationError) -> tuple[str, str]:
    path: str = error.json_path
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in error.validator_value if name not in error.instance), None)
        if isinstance(missing, str):
            return f"{path}.{missing}", "a required field is missing"
    return path, str(error.message)


def _msgspec_problem(message: str) -> tuple[str, str]:
    """The path and the problem of a msgspec message such as ``Expected `int`, got `str` - at `$.qty```."""
    problem, _, where = message.partition(" - at `")
    path = where.removesuffix("`") or "$"
    if missing := _MISSING.match(problem):
        return f"{path}.{missing['field']}", "a required field is missing"
    return path, problem
