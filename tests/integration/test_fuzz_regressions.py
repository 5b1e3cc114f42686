"""What fuzzing the API from its OpenAPI document (tests/fuzz, issue 16 scenario 10) found: each
answer the routes give now has a status, a media type and a schema the document declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import jsonschema
import pytest
from litestar.testing import AsyncTestClient

from chronik.api.app import create_app
from chronik.demo import blueprints
from tests.conftest import wait_for

CLIENT = {"X-Client-Token": "test-token"}
WORKER = {"X-Worker-Token": "worker-token", "X-Worker-ID": "w1"}
DOCUMENT = "/_public/docs/openapi.json"


@pytest.fixture
async def client(make_engine: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    engine = await make_engine(*blueprints, start=False, max_poll_seconds=0.05)
    app = create_app(engine, client_token="test-token", worker_token="worker-token")
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def document(client: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await client.get(DOCUMENT)
    assert response.status_code == 200, response.text
    return dict(response.json())


def declared(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} does not declare {status}: {sorted(responses)}"
    return dict(responses[str(status)])


def assert_matches(doc: dict[str, Any], response: dict[str, Any], body: Any) -> None:
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": doc["components"]})


async def test_errors_are_documented_in_the_shape_they_have(client: AsyncTestClient[Any]) -> None:
    # Found: every 400 was documented in Litestar's shape ({"status_code", "detail"}), never sent.
    doc = await document(client)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    refused = await client.get("/api/v1/jobs", params={"limit": 0}, headers=CLIENT)
    assert refused.status_code == 400
    assert_matches(doc, declared(doc, "GET", "/api/v1/jobs", 400), refused.json())


async def test_every_status_given_is_declared(client: AsyncTestClient[Any]) -> None:
    # Found: 401, 403, 404, 409 and 429 were undocumented everywhere, and so were the 204s of a
    # long-poll with no task and of an ended job's event stream.
    doc = await document(client)
    unknown = await client.get(f"/api/v1/jobs/{uuid4()}", headers=CLIENT)
    assert unknown.status_code == 404
    assert_matches(doc, declared(doc, "GET", "/api/v1/jobs/{job_id}", 404), unknown.json())
    anonymous = await client.get("/_worker/workers/w1/tasks/next")
    assert anonymous.status_code == 401
    polled = declared(doc, "GET", "/_worker/workers/{worker_id}/tasks/next", 401)
    assert_matches(doc, polled, anonymous.json())
    registered = await client.post("/_worker/workers/register", json={"worker_id": "w1"}, headers=WORKER)
    assert registered.status_code == 200, registered.text
    empty = await client.get("/_worker/workers/w1/tasks/next?available_skills=x&timeout=0", headers=WORKER)
    assert empty.status_code == 204
    assert "content" not in declared(doc, "GET", "/_worker/workers/{worker_id}/tasks/next", 204)
    job_id = (await client.post("/api/v1/jobs/demo", json={}, headers=CLIENT)).json()["job_id"]
    ended = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=CLIENT)
    assert ended.status_code == 200, ended.text
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=CLIENT)
    assert again.status_code == 409
    assert_matches(doc, declared(doc, "POST", "/api/v1/jobs/{job_id}/cancel", 409), again.json())
    last = len((await client.get(f"/api/v1/jobs/{job_id}/history", headers=CLIENT)).json())
    stream = await client.get(f"/api/v1/jobs/{job_id}/events?after_version={last}", headers=CLIENT)
    assert stream.status_code == 204
    declared(doc, "GET", "/api/v1/jobs/{job_id}/events", 204)


async def test_event_stream_and_graph_declare_their_media_types(client: AsyncTestClient[Any]) -> None:
    # Found: both were documented as application/json; each message of the stream is an object.
    doc = await document(client)
    stream = declared(doc, "GET", "/api/v1/jobs/{job_id}/events", 200)["content"]
    message = stream["text/event-stream"]["schema"]
    fields = doc["components"]["schemas"][message["$ref"].rsplit("/", 1)[1]]["properties"]
    assert set(fields) == {"id", "event", "data"}
    graph = await client.get("/api/v1/blueprints/review/graph", headers=CLIENT)
    assert graph.status_code == 200
    content_type = graph.headers["content-type"].split(";")[0]
    assert content_type in declared(doc, "GET", "/api/v1/blueprints/{name}/graph", 200)["content"]


async def test_a_job_with_fields_matches_its_documented_answer(client: AsyncTestClient[Any]) -> None:
    # Found: JobView | dict was oneOf, which a whole view (an object too) matches twice: refused.
    doc = await document(client)
    created = await client.post("/api/v1/jobs/review", json={"initial_data": {}}, headers=CLIENT)
    job_id = created.json()["job_id"]

    async def finished() -> Any:
        job = (await client.get(f"/api/v1/jobs/{job_id}", headers=CLIENT)).json()
        return job if job["status"] == "finished" else None

    whole = await wait_for(finished)
    part = (await client.get(f"/api/v1/jobs/{job_id}?fields=status", headers=CLIENT)).json()
    answer = declared(doc, "GET", "/api/v1/jobs/{job_id}", 200)
    assert_matches(doc, answer, whole)
    assert_matches(doc, answer, part)


async def test_worker_messages_are_documented(client: AsyncTestClient[Any]) -> None:
    # Found: the worker routes read their bodies themselves, so the document had none to fuzz.
    doc = await document(client)
    for method, path, name in [
        ("post", "/_worker/workers/register", "RegisterBody"),
        ("patch", "/_worker/workers/{worker_id}", "HeartbeatBody"),
        ("post", "/_worker/tasks/result", "ResultBody"),
        ("post", "/_worker/tasks/results", "ResultsBody"),
        ("post", "/_worker/events", "EventBody"),
    ]:
        body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{name}"}
        assert name in doc["components"]["schemas"]
