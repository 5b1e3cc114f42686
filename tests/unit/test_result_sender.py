"""The worker SDK's result sender rides out an outage: 503s are sent again, not counted to a drop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

from chronik import _result_sender
from chronik._result_sender import ResultSender
from chronik.core.wire import ResultBody


class _Orchestrator:
    """A link whose orchestrator answers 503 (its database restarting) ``down`` times, then takes results."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.sent = 0

    async def send(self, method: str, path: str, body: msgspec.Struct) -> tuple[int, str, float]:
        self.sent += 1
        if self.sent <= self.down:
            return 503, json.dumps({"error": {"code": "DATABASE_UNAVAILABLE", "message": "restarting"}}), 2.0
        count = len(msgspec.to_builtins(body)["results"])
        return 200, json.dumps({"results": [{"status": "accepted"}] * count}), 0.0


async def test_a_result_outlasts_more_503s_than_the_old_six_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_result_sender, "_delay", lambda tries, wait: 0.001)  # no real waiting
    orchestrator = _Orchestrator(down=12)
    sender = ResultSender(orchestrator)  # type: ignore[arg-type]
    running = asyncio.create_task(sender.run())
    try:
        await asyncio.wait_for(sender.report(ResultBody(task_id="t-1", data={"ok": True})), timeout=5)
    finally:
        running.cancel()
    assert orchestrator.sent == 13, "sent until the orchestrator took it, not dropped after 6 tries"


async def test_a_result_is_dropped_only_after_the_give_up_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_result_sender, "_delay", lambda tries, wait: 0.001)
    monkeypatch.setattr(_result_sender, "_GIVE_UP_SECONDS", 0.05)
    orchestrator: Any = _Orchestrator(down=10**9)
    sender = ResultSender(orchestrator)
    running = asyncio.create_task(sender.run())
    try:
        await asyncio.wait_for(sender.report(ResultBody(task_id="t-2")), timeout=5)
    finally:
        running.cancel()
    assert orchestrator.sent > 6
