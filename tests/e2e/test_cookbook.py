"""The cookbook (docs/blueprints.md) end to end: every recipe over HTTP, its tasks run by a worker process.

The last tests check the page itself: it shows every example file exactly as it
is, and its Mermaid diagram is what ``chronik blueprint graph`` prints today.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from docs.examples.cookbook import blueprints as cookbook_blueprints
from docs.examples.cookbook.idempotency import place_order
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, ROOT

pytestmark = pytest.mark.e2e

WORKER_APP = "docs.examples.cookbook.worker:worker"
COOKBOOK = ROOT / "docs" / "examples" / "cookbook"
PAGE = ROOT / "docs" / "blueprints.md"


class Cookbook:
    """One orchestrator serving every recipe, its client API as a test drives it, and worker processes."""

    def __init__(self, orchestrator: Any, spawn_worker: Any) -> None:
        self.orchestrator = orchestrator
        self.url: str = orchestrator.url
        self.http = httpx.AsyncClient(base_url=self.url, headers={"X-Client-Token": CLIENT_TOKEN}, timeout=10)
        self._spawn_worker = spawn_worker

    async def start_worker(self, worker_id: str = "cook", **env: str) -> None:
        """Start the cookbook's worker as a process; return once it has registered."""
        self._spawn_worker(self.url, app=WORKER_APP, WORKER_ID=worker_id, **env)

        async def registered() -> bool:
            async with self.orchestrator.engine.database.pool.acquire() as conn:
                found = await conn.fetchval("SELECT count(*) FROM workers WHERE worker_id = $1", worker_id)
            return bool(found)

        await wait_for(registered, within=20)

    async def create(self, endpoint: str, data: dict[str, Any], **body: Any) -> str:
        response = await self.http.post(f"/api/v1/jobs/{endpoint}", json={"initial_data": data, **body})
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def history(self, job_id: str) -> list[dict[str, Any]]:
        return list((await self.http.get(f"/api/v1/jobs/{job_id}/history")).json())

    async def types(self, job_id: str) -> list[str]:
        return [event["type"] for event in await self.history(job_id)]

    async def event(self, job_id: str, type_: str) -> dict[str, Any]:
        found = [event["data"] for event in await self.history(job_id) if event["type"] == type_]
        assert len(found) == 1, (type_, found)
        return dict(found[0])

    async def reaches(self, job_id: str, *statuses: str, within: float = 20) -> dict[str, Any]:
        """The job once its status is one of ``statuses`` (default: any final one)."""
        wanted = statuses or ("finished", "failed", "cancelled")

        async def check() -> dict[str, Any] | None:
            current = await self.job(job_id)
            return current if current["status"] in wanted else None

        return dict(await wait_for(check, within=within, interval=0.1))


@pytest.fixture
async def cookbook(start_orchestrator: Any, spawn_worker: Any) -> AsyncIterator[Cookbook]:
    """Serve every recipe; no worker runs until the test starts one."""
    served = Cookbook(await start_orchestrator(*cookbook_blueprints), spawn_worker)
    yield served
    await served.http.aclose()


async def test_conditions_route_each_order(cookbook: Cookbook) -> None:
    await cookbook.start_worker()
    address = "Hauptstr. 1"
    express = await cookbook.create(
        "shipping", {"order": {"id": "A1", "total": 150, "country": "DE", "address": address}}
    )
    standard = await cookbook.create(
        "shipping", {"order": {"id": "A2", "total": 150, "country": "FR", "address": address}}
    )
    held = await cookbook.create("shipping", {"order": {"id": "A3", "total": 150, "country": "DE"}})

    assert (await cookbook.reaches(express))["result"] == {"service": "express", "tracking": "EXPRESS-A1"}
    assert (await cookbook.reaches(standard))["result"] == {"service": "standard", "tracking": "STANDARD-A2"}
    failed = await cookbook.reaches(held)
    assert (failed["status"], failed["current_state"]) == ("failed", "held")
    assert failed["error"]["code"] == "FAILURE_STATE"
    assert failed["result"] == {"reason": "the order has no address"}
    assert await cookbook.types(express) == [
        "JobCreated",
        "StateEntered",
        "TaskDispatched",
        "TaskCompleted",
        "StateEntered",
        "JobFinished",
    ]
    assert await cookbook.types(held) == ["JobCreated", "StateEntered", "JobFailed"]


