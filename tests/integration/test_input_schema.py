"""Input schemas over a real engine: a bad ``initial_data`` is refused before anything is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from chronik import Blueprint, Engine
from chronik.api.app import create_app
from chronik.core.errors import InvalidInitialData
from tests.conftest import wait_for

TOKEN = {"X-Client-Token": "test-token"}


class Item(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    qty: int


class Order(msgspec.Struct, forbid_unknown_fields=True):
    customer: str
    items: list[Item]


RETURN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
    },
    "required": ["order_id", "lines"],
    "$defs": {"Line": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}},
}


def ending(bp: Blueprint) -> Blueprint:
    @bp.handler_for("start", is_start=True)
    async def start(initial_data: dict[str, Any], state_history: dict[str, Any], actions: Any) -> None:
        state_history["seen"] = initial_data
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def parent() -> Blueprint:
    bp = Blueprint("bundle")

    @bp.handler_for("order", is_start=True)
    async def order(initial_data: dict[str, Any], actions: Any) -> None:
        actions.run_blueprint(
            "orders", initial_data["child"], transitions={"success": "done", "failure": "done"}
        )

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


def blueprints() -> list[Blueprint]:
    return [
        ending(Blueprint("orders", input_schema=Order, description="Place an order.")),
        ending(Blueprint("returns", api_endpoint="returns", input_schema=RETURN_SCHEMA)),
        ending(Blueprint("anything")),
        parent(),
    ]


@pytest.fixture
async def served(make_engine: Any) -> AsyncIterator[tuple[AsyncTestClient[Any], Engine]]:
    engine = await make_engine(*blueprints(), start=False)
    async with AsyncTestClient(app=create_app(engine, client_token="test-token")) as test_client:
        yield test_client, engine


async def written(pool: asyncpg.Pool) -> tuple[int, int]:
    """How many events and jobs the database holds."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM jobs) AS jobs"
    )
    assert row is not None
    return row["events"], row["jobs"]


async def finished(client: AsyncTestClient[Any], job_id: str) -> dict[str, Any]:
    async def ended() -> Any:
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=TOKEN)).json()
        return job if job["status"] in ("finished", "failed") else None

    return dict(await wait_for(ended))


@pytest.mark.parametrize(
    ("endpoint", "bad", "message"),
    [
        (
            "orders",
            {"customer": "ada", "items": [{"sku": "mug", "qty": 1}, {"sku": "tote", "qty": "2"}]},
            "initial_data of blueprint 'orders' at $.items[1].qty: Expected `int`, got `str`",
        ),
        (
            "returns",
            {"order_id": "A1", "lines": [{"qty": 1}, {"qty": 1}, {"qty": 0}]},
            "initial_data of blueprint 'returns' at $.lines[2].qty: 0 is less than the minimum of 1",
        ),
        (
            "returns",
            {"lines": []},
            "initial_data of blueprint 'returns' at $.order_id: a required field is missing",
        ),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    served: tuple[AsyncTestClient[Any], Engine], pool: asyncpg.Pool, endpoint: str, bad: Any, message: str
) -> None:
    client, _engine = served
    before = await written(pool)
    refused = await client.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": bad}, headers=TOKEN)
    assert refused.status_code == 400, refused.text
    assert refused.json() == {"error": {"code": "INVALID_INPUT_ERROR", "message": message}}
    assert await written(pool) == before


async def test_good_input_is_accepted_and_kept_as_sent(served: tuple[AsyncTestClient[Any], Engine]) -> None:
    client, _engine = served
    sent = {"customer": "ada", "items": [{"sku": "mug", "qty": 2}]}
    created = await client.post("/api/v1/jobs/orders", json={"initial_data": sent}, headers=TOKEN)
    assert created.status_code == 202, created.text
    job = await finished(client, created.json()["job_id"])
    assert (job["status"], job["initial_data"], job["state_history"]["seen"]) == ("finished", sent, sent)
    returned = {"initial_data": {"order_id": "A1", "lines": [{"qty": 1}], "extra": True}}
    assert (await client.post("/api/v1/jobs/returns", json=returned, headers=TOKEN)).status_code == 202
    assert (await client.post("/api/v1/jobs/anything", json={}, headers=TOKEN)).status_code == 202


async def test_create_job_from_python_is_checked_too(make_engine: Any, pool: asyncpg.Pool) -> None:
    engine = await make_engine(*blueprints())
    with pytest.raises(InvalidInitialData) as refused:
        await engine.create_job("orders", {"customer": "ada", "items": [{"sku": "mug"}]})
    assert refused.value.path == "$.items[0].qty"
    assert await written(pool) == (0, 0)
    job = await engine.create_job("orders", {"customer": "ada", "items": []})
    assert job.initial_data == {"customer": "ada", "items": []}


async def test_a_child_with_bad_input_fails_the_parent_and_is_never_created(
    served: tuple[AsyncTestClient[Any], Engine], pool: asyncpg.Pool
) -> None:
    client, _engine = served
    body = {"initial_data": {"child": {"customer": "ada", "items": "none"}}}
    created = await client.post("/api/v1/jobs/bundle", json=body, headers=TOKEN)
    job_id = created.json()["job_id"]
    job = await finished(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "INVALID_INPUT_ERROR"
    assert job["error"]["message"] == (
        "run_blueprint: initial_data of blueprint 'orders' at $.items: Expected `array`, got `str`"
    )
    history = (await client.get(f"/api/v1/jobs/{job_id}/history", headers=TOKEN)).json()
    assert [event["type"] for event in history] == ["JobCreated", "HandlerFailed", "JobFailed"]
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE blueprint = 'orders'") == 0


async def test_the_openapi_document_types_each_blueprints_create_route(
    served: tuple[AsyncTestClient[Any], Engine],
) -> None:
    client, _engine = served
    document = (await client.get("/_public/docs/openapi.json")).json()
    schemas = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return resolve(schemas[ref.removeprefix("#/components/schemas/")]) if ref else schema

    generic = document["paths"]["/api/v1/jobs/{api_endpoint}"]["post"]
    orders = document["paths"]["/api/v1/jobs/orders"]["post"]
    assert (orders["summary"], orders["description"]) == ("Create a job of orders", "Place an order.")
    assert "api_endpoint" not in [parameter["name"] for parameter in orders["parameters"]]
    assert orders["responses"]["202"] == generic["responses"]["202"]
    assert "INVALID_INPUT_ERROR" in orders["responses"]["400"]["description"]
    assert resolve(orders["responses"]["400"]["content"]["application/json"]["schema"])["required"] == [
        "error"
    ]
    body = resolve(orders["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["properties"]) == set(
        resolve(generic["requestBody"]["content"]["application/json"]["schema"])["properties"]
    )
    order = resolve(body["properties"]["initial_data"])
    assert order["required"] == ["customer", "items"]
    assert resolve(order["properties"]["items"]["items"])["properties"]["qty"] == {"type": "integer"}

    returns = document["paths"]["/api/v1/jobs/returns"]["post"]
    body = resolve(returns["requestBody"]["content"]["application/json"]["schema"])
    returned = resolve(body["properties"]["initial_data"])
    assert returned["required"] == ["order_id", "lines"] and "$defs" not in returned
    assert resolve(returned["properties"]["lines"]["items"]) == RETURN_SCHEMA["$defs"]["Line"]
    assert len({orders["operationId"], returns["operationId"], generic["operationId"]}) == 3

    assert "/api/v1/jobs/anything" not in document["paths"]  # no input_schema: the generic route documents it
