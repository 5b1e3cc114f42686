"""Archive files: gzip members of JSON lines that keep each event's data byte for byte."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from chronik.core.archive_format import ArchivedEvent, decode_member, encode_member
from chronik.core.chain import event_hash, first_break

JOB = UUID("0190f3a2-7b1c-7d4e-8f00-123456789abc")
OTHER = UUID("0190f3a2-7b1c-7d4e-8f00-cba987654321")
AT = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)

# Text forms a float or a re-encoding would not keep: a trailing zero, an exponent, key order,
# spacing, escapes and non-ASCII text.
DATA = (
    b'{"a": 1.10}',
    b'{"z": 1, "a": [1E+2, -0.0, 12345678901234567890.5], "n": null}',
    b'{"text": "Zo\xc3\xab \\u00e9 \\"quoted\\"\\n"}',
)


def events(job_id: UUID = JOB) -> list[ArchivedEvent]:
    made: list[ArchivedEvent] = []
    prev: bytes | None = None
    for version, data in enumerate(DATA, start=1):
        prev = event_hash(
            prev,
            job_id=job_id,
            version=version,
            type="StateEntered",
            data=data.decode(),
            meta='{"actor": "ada"}',
            recorded_at=AT,
        )
        made.append(
            ArchivedEvent(
                position=100 + version,
                job_id=job_id,
                version=version,
                type="StateEntered",
                data=msgspec.Raw(data),
                meta=msgspec.Raw(b'{"actor": "ada"}'),
                recorded_at=AT,
                hash=prev.hex(),
            )
        )
    return made


def test_a_member_round_trips_every_byte_of_data_and_meta() -> None:
    written = events()
    member = encode_member(written)
    read = list(decode_member(member))
    assert [bytes(event.data) for event in read] == list(DATA)
    assert [bytes(event.meta) for event in read] == [b'{"actor": "ada"}'] * 3
    assert [(e.position, e.job_id, e.version, e.type, e.recorded_at, e.hash) for e in read] == [
        (e.position, e.job_id, e.version, e.type, e.recorded_at, e.hash) for e in written
    ]
    # The chain verifies from the file alone.
    assert first_break((event.link() for event in read), head=bytes.fromhex(written[-1].hash)) is None
    assert read[0].link().data == '{"a": 1.10}'


def test_a_member_is_one_gzip_member_of_json_lines_and_the_same_bytes_each_time() -> None:
    member = encode_member(events())
    assert member == encode_member(events())  # no timestamp in the gzip header
    lines = gzip.decompress(member).decode().splitlines()
    assert len(lines) == 3
    assert '"data":{"a": 1.10}' in lines[0]


def test_members_of_a_file_decode_one_at_a_time_or_as_one_stream() -> None:
    first, second = encode_member(events(JOB)), encode_member(events(OTHER))
    whole = first + second
    assert [e.job_id for e in decode_member(whole[len(first) :])] == [OTHER] * 3
    assert [e.job_id for e in decode_member(whole)] == [JOB] * 3 + [OTHER] * 3
    assert gzip.decompress(whole).count(b"\n") == 6  # zcat reads the file whole
