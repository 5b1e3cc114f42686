"""Job ids: UUIDv7 carrying the instant of their job's creation, to the millisecond."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from chronik.core.ids import job_time, new_job_id

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_a_new_id_is_a_version_7_rfc_4122_uuid() -> None:
    for _ in range(100):
        job_id = new_job_id()
        assert job_id.version == 7
        assert job_id.variant == "specified in RFC 4122"
    assert len({new_job_id() for _ in range(1000)}) == 1000


def test_ids_are_ordered_by_their_time() -> None:
    start = datetime(2026, 11, 30, 23, 59, 59, 990000, tzinfo=UTC)
    instants = [start + timedelta(milliseconds=step) for step in range(0, 40, 3)]
    made = [new_job_id(at) for at in instants]
    shuffled = random.Random(7).sample(made, len(made))
    assert sorted(shuffled) == made
    assert sorted(shuffled, key=str) == made  # the text form sorts the same way
    earlier = new_job_id()
    time.sleep(0.003)
    assert new_job_id() > earlier


def test_job_time_round_trips_to_the_millisecond() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
    assert job_time(new_job_id(at)) == datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    now = job_time(new_job_id())
    assert now is not None and before <= now <= datetime.now(UTC)
    # Every whole millisecond comes back as itself (a float product would lose some of them).
    rng = random.Random(20)
    for _ in range(20000):
        exact = EPOCH + timedelta(milliseconds=rng.randrange(0, 7_000_000_000_000))
        assert job_time(new_job_id(exact)) == exact
    # A partition starts at midnight: a job created then belongs to it, not to the one before.
    midnight = datetime(2039, 1, 3, tzinfo=UTC)
    assert job_time(new_job_id(midnight)) == midnight


def test_a_seed_gives_the_random_bits() -> None:
    at = datetime(2026, 3, 4, tzinfo=UTC)
    seed = uuid4()
    assert new_job_id(at, seed=seed) == new_job_id(at, seed=seed)
    assert new_job_id(at, seed=seed) != new_job_id(at, seed=uuid4())
    assert (new_job_id(at, seed=seed).int & ((1 << 62) - 1)) == seed.int & ((1 << 62) - 1)


def test_a_seed_that_is_already_v7_comes_back_unchanged() -> None:
    recorded = new_job_id(datetime(2025, 1, 1, tzinfo=UTC))
    assert new_job_id(datetime(2026, 6, 1, tzinfo=UTC), seed=recorded) is recorded
    assert new_job_id(seed=recorded) == recorded


def test_an_id_from_before_uuid7_has_no_time() -> None:
    assert job_time(uuid4()) is None
    assert job_time(UUID(int=0)) is None
