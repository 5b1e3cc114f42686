"""The fault harness's own parts can fail: its webhook receiver refuses what it must, and its
checker tells a job left waiting on purpose from a stuck one.

The scenarios (test_faults.py) show the checks passing on a run that kept every promise; these
show the same checks reporting what would break one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from chaos.checks import legitimately_waiting
from chaos.receiver import Receiver
from chronik.adapters.webhook_http import WebhookClient

SECRET = "harness-secret"


async def test_the_receiver_keeps_signed_notifications_and_refuses_the_rest() -> None:
    receiver = Receiver(SECRET, refuse_every=3)
    url = await receiver.start()
    try:
        body = msgspec.json.encode({"event": "job_finished"})
        async with WebhookClient(SECRET) as client:
            first = await client.post(url, body, event_id="job-1:7")
            again = await client.post(url, body, event_id="job-1:7")
            refused = await client.post(url, body, event_id="job-2:5")  # the third request
        async with WebhookClient("another-secret") as forger:
            forged = await forger.post(url, body, event_id="job-3:4")
    finally:
        await receiver.stop()
    answers = (first.status_code, again.status_code, refused.status_code, forged.status_code)
    assert answers == (200, 200, 503, 401)
    assert receiver.receipts == {"job-1:7": 2}
    assert receiver.redelivered == 1
    assert receiver.refused == 1
    assert receiver.bad_signatures == ["job-3:4"]
    assert receiver.bodies == {"job-1:7": {body}}


def test_only_a_job_parked_on_purpose_with_its_deadline_ahead_legitimately_waits() -> None:
    now = datetime.now(UTC)
    waiting = {"status": "waiting_for_human", "decide_by": now + timedelta(minutes=5), "now": now}
    assert legitimately_waiting(waiting, parked=True)
    assert not legitimately_waiting(waiting, parked=False)  # the load meant to decide it: stuck
    overdue = waiting | {"decide_by": now - timedelta(seconds=1)}
    assert not legitimately_waiting(overdue, parked=True)
    running = waiting | {"status": "running", "decide_by": None}
    assert not legitimately_waiting(running, parked=True)
