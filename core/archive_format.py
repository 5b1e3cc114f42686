"""The archive file of a partition of the log, and its manifest.

An archive file holds one gzip member per job, jobs in id order, each member the job's events
as JSON lines in version order. A file of concatenated members is still one valid gzip file
(``zcat`` reads it whole), and one job's events are one ranged read away: the manifest (and the
``archived_jobs`` table) record each member's offset and length. ``data`` and ``meta`` are kept
byte for byte as PostgreSQL stored them (jsonb's text form), so the hash chain verifies from
the file alone. This module only encodes and decodes bytes; where files go is the adapters'.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from datetime import datetime
from uuid import UUID

import msgspec

from .chain import ChainLink

__all__ = ["FORMAT", "ArchivedEvent", "Manifest", "ManifestJob", "decode_member", "encode_member"]

FORMAT = "chronik-archive/1"


class ArchivedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an archive file: an event with its position and hash (hex)."""

    position: int
    job_id: UUID
    version: int
    type: str
    data: msgspec.Raw
    meta: msgspec.Raw
    recorded_at: datetime
    hash: str

    def link(self) -> ChainLink:
        """The event as the hash chain encodes it."""
        return ChainLink(
            job_id=self.job_id,
            version=self.version,
            type=self.type,
            data=bytes(self.data).decode(),
            meta=bytes(self.meta).decode(),
            recorded_at=self.recorded_at,
            hash=bytes.fromhex(self.hash),
        )


class ManifestJob(msgspec.Struct, frozen=True, array_like=True):
    """A job in an archive file: id, member offset and length, event count, chain head (hex)."""

    job_id: UUID
    offset: int
    length: int
    events: int
    head: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an archive file holds, written beside it and checked when it is read back."""

    format: str = FORMAT
    partition: str
    lo: datetime | None  # None: the legacy partition, from the beginning of time
    hi: datetime
    events: int
    first_position: int | None
    last_position: int | None
    bytes: int
    sha256: str
    written_at: datetime
    jobs: tuple[ManifestJob, ...]


_encoder = msgspec.json.Encoder()
_line = msgspec.json.Decoder(ArchivedEvent)


def encode_member(events: Sequence[ArchivedEvent]) -> bytes:
    """One job's events as a gzip member of JSON lines."""
    body = b"".join(_encoder.encode(event) + b"\n" for event in events)
    return gzip.compress(body, compresslevel=6, mtime=0)


def decode_member(blob: bytes) -> Iterator[ArchivedEvent]:
    """The events of one gzip member (or of a whole file: members decompress as one stream)."""
    for line in gzip.decompress(blob).splitlines():
        if line:
            yield _line.decode(line)
