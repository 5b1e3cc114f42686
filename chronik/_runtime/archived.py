"""Reading archived jobs: their history straight from the archive file, one ranged read a job.

A job whose partition left the database is found in ``archived_jobs``; its events are one gzip
member of its archive file. Every read checks the member's hash chain against the head the index
recorded, so a changed file answers with an error instead of a different history.
"""

from __future__ import annotations

import json
from uuid import UUID

from chronik.adapters.archive_store import ArchiveStore
from chronik.adapters.postgres import partitions
from chronik.adapters.postgres.database import Database
from chronik.core.archive_format import decode_member
from chronik.core.chain import first_break
from chronik.core.errors import UnknownEventType
from chronik.core.events import decode_event
from chronik.core.records import RecordedEvent

from .verify import ArchiveError

__all__ = ["ArchivedHistory"]


class ArchivedHistory:
    """The events of archived jobs, from the archive ``ARCHIVE_URL`` names."""

    def __init__(self, database: Database, store: ArchiveStore | None) -> None:
        self._database = database
        self._store = store

    async def events(self, job_id: UUID) -> list[RecordedEvent] | None:
        """The archived job's events in order, or None when the job is not archived."""
        async with self._database.connection() as conn:
            row = await partitions.archived_job(conn, job_id)
        if row is None:
            return None
        if self._store is None:
            raise ArchiveError(
                f"job {job_id} is archived (in {row.key}) but no ARCHIVE_URL is set to read it from"
            )
        blob = await self._store.read(row.key, offset=row.offset, length=row.length)
        archived = list(decode_member(blob))
        broken = first_break((event.link() for event in archived), head=row.chain_head)
        if broken is not None or len(archived) != row.events:
            raise ArchiveError(
                f"the archived history of job {job_id} in {self._store.uri(row.key)} does not verify: "
                f"{broken.reason if broken else 'its event count changed'}"
            )
        recorded = []
        for event in archived:
            decoded = decode_event(event.type, bytes(event.data))
            if decoded is None:
                raise UnknownEventType(event.type, event.position)
            recorded.append(
                RecordedEvent(
                    position=event.position,
                    job_id=event.job_id,
                    version=event.version,
                    type=event.type,
                    event=decoded,
                    meta=json.loads(bytes(event.meta)),
                    recorded_at=event.recorded_at,
                )
            )
        return recorded
