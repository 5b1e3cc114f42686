"""Issue 16, scenario 10: the HTTP API fuzzed from its own OpenAPI document (schemathesis).

Every client and worker operation of the document the app serves gets generated requests, valid
(positive) and invalid (negative) ones, sent to the real app over a real database with the demo
blueprints. Each answer must not be a 5xx, must have a status the document declares for the
operation, and must match the schema the document gives for that status.

The budget is fixed so CI is deterministic and short: ``MAX_EXAMPLES`` cases per operation, mode
and set of path values, drawn by Hypothesis with ``derandomize=True`` (the same cases every run)
and no example database. The cases are drawn first, without I/O, then sent from the test's own
event loop through ``httpx.ASGITransport``, so the engine's pool stays on the loop that made it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chronik.api.app import create_app
from chronik.demo import blueprints

CLIENT = {"X-Client-Token": "test-token"}
WORKER_ID = "fuzz-worker"
WORKER = {"X-Worker-Token": "worker-token", "X-Worker-ID": WORKER_ID}
MAX_EXAMPLES = 30
"""Cases per operation, generation mode and set of path values: ~1,950 requests in all."""
MIN_CALLS = 1_500
"""Fewer requests than this means operations went missing from the run: the test fails."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENT = "/_public/docs/openapi.json"

# Out of scope, on purpose: Prometheus's text exposition has no schema to check, and no input.
SKIPPED_OPERATIONS = {"GET /_public/metrics"}


@dataclass
class Outcome:
    """One request that broke a check."""

    operation: str
    mode: str
    status: int
    request: str
    problem: str


@pytest.fixture
async def client(make_engine: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    # A long-poll is held at most 50 ms here (WORKER_POLL_MAX_SECONDS), whatever timeout a case asks for.
    engine = await make_engine(*blueprints, max_poll_seconds=0.05)
    app = create_app(engine, client_token="test-token", worker_token="worker-token", manage_engine=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chronik", timeout=30) as client:
        yield client


def draw(operation: Any, mode: GenerationMode, **path_parameters: str) -> list[Case]:
    """``MAX_EXAMPLES`` cases of ``operation``, the same ones on every run."""
    cases: list[Case] = []
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(strategy)
    def collect(case: Case) -> None:
        cases.append(case)

    try:
        collect()
    except hypothesis.errors.Unsatisfiable:
        # Nothing of the operation can be made invalid (no parameters left to negate): no cases.
        assert mode is GenerationMode.NEGATIVE, f"no valid case of {operation.path}"
    return cases


async def test_fuzz_client_and_worker_routes(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/_worker/workers/register",
        json={"worker_id": WORKER_ID, "task_types": ["approve"]},
        headers=WORKER,
    )
    assert registered.status_code == 200, registered.text
    created = await client.post("/api/v1/jobs/review", json={"initial_data": {"amount": 1}}, headers=CLIENT)
    assert created.status_code == 202, created.text
    known = {
        "job_id": created.json()["job_id"],
        "worker_id": WORKER_ID,
        "api_endpoint": "review",
        "name": "review",
        "filename": "report.txt",
    }

    document = (await client.get(DOCUMENT)).json()
    schema = schemathesis.openapi.from_dict(document)
    calls = 0
    failures: list[Outcome] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIPPED_OPERATIONS or not operation.path.startswith(("/api/v1", "/_worker", "/_public")):
            continue
        auth = WORKER if operation.path.startswith("/_worker") else CLIENT
        names = {parameter.name for parameter in operation.path_parameters}
        variants = [{}] + ([{name: known[name] for name in names}] if names else [])
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_values in variants:
                for case in draw(operation, mode, **path_values):
                    kwargs = case.as_transport_kwargs(base_url="http://chronik", headers=auth)
                    response = await client.request(**_httpx_kwargs(kwargs))
                    calls += 1
                    try:
                        case.validate_response(response, checks=_checks_for(response))
                    except (Failure, FailureGroup) as exc:
                        failures.append(
                            Outcome(label, mode.value, response.status_code, case.as_curl_command(), str(exc))
                        )
    shown = "\n\n".join(
        f"{f.operation} [{f.mode}] -> {f.status}\n{f.request}\n{f.problem[:1500]}" for f in failures[:20]
    )
    summary = sorted({(f.operation, f.status, _first_check(f.problem)) for f in failures})
    listed = "\n".join(" | ".join(map(str, row)) for row in summary)
    assert not failures, f"{len(failures)} of {calls} requests broke a check:\n{listed}\n\n{shown}"
    assert calls >= MIN_CALLS, f"only {calls} requests were sent"


def _first_check(problem: str) -> str:
    """The first failed check's line of a schemathesis report (``- ST101 Server error``)."""
    checks = [line.strip() for line in problem.splitlines() if line.strip().startswith("- ST")]
    return checks[0] if checks else problem[:160]


def _checks_for(response: httpx.Response) -> list[Any]:
    """``CHECKS``, less "not a server error" for the one 5xx chronik answers by design.

    A 501 ``FILES_NOT_CONFIGURED`` says this instance has no file storage (no S3 is set up here):
    a deliberate answer that names its setting, not a fault. Its status and body are still checked.
    """
    if response.status_code == 501 and _error_code(response) == "FILES_NOT_CONFIGURED":
        return [check for check in CHECKS if check is not not_a_server_error]
    return CHECKS


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis's ``requests``-shaped arguments as ``httpx.AsyncClient.request``'s."""
    converted = dict(kwargs)
    if "data" in converted:
        converted["content"] = converted.pop("data")
    cookies = converted.pop("cookies", None)
    if cookies:  # httpx deprecates per-request cookies: send them as the header they become
        header = "; ".join(f"{name}={value}" for name, value in cookies.items())
        converted["headers"] = {**converted.get("headers", {}), "Cookie": header}
    converted.pop("allow_redirects", None)
    converted.pop("verify", None)
    return converted
