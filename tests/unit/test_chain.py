"""The hash chain: a deterministic hash per event, and the first place a job's chain breaks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest

from chronik.core.chain import ChainLink, event_hash, first_break

JOB = UUID("0190f3a2-7b1c-7d4e-8f00-123456789abc")
AT = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)


def chain(*texts: str, job_id: UUID = JOB) -> list[ChainLink]:
    """A well-formed chain of one event per data text, versions from 1."""
    links: list[ChainLink] = []
    prev: bytes | None = None
    for version, data in enumerate(texts, start=1):
        link = ChainLink(
            job_id=job_id,
            version=version,
            type="StateEntered",
            data=data,
            meta='{"actor": "ada"}',
            recorded_at=AT + timedelta(seconds=version),
            hash=b"",
        )
        prev = rehash(prev, link)
        links.append(msgspec.structs.replace(link, hash=prev))
    return links


def rehash(prev: bytes | None, link: ChainLink) -> bytes:
    """The hash ``link`` ought to have after ``prev``."""
    return event_hash(
        prev,
        job_id=link.job_id,
        version=link.version,
        type=link.type,
        data=link.data,
        meta=link.meta,
        recorded_at=link.recorded_at,
    )


def test_the_hash_is_deterministic_and_covers_every_field() -> None:
    link = ChainLink(
        job_id=JOB,
        version=2,
        type="StateEntered",
        data='{"a": 1.10, "name": "Zoë"}',
        meta="{}",
        recorded_at=AT,
        hash=b"",
    )
    first = rehash(b"\x01" * 32, link)
    assert first == rehash(b"\x01" * 32, link)
    assert len(first) == 32
    # The encoding the SQL twin (chronik_event_hash_v1) hashes: the fields a line each, the
    # instant in microseconds since the epoch, after the previous hash.
    micros = 1772600767891234
    text = f"{JOB}\n2\nStateEntered\n" + '{"a": 1.10, "name": "Zoë"}' + f"\n{{}}\n{micros}"
    assert first == hashlib.sha256(b"\x01" * 32 + text.encode()).digest()
    assert rehash(None, link) == hashlib.sha256(text.encode()).digest()
    changed: list[dict[str, Any]] = [
        {"job_id": UUID(int=JOB.int + 1)},
        {"version": 3},
        {"type": "JobFinished"},
        {"data": '{"a": 1.1, "name": "Zoë"}'},
        {"meta": '{"actor": "eve"}'},
        {"recorded_at": AT + timedelta(microseconds=1)},
    ]
    for change in changed:
        assert rehash(b"\x01" * 32, msgspec.structs.replace(link, **change)) != first, change
    assert rehash(b"\x02" * 32, link) != first


def test_the_instant_counts_in_whole_microseconds_before_the_epoch_too() -> None:
    before = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    found = event_hash(None, job_id=JOB, version=1, type="T", data="{}", meta="{}", recorded_at=before)
    assert found == hashlib.sha256(f"{JOB}\n1\nT\n{{}}\n{{}}\n-1".encode()).digest()


def test_a_good_chain_has_no_break() -> None:
    links = chain('{"n": 1}', '{"n": 2}', '{"n": 3}')
    assert first_break(links) is None
    assert first_break(links, head=links[-1].hash) is None
    assert first_break([], head=None) is None


def test_a_changed_data_text_breaks_the_chain_at_its_version() -> None:
    links = chain('{"n": 1}', '{"amount": 12}', '{"n": 3}')
    # The same document in another text form is another event: the chain hashes bytes.
    for data in ('{"amount": 5000}', '{"amount":12}', '{"amount": 12.0}'):
        edited = [links[0], msgspec.structs.replace(links[1], data=data), links[2]]
        broken = first_break(edited, head=links[-1].hash)
        assert broken is not None
        assert (broken.job_id, broken.version) == (JOB, 2)
        assert "does not match its hash" in broken.reason


def test_rehashing_the_edited_event_moves_the_break_to_the_next_one() -> None:
    links = chain('{"n": 1}', '{"n": 2}', '{"n": 3}')
    forged = msgspec.structs.replace(links[1], data='{"n": 20}')
    forged = msgspec.structs.replace(forged, hash=rehash(links[0].hash, forged))
    broken = first_break([links[0], forged, links[2]])
    assert broken is not None and broken.version == 3


def test_a_missing_version_is_named() -> None:
    links = chain('{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}')
    broken = first_break([links[0], links[2], links[3]], head=links[-1].hash)
    assert broken is not None
    assert (broken.job_id, broken.version) == (JOB, 2)
    assert broken.reason == "version 2 is missing"
    # A job whose first event is gone is missing version 1.
    first_gone = first_break(links[1:])
    assert first_gone is not None and first_gone.version == 1


@pytest.mark.parametrize("kept", [1, 2, 3])
def test_a_chain_cut_short_does_not_reach_its_head(kept: int) -> None:
    links = chain('{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}')
    # Every event kept is intact: only the head the jobs row (or manifest) recorded tells.
    assert first_break(links[:kept]) is None
    broken = first_break(links[:kept], head=links[-1].hash)
    assert broken is not None
    assert (broken.job_id, broken.version) == (JOB, kept)
    assert "does not end at the recorded head" in broken.reason


def test_a_head_that_is_not_the_last_hash_is_a_break() -> None:
    links = chain('{"n": 1}', '{"n": 2}')
    broken = first_break(links, head=links[0].hash)
    assert broken is not None and broken.version == 2
    assert "does not end at the recorded head" in broken.reason