async def test_fan_out_runs_every_branch_and_the_aggregator_sees_each_outcome(cookbook: Cookbook) -> None:
    gallery = await cookbook.create("thumbnails", {"images": ["cat.jpg", "dog.png", "notes.txt"]})
    hopeless = await cookbook.create("thumbnails", {"images": ["notes.txt"]})
    waiting = await cookbook.reaches(gallery, "waiting_for_worker")
    assert waiting["fan_out"] == {"aggregate_into": "collect", "branches": 3, "pending": 3}

    await cookbook.start_worker()
    done = await cookbook.reaches(gallery)
    assert (done["status"], done["current_state"]) == ("finished", "done")
    assert done["result"] == {
        "thumbnails": ["cat_256.webp", "dog_256.webp"],
        "errors": ["notes.txt is not an image"],
    }
    assert done["fan_out"] is None
    events = await cookbook.history(gallery)
    types = [event["type"] for event in events]
    assert Counter(types) == Counter(
        {
            "JobCreated": 1,
            "ParallelDispatched": 1,
            "TaskCompleted": 2,
            "TaskFailed": 1,
            "BranchFailed": 1,
            "BranchesJoined": 1,
            "StateEntered": 1,
            "JobFinished": 1,
        }
    ), types
    assert types[-3:] == ["BranchesJoined", "StateEntered", "JobFinished"]
    branches = {
        b["task_id"] for b in next(e for e in events if e["type"] == "ParallelDispatched")["data"]["branches"]
    }
    answered = {e["data"]["task_id"] for e in events if e["type"] in ("TaskCompleted", "TaskFailed")}
    assert answered == branches and len(branches) == 3
    # An invalid input is not retried: the branch fails alone and the aggregator decides.
    assert (await cookbook.event(gallery, "BranchFailed"))["error"]["code"] == "INVALID_INPUT_ERROR"

    nothing = await cookbook.reaches(hopeless)
    assert (nothing["status"], nothing["current_state"]) == ("failed", "nothing_to_show")
    assert nothing["result"] == {"thumbnails": [], "errors": ["notes.txt is not an image"]}


