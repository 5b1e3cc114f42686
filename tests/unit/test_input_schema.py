"""Input schemas: a blueprint declares the shape of ``initial_data``, checked at every create."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import pytest

from chronik._runtime.input_check import check_child_input, check_initial_data, check_input_schema
from chronik._runtime.registry import BlueprintRegistry
from chronik._runtime.scheduler import check_blueprints
from chronik.adapters.config import ScheduleEntry
from chronik.api.openapi import CREATE_PATH, add_create_operations
from chronik.core.actions import RunBlueprint, TransitionTo
from chronik.core.blueprint import Blueprint
from chronik.core.decide import HandlerOutcome
from chronik.core.errors import BlueprintError, ConfigError, InvalidInitialData, InvalidInput


class Item(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    qty: Annotated[int, msgspec.Meta(ge=1)]


class Order(msgspec.Struct, forbid_unknown_fields=True):
    customer: str
    items: list[Item]
    note: str = ""


ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer": {"type": "string"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "note": {"type": "string"},
    },
    "required": ["customer", "items"],
    "additionalProperties": False,
    "$defs": {
        "Item": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            "required": ["sku", "qty"],
        }
    },
}

GOOD = {"customer": "ada", "items": [{"sku": "mug", "qty": 2}, {"sku": "tote", "qty": 1}]}


def orders(input_schema: Any, name: str = "orders") -> Blueprint:
    bp = Blueprint(name, input_schema=input_schema)

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def refusal(bp: Blueprint, data: dict[str, Any] | None) -> InvalidInitialData:
    with pytest.raises(InvalidInitialData) as refused:
        check_initial_data(bp, data)
    return refused.value


# -- declaring a schema ------------------------------------------------------------------------


def test_a_struct_is_kept_with_its_json_schema() -> None:
    bp = orders(Order)
    assert bp.input_schema is Order
    assert bp.input_json_schema == msgspec.json.schema(Order)


def test_a_json_schema_is_copied_so_later_changes_to_the_dict_change_nothing() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    bp = orders(schema)
    schema["properties"] = {}
    assert (
        bp.input_schema
        == bp.input_json_schema
        == {"type": "object", "properties": {"n": {"type": "integer"}}}
    )


def test_no_schema_accepts_anything() -> None:
    bp = orders(None)
    assert bp.input_schema is None and bp.input_json_schema is None
    check_initial_data(bp, {"anything": [1, "two"]})


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        (42, "must be a msgspec.Struct type or a JSON Schema dict, got int"),
        ("Order", "must be a msgspec.Struct type or a JSON Schema dict, got str"),
        (Order(customer="a", items=[]), "got Order"),
        ({"default": object()}, "a JSON Schema dict must be JSON"),
    ],
)
def test_anything_else_is_refused_when_the_blueprint_is_made(schema: Any, fragment: str) -> None:
    with pytest.raises(BlueprintError, match="blueprint 'orders': input_schema") as refused:
        Blueprint("orders", input_schema=schema)
    assert fragment in refused.value.message


def test_an_array_like_struct_is_refused_as_initial_data_is_an_object() -> None:
    class Pair(msgspec.Struct, array_like=True):
        a: int
        b: int

    with pytest.raises(BlueprintError, match="cannot be array_like"):
        Blueprint("pairs", input_schema=Pair)


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "objekt"}, "is not a valid JSON Schema: at $.type:"),
        (
            {"properties": {"n": {"minimum": "one"}}},
            "at $.properties.n.minimum: 'one' is not of type 'number'",
        ),
        ({"required": "customer"}, "at $.required:"),
        ({"$ref": "#/$defs/Missing"}, "$ref '#/$defs/Missing' does not resolve inside the schema"),
        ({"$ref": "https://example.com/order.json"}, "chronik fetches no other schema"),
    ],
)
def test_a_bad_json_schema_is_refused_at_registration(schema: dict[str, Any], fragment: str) -> None:
    bp = orders(schema)
    with pytest.raises(BlueprintError) as refused:
        BlueprintRegistry().register(bp)
    assert refused.value.message.startswith("blueprint 'orders': input_schema")
    assert fragment in refused.value.message


def test_a_schema_of_another_draft_is_checked_by_its_own_rules() -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"Qty": {"type": "integer", "exclusiveMinimum": 0}},
        "properties": {"qty": {"$ref": "#/definitions/Qty"}},
    }
    bp = orders(draft7)
    check_input_schema(bp)
    check_initial_data(bp, {"qty": 3})
    assert refusal(bp, {"qty": 0}).path == "$.qty"


# -- checking initial_data -----------------------------------------------------------------------

BOTH = pytest.mark.parametrize("schema", [Order, ORDER_SCHEMA], ids=["struct", "json_schema"])


@BOTH
def test_good_input_passes_and_is_left_as_sent(schema: Any) -> None:
    data = {"customer": "ada", "items": [{"sku": "mug", "qty": 2}]}
    check_initial_data(orders(schema), data)
    assert data == {"customer": "ada", "items": [{"sku": "mug", "qty": 2}]}  # no defaults filled in


@BOTH
def test_a_wrong_type_deep_down_is_named_by_its_path(schema: Any) -> None:
    data = {"customer": "ada", "items": [*GOOD["items"], {"sku": "lamp", "qty": "two"}]}
    refused = refusal(orders(schema), data)
    assert refused.path == "$.items[2].qty"
    assert refused.code == "INVALID_INPUT_ERROR" and isinstance(refused, InvalidInput)
    assert refused.blueprint == "orders"
    assert refused.message.startswith("initial_data of blueprint 'orders' at $.items[2].qty: ")
    expected = "Expected `int`, got `str`" if schema is Order else "'two' is not of type 'integer'"
    assert refused.message.endswith(expected)


@BOTH
def test_a_broken_constraint_says_what_was_expected(schema: Any) -> None:
    refused = refusal(orders(schema), {"customer": "ada", "items": [{"sku": "mug", "qty": 0}]})
    assert refused.path == "$.items[0].qty"
    assert ">= 1" in refused.message or "minimum of 1" in refused.message


@BOTH
@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"items": []}, "$.customer"),
        ({"customer": "ada", "items": [{"qty": 1}]}, "$.items[0].sku"),
        (None, "$.customer"),
        ({}, "$.customer"),
    ],
)
def test_a_missing_field_is_named_by_its_own_path(
    schema: Any, data: dict[str, Any] | None, path: str
) -> None:
    refused = refusal(orders(schema), data)
    assert refused.path == path
    assert refused.message.endswith(f"at {path}: a required field is missing")


@BOTH
def test_an_unknown_field_is_refused_when_the_schema_forbids_it(schema: Any) -> None:
    refused = refusal(orders(schema), {**GOOD, "coupon": "X"})
    assert refused.path == "$"
    assert "coupon" in refused.message


# -- child jobs and schedules --------------------------------------------------------------------


def test_a_child_with_bad_input_fails_the_parents_step() -> None:
    blueprints = {"orders": orders(Order)}
    bad = HandlerOutcome(
        state="order",
        action=RunBlueprint(blueprint="orders", initial_data={"items": []}, transitions={"success": "done"}),
        updates={"tried": True},
    )
    failed = check_child_input(bad, blueprints)
    assert failed.state == "order" and failed.action is None and failed.updates == {}
    assert failed.error is not None
    assert failed.error.code == "INVALID_INPUT_ERROR"
    assert failed.error.type == "InvalidInitialData"
    assert failed.error.message == (
        "run_blueprint: initial_data of blueprint 'orders' at $.customer: a required field is missing"
    )


def test_a_good_child_or_any_other_action_passes_unchanged() -> None:
    blueprints = {"orders": orders(Order)}
    good = HandlerOutcome(
        state="order",
        action=RunBlueprint(blueprint="orders", initial_data=GOOD, transitions={"success": "x"}),
    )
    unknown = HandlerOutcome(
        state="order", action=RunBlueprint(blueprint="nope", initial_data={}, transitions={"success": "x"})
    )
    moved = HandlerOutcome(state="order", action=TransitionTo(state="x"))
    for outcome in (good, unknown, moved):
        assert check_child_input(outcome, blueprints) is outcome


def test_a_schedule_whose_input_does_not_fit_is_refused_naming_entry_and_field() -> None:
    blueprints = {"orders": orders(ORDER_SCHEMA)}
    entry = ScheduleEntry(
        name="nightly", blueprint="orders", input_data={"customer": 7, "items": []}, cron="0 3 * * *"
    )
    with pytest.raises(ConfigError) as refused:
        check_blueprints([entry], blueprints, "schedules.toml")
    assert refused.value.message == (
        "schedules.toml: [nightly]: field 'input_data': initial_data of blueprint 'orders' at $.customer: "
        "7 is not of type 'string'"
    )
    fits = msgspec.structs.replace(entry, input_data={"customer": "ada", "items": []})
    check_blueprints([fits], blueprints, "schedules.toml")


# -- the OpenAPI document ------------------------------------------------------------------------


def test_the_document_gets_one_create_operation_per_typed_blueprint() -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "properties": {"a": {"$ref": "#/definitions/A"}, "b": {"$ref": "#/properties/a"}},
        "definitions": {"A": {"type": "string"}, "odd name": {"type": "integer"}},
    }
    generic = {
        "summary": "Create a job",
        "parameters": [{"name": "api_endpoint", "in": "path"}, {"name": "Idempotency-Key", "in": "header"}],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Create"}}}},
        "responses": {"202": {"description": "accepted"}},
    }
    document: dict[str, Any] = {
        "paths": {CREATE_PATH: {"post": generic}, "/api/v1/jobs/taken": {"get": {}}},
        "components": {"schemas": {"Create": {"type": "object", "properties": {"initial_data": {}}}}},
    }
    endpoints = {
        "weird": orders(draft7, "weird"),
        "plain": orders(None, "plain"),
        "taken": orders(Order, "taken"),
    }
    add_create_operations(document, endpoints)

    assert set(document["paths"]) == {CREATE_PATH, "/api/v1/jobs/taken", "/api/v1/jobs/weird"}
    assert document["paths"]["/api/v1/jobs/taken"] == {"get": {}}  # a route of its own wins
    operation = document["paths"]["/api/v1/jobs/weird"]["post"]
    assert operation["parameters"] == [{"name": "Idempotency-Key", "in": "header"}]
    assert operation["operationId"] == "CreateJob_weird"
    schemas = document["components"]["schemas"]
    assert schemas["weird.CreateJobRequest"]["properties"] == {
        "initial_data": {"$ref": "#/components/schemas/weird.input"}
    }
    assert schemas["weird.input"]["properties"] == {
        "a": {"$ref": "#/components/schemas/weird.A"},
        "b": {"$ref": "#/components/schemas/weird.input/properties/a"},
    }
    assert schemas["weird.A"] == {"type": "string"} and schemas["weird.odd_name"] == {"type": "integer"}
    assert schemas["ErrorBody"]["required"] == ["error"] and "ErrorDetail" in schemas
    assert endpoints["weird"].input_json_schema == draft7  # the blueprint's own schema is untouched


@BOTH
def test_what_is_checked_is_initial_data_as_it_will_be_stored(schema: Any) -> None:
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    check_initial_data(orders(schema), {"customer": "ada", "items": [], "note": moment})  # stored as a string
