"""Webhooks over real HTTP: an outbox row per notification, retried with backoff, signed, once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, free_port, work_blueprint

pytestmark = pytest.mark.e2e

HEADERS = {"X-Client-Token": CLIENT_TOKEN}
SECRET = "webhook-secret-for-tests"


class Receiver:
    """A webhook endpoint that answers 500 to the first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if len(self.requests) <= self.failures:
            return web.Response(status=500, text="try later")
        self.accepted.append(json.loads(body))
        return web.Response(status=204)


async def serve(receiver: Receiver) -> tuple[str, web.AppRunner]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}/hook", runner


async def test_a_receiver_that_fails_twice_gets_the_third_signed_once(start_orchestrator: Any) -> None:
    receiver = Receiver(failures=2)
    url, runner = await serve(receiver)
    orchestrator = await start_orchestrator(
        work_blueprint(), webhook_secret=SECRET, webhook_retry_base_seconds=0.2, webhook_interval=0.1
    )
    try:
        async with httpx.AsyncClient(base_url=orchestrator.url, headers=HEADERS) as client:
            created = await client.post(
                "/api/v1/jobs/work", json={"initial_data": {"sleep": 30}, "webhook_url": url}
            )
            job_id = created.json()["job_id"]
            assert (
                await client.post(f"/api/v1/jobs/{job_id}/cancel", json={"reason": "no"})
            ).status_code == 200
            await wait_for(lambda: len(receiver.accepted) == 1, within=20)
            await asyncio.sleep(0.5)  # nothing more arrives
            assert len(receiver.requests) == 3 and len(receiver.accepted) == 1
            (payload,) = receiver.accepted
            assert payload["event"] == "job_cancelled" and payload["job_id"] == job_id
            assert payload["status"] == "cancelled" and payload["error"]["code"] == "CANCELLED"
            event_ids = {headers["X-Chronik-Event-Id"] for headers, _body in receiver.requests}
            assert event_ids == {payload["event_id"]}  # the same id on every attempt: receivers de-duplicate
            for headers, body in receiver.requests:
                expected = hmac.new(
                    SECRET.encode(), headers["X-Chronik-Timestamp"].encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                assert headers["X-Chronik-Signature"] == f"sha256={expected}"
            (delivery,) = (await client.get(f"/api/v1/jobs/{job_id}/webhooks")).json()
            assert delivery["status"] == "delivered" and delivery["attempts"] == 3
            assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 204]
    finally:
        await runner.cleanup()


async def test_webhook_urls_are_checked(start_orchestrator: Any) -> None:
    unsigned = await start_orchestrator(work_blueprint())
    async with httpx.AsyncClient(base_url=unsigned.url, headers=HEADERS) as client:
        refused = await client.post(
            "/api/v1/jobs/work", json={"initial_data": {}, "webhook_url": "http://127.0.0.1:9/hook"}
        )
        assert refused.status_code == 400 and "WEBHOOK_SECRET" in refused.json()["error"]["message"]
    signed = await start_orchestrator(work_blueprint(), webhook_secret=SECRET)
    async with httpx.AsyncClient(base_url=signed.url, headers=HEADERS) as client:
        bad = await client.post("/api/v1/jobs/work", json={"initial_data": {}, "webhook_url": "ftp://x/y"})
        assert bad.status_code == 400 and "must be an http(s) URL" in bad.json()["error"]["message"]
        missing = await client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/webhooks")
        assert missing.status_code == 404