async def test_approval_by_a_person_or_by_the_clock(cookbook: Cookbook) -> None:
    await cookbook.start_worker()
    small = await cookbook.create("refunds", {"order_id": "R1", "amount": 20})
    approved = await cookbook.create("refunds", {"order_id": "R2", "amount": 120})
    rejected = await cookbook.create("refunds", {"order_id": "R3", "amount": 500})
    unanswered = await cookbook.create(
        "refunds", {"order_id": "R4", "amount": 80, "decide_within_seconds": 1}
    )

    assert (await cookbook.reaches(small))["result"] == {"refund_id": "re_R1"}
    assert "ApprovalRequested" not in await cookbook.types(small)

    asking = await cookbook.reaches(approved, "waiting_for_human")
    assert asking["approval"]["message"] == "Refund 120.00 EUR for order R2?"
    assert asking["approval"]["decisions"] == ["approved", "rejected"]
    assert asking["approval"]["timeout_at"] is not None
    for wrong_decision in ("maybe", "timeout"):  # the deadline's transition is not a person's decision
        wrong = await cookbook.http.post(
            f"/api/v1/jobs/{approved}/approval", json={"decision": wrong_decision}
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "INVALID_DECISION"
    decided = await cookbook.http.post(
        f"/api/v1/jobs/{approved}/approval", json={"decision": "approved", "comment": "regular customer"}
    )
    assert decided.status_code == 200, decided.text
    assert (await cookbook.reaches(approved))["result"] == {"refund_id": "re_R2"}
    given = await cookbook.event(approved, "ApprovalGiven")
    assert (given["decision"], given["comment"], given["actor"]) == ("approved", "regular customer", "client")
    assert await cookbook.types(approved) == [
        "JobCreated",
        "ApprovalRequested",
        "ApprovalGiven",
        "StateEntered",
        "TaskDispatched",
        "TaskCompleted",
        "StateEntered",
        "JobFinished",
    ]
    again = await cookbook.http.post(f"/api/v1/jobs/{approved}/approval", json={"decision": "approved"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_NOT_AWAITING_APPROVAL"

    await cookbook.reaches(rejected, "waiting_for_human")
    no = await cookbook.http.post(f"/api/v1/jobs/{rejected}/approval", json={"decision": "rejected"})
    assert no.status_code == 200, no.text
    declined = await cookbook.reaches(rejected)
    assert (declined["status"], declined["current_state"], declined["result"]) == (
        "finished",
        "declined",
        {"refunded": False},
    )

    escalated = await cookbook.reaches(unanswered)
    assert (escalated["status"], escalated["current_state"]) == ("failed", "escalated")
    types = await cookbook.types(unanswered)
    assert types == ["JobCreated", "ApprovalRequested", "ApprovalTimedOut", "StateEntered", "JobFailed"]


async def test_child_job_runs_payment_and_the_parent_follows_its_outcome(cookbook: Cookbook) -> None:
    paid = await cookbook.create("fulfilment", {"order_id": "F1", "amount": 30})
    unpaid = await cookbook.create("fulfilment", {"order_id": "F2", "amount": 0})
    waiting = await cookbook.reaches(paid, "waiting_for_child")
    child_id = waiting["child_job_id"]
    assert child_id is not None and waiting["children"] == [child_id]
    child = await cookbook.reaches(child_id, "waiting_for_worker")  # no worker runs yet
    assert (child["blueprint_name"], child["parent_job_id"]) == ("payment", paid)
    assert child["initial_data"] == {"order_id": "F1", "amount": 30}

    await cookbook.start_worker()
    done = await cookbook.reaches(paid)
    assert (done["status"], done["result"]) == ("finished", {"charge_id": "ch_F1", "tracking": "STANDARD-F1"})
    assert done["child_job_id"] is None and done["children"] == [child_id]
    assert (await cookbook.job(child_id))["result"] == {"charge_id": "ch_F1"}
    assert await cookbook.types(paid) == [
        "JobCreated",
        "ChildStarted",
        "ChildEnded",
        "StateEntered",
        "TaskDispatched",
        "TaskCompleted",
        "StateEntered",
        "JobFinished",
    ]
    started = await cookbook.event(paid, "ChildStarted")
    assert (started["child_job_id"], started["blueprint"]) == (child_id, "payment")
    ended = await cookbook.event(paid, "ChildEnded")
    assert (ended["status"], ended["result"]) == ("finished", {"charge_id": "ch_F1"})

    failed = await cookbook.reaches(unpaid)
    assert (failed["status"], failed["current_state"]) == ("failed", "payment_failed")
    [declined_id] = failed["children"]
    declined = await cookbook.job(declined_id)
    assert (declined["status"], declined["current_state"]) == ("failed", "declined")
    assert (await cookbook.event(unpaid, "ChildEnded"))["status"] == "failed"


async def test_timer_sleeps_then_the_job_goes_on(cookbook: Cookbook) -> None:
    await cookbook.start_worker()
    job_id = await cookbook.create("trials", {"email": "ada@example.com", "remind_after_seconds": 1.5})
    sleeping = await cookbook.reaches(job_id, "waiting_for_timer")
    assert sleeping["current_state"] == "wait" and sleeping["timer"]["then"] == "remind"
    assert sleeping["state_history"]["last_email"] == "welcome"

    done = await cookbook.reaches(job_id)
    assert done["result"] == {"email": "ada@example.com", "template": "trial_ends_soon"}
    assert await cookbook.types(job_id) == [
        "JobCreated",
        "TaskDispatched",
        "TaskCompleted",
        "StateEntered",
        "TimerStarted",
        "TimerFired",
        "StateEntered",
        "TaskDispatched",
        "TaskCompleted",
        "StateEntered",
        "JobFinished",
    ]
    events = {event["type"]: event for event in await cookbook.history(job_id)}
    started = datetime.fromisoformat(events["TimerStarted"]["at"])
    fire_at = datetime.fromisoformat(events["TimerStarted"]["data"]["fire_at"])
    assert (fire_at - started).total_seconds() == pytest.approx(1.5)
    assert datetime.fromisoformat(events["TimerFired"]["at"]) >= fire_at


async def test_state_and_job_timeouts(cookbook: Cookbook) -> None:
    await cookbook.start_worker()
    fast = await cookbook.create("parcels", {"order_id": "P1", "weight_kg": 2})
    slow_carrier = await cookbook.create("parcels", {"order_id": "P2", "weight_kg": 2, "carrier_latency": 5})
    stuck_printer = await cookbook.create("parcels", {"order_id": "P3", "weight_kg": 2, "printer_latency": 5})
    impatient = await cookbook.create(
        "parcels", {"order_id": "P4", "weight_kg": 2, "carrier_latency": 5}, timeout_seconds=1
    )
    for job_id, seconds in ((fast, 60), (impatient, 1)):  # the blueprint's, or the client's
        created = (await cookbook.history(job_id))[0]
        deadline = datetime.fromisoformat(created["data"]["deadline_at"])
        assert (deadline - datetime.fromisoformat(created["at"])).total_seconds() == seconds
    assert (await cookbook.job(slow_carrier))["deadline_at"] is not None

    assert (await cookbook.reaches(fast))["result"] == {
        "price": 5.1,
        "source": "carrier",
        "label": "label-P1.pdf",
    }

    fallback = await cookbook.reaches(slow_carrier)
    assert fallback["result"] == {"price": 9.9, "source": "flat rate", "label": "label-P2.pdf"}
    timed_out = await cookbook.event(slow_carrier, "TimedOut")
    assert (timed_out["scope"], timed_out["state"]) == ("state", "quote")
    types = await cookbook.types(slow_carrier)
    assert types[types.index("TimedOut") + 1] == "StateEntered"
    assert "TaskCompleted" not in types[: types.index("TimedOut")]

    failed = await cookbook.reaches(stuck_printer)
    assert (failed["status"], failed["current_state"]) == ("failed", "label")
    assert failed["error"]["code"] == "STATE_TIMEOUT"
    assert (await cookbook.event(stuck_printer, "TimedOut"))["scope"] == "state"

    expired = await cookbook.reaches(impatient)
    assert (expired["status"], expired["current_state"]) == ("failed", "quote")
    assert expired["error"]["code"] == "JOB_TIMEOUT"
    assert (await cookbook.event(impatient, "TimedOut"))["scope"] == "job"
    assert (await cookbook.types(impatient))[-2:] == ["TimedOut", "JobFailed"]


async def test_cancelling_a_parent_cancels_its_child_and_withdraws_the_task(
    cookbook: Cookbook, tmp_path: Path
) -> None:
    pool = cookbook.orchestrator.engine.database.pool

    async def task_rows(job_id: str) -> list[str]:
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT status FROM tasks WHERE job_id = $1::uuid", job_id)
        return [row["status"] for row in rows]

    # Cancelled while the child's task is still queued: the task is withdrawn and never runs.
    queued = await cookbook.create("videos", {"video": "talk.mov"})
    queued_child = (await cookbook.reaches(queued, "waiting_for_child"))["child_job_id"]
    await cookbook.reaches(queued_child, "waiting_for_worker")
    assert await task_rows(queued_child) == ["queued"]
    response = await cookbook.http.post(f"/api/v1/jobs/{queued}/cancel", json={"reason": "wrong file"})
    assert response.status_code == 200, response.text
    assert (await cookbook.job(queued))["status"] == "cancelled"
    child = await cookbook.job(queued_child)
    assert child["status"] == "cancelled"
    cancelled = await cookbook.event(queued_child, "JobCancelled")
    assert cancelled["actor"] == f"job:{queued}"
    assert await task_rows(queued_child) in ([], ["cancelled"])

    # Cancelled while a worker runs the child's task: the worker is told, and stops.
    await cookbook.start_worker("encoder", LOG_LEVEL="INFO")
    running = await cookbook.create("videos", {"video": "keynote.mov"})
    running_child = (await cookbook.reaches(running, "waiting_for_child"))["child_job_id"]

    async def progressing() -> bool:
        return bool((await cookbook.job(running_child))["progress"])

    await wait_for(progressing, within=20)
    response = await cookbook.http.post(f"/api/v1/jobs/{running}/cancel")
    assert response.status_code == 200, response.text
    assert (await cookbook.job(running_child))["status"] == "cancelled"
    log = tmp_path / "encoder.log"
    await wait_for(lambda: "task_cancelled_by_orchestrator" in log.read_text(), within=10)
    for job_id in (queued, queued_child, running, running_child):
        assert "TaskCompleted" not in await cookbook.types(job_id)
    assert await cookbook.types(running) == ["JobCreated", "ChildStarted", "JobCancelled"]
    # The watcher removes the withdrawn rows.
    await wait_for(lambda: _all_empty(task_rows, queued_child, running_child), within=10)

    # Cancelling only the child: the parent follows its "cancelled" transition.
    parent = await cookbook.create("videos", {"video": "demo.mov"})
    child_id = (await cookbook.reaches(parent, "waiting_for_child"))["child_job_id"]
    assert (await cookbook.http.post(f"/api/v1/jobs/{child_id}/cancel")).status_code == 200
    withdrawn = await cookbook.reaches(parent)
    assert (withdrawn["status"], withdrawn["current_state"]) == ("finished", "withdrawn")
    assert (await cookbook.event(parent, "ChildEnded"))["status"] == "cancelled"

    ended = await cookbook.http.post(f"/api/v1/jobs/{parent}/cancel")
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "JOB_NOT_CANCELLABLE"


async def _all_empty(rows: Any, *job_ids: str) -> bool:
    return all([not await rows(job_id) for job_id in job_ids])


async def test_data_stores_price_the_order(cookbook: Cookbook) -> None:
    await cookbook.start_worker()
    paid = await cookbook.create("checkout", {"order_id": "D1", "items": {"mug": 2, "poster": 1}})
    unknown = await cookbook.create("checkout", {"order_id": "D2", "items": {"mug": 1, "lamp": 1}})
    assert (await cookbook.reaches(paid))["result"] == {"total": 49.0, "charge_id": "ch_D1"}
    rejected = await cookbook.reaches(unknown)
    assert (rejected["status"], rejected["result"]) == ("failed", {"unknown_items": ["lamp"]})


class LosesFirstResponse(httpx.AsyncBaseTransport):
    """Delivers every request, but drops the first response, as a network that resets does."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.requests += 1
        if self.requests == 1:
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_idempotency_key_makes_a_retried_create_one_job(cookbook: Cookbook) -> None:
    await cookbook.start_worker()
    order = {"order_id": "D7", "items": {"tote": 2}}
    transport = LosesFirstResponse()
    async with httpx.AsyncClient(
        base_url=cookbook.url, headers={"X-Client-Token": CLIENT_TOKEN}, transport=transport
    ) as client:
        job_id = await place_order(client, order, key="order-D7")
    assert transport.requests == 2  # the first request created the job; its answer was lost
    listed = (await cookbook.http.get("/api/v1/jobs", params={"blueprint": "checkout"})).json()["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]
    assert await place_order(cookbook.http, order, key="order-D7") == job_id
    assert (await cookbook.reaches(job_id))["result"] == {"total": 37.0, "charge_id": "ch_D7"}
    assert (await cookbook.types(job_id)).count("TaskCompleted") == 1

    other = {"order_id": "D7", "items": {"tote": 3}}
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await place_order(cookbook.http, other, key="order-D7")
    assert refused.value.response.status_code == 422
    assert refused.value.response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await place_order(cookbook.http, other, key="order-D8") != job_id


async def test_input_schema_refuses_what_does_not_fit(cookbook: Cookbook) -> None:
    lines = [{"sku": "mug", "qty": 3}, {"sku": "tote", "qty": 2}]
    job_id = await cookbook.create("restock", {"warehouse": "north", "lines": lines})
    assert (await cookbook.reaches(job_id))["result"] == {"warehouse": "north", "units": 5}
    for data, message in [
        (
            {"warehouse": "north", "lines": [{"sku": "mug", "qty": 0}]},
            "at $.lines[0].qty: Expected `int` >= 1",
        ),
        ({"lines": []}, "at $.warehouse: a required field is missing"),
    ]:
        refused = await cookbook.http.post("/api/v1/jobs/restock", json={"initial_data": data})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == {
            "code": "INVALID_INPUT_ERROR",
            "message": f"initial_data of blueprint 'restock' {message}",
        }
    listed = (await cookbook.http.get("/api/v1/jobs", params={"blueprint": "restock"})).json()["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]
    document = (await cookbook.http.get("/_public/docs/openapi.json")).json()
    body = document["paths"]["/api/v1/jobs/restock"]["post"]["requestBody"]["content"]["application/json"]
    request = document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert request["properties"]["initial_data"] == {"$ref": "#/components/schemas/restock.Restock"}


# -- the page -------------------------------------------------------------------------------------


def shown(path: Path) -> str:
    """What the page shows of an example file: all of it after the module docstring and future import."""
    text = path.read_text()
    head = "from __future__ import annotations\n"
    assert head in text, f"{path} has no {head!r}"
    return text.split(head, 1)[1].lstrip("\n")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_page_shows_every_example_file_verbatim() -> None:
    files = {
        path.relative_to(ROOT).as_posix(): path
        for path in COOKBOOK.glob("*.py")
        if path.name != "__init__.py"
    }
    blocks: dict[str, list[str]] = {}
    for block in code_blocks("python"):
        first, _, body = block.partition("\n")
        if first.startswith("# docs/examples/cookbook/"):
            blocks.setdefault(first.removeprefix("# "), []).append(body)
    assert sorted(blocks) == sorted(files), "every example file is shown once, and nothing else is"
    for name, path in files.items():
        assert len(blocks[name]) == 1, f"{name} is shown {len(blocks[name])} times"
        assert blocks[name][0] == shown(path), f"docs/blueprints.md shows {name} as it was, not as it is"


def test_the_page_creates_jobs_only_at_cookbook_endpoints() -> None:
    endpoints = {bp.api_endpoint for bp in cookbook_blueprints}
    used = set(re.findall(r"/api/v1/jobs/([a-z_]+)\b(?![/{])", PAGE.read_text()))
    assert used and used <= endpoints, used - endpoints


def test_the_page_shows_the_graph_the_cli_prints() -> None:
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronik",
            "blueprint",
            "graph",
            "parcel",
            "--app",
            "docs.examples.cookbook:blueprints",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "quote --> flat_rate : timeout 2 s" in printed
    assert printed in code_blocks("mermaid")
