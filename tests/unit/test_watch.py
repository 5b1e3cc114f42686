"""The hub of waiting clients: payloads reach only their job's waiters, in order, with no lost wake-up."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from chronik._runtime.watch import JobNotice, JobWatch, parse_notice
from chronik.adapters.postgres.listener import Listener


def test_payloads_parse_and_garbage_does_not() -> None:
    job_id = uuid4()
    assert parse_notice(f"{job_id}:12:waiting_for_worker") == (
        str(job_id),
        JobNotice(12, "waiting_for_worker"),
    )
    for garbage in ("", "x", f"{job_id}", f"{job_id}:x:running", f"{job_id}:3:", f"{job_id}:-1:running"):
        assert parse_notice(garbage) is None


async def test_a_notice_wakes_only_its_job_and_only_past_the_version_read() -> None:
    watch = JobWatch()
    mine, other = uuid4(), uuid4()
    with watch.subscribe(mine) as subscription, watch.subscribe(other) as bystander:
        assert watch.watching == 2
        # Sent between subscribing and reading: kept, not lost.
        watch.notified(f"{mine}:3:running")
        assert await subscription.next(after_version=2, within=1) == JobNotice(3, "running")
        # Already read: not news.
        watch.notified(f"{mine}:3:running")
        assert await subscription.next(after_version=3, within=0.05) is None
        # The newest of several wins.
        watch.notified(f"{mine}:4:running")
        watch.notified(f"{mine}:5:finished")
        assert await subscription.next(after_version=3, within=1) == JobNotice(5, "finished")
        assert await bystander.next(after_version=0, within=0.05) is None
        watch.notified("not a payload")  # logged and ignored
    assert watch.watching == 0


async def test_a_waiter_is_woken_while_it_waits() -> None:
    watch = JobWatch()
    job_id = uuid4()
    with watch.subscribe(job_id) as subscription:
        waiting = asyncio.create_task(subscription.next(after_version=1, within=5))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        watch.notified(f"{job_id}:2:cancelled")
        assert await asyncio.wait_for(waiting, timeout=1) == JobNotice(2, "cancelled")


async def test_a_reconnection_makes_every_waiter_read_again_and_closing_ends_every_wait() -> None:
    watch = JobWatch()
    first, second = uuid4(), uuid4()
    with watch.subscribe(first) as one, watch.subscribe(second) as two:
        watch.notified(f"{first}:9:running")
        watch.reconnected()  # whatever was pending, the status is unknown now
        assert await one.next(after_version=9, within=1) == JobNotice(9, None)
        assert await two.next(after_version=100, within=1) == JobNotice(0, None)
        waiting = asyncio.create_task(one.next(after_version=9, within=5))
        await asyncio.sleep(0.01)
        watch.close()
        assert await asyncio.wait_for(waiting, timeout=1) is None and one.closed
    with watch.subscribe(first) as late:  # after closing, a wait ends at once
        assert late.closed and await late.next(after_version=0, within=5) is None


def test_a_listener_subscribes_only_to_its_channels() -> None:
    listener = Listener("postgresql://unused", ["chronik_jobs"])
    listener.subscribe("chronik_jobs", on_notify=lambda _payload: None)
    with pytest.raises(ValueError, match="does not listen on 'elsewhere'"):
        listener.subscribe("elsewhere", on_notify=lambda _payload: None)


def test_a_listener_hands_payloads_on_and_survives_a_failing_subscriber() -> None:
    listener = Listener("postgresql://unused", ["chronik_jobs", "chronik_steps"])
    heard: list[str] = []

    def broken(_payload: str) -> None:
        raise RuntimeError("a bug in one subscriber")

    listener.subscribe("chronik_jobs", on_notify=broken, on_reconnect=lambda: heard.append("again"))
    listener.subscribe("chronik_jobs", on_notify=heard.append)
    woken = listener.signal("chronik_jobs").current()
    listener._notify(None, 0, "chronik_jobs", "payload")
    listener._notify(None, 0, "chronik_steps", "not theirs")
    assert heard == ["payload"] and woken.is_set()
    listener._wake_all()  # on every (re)connection
    assert heard == ["payload", "again"]
