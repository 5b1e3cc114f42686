"""The file janitor: empties the S3 folder of each job that ended, once, from any instance."""

from __future__ import annotations

import asyncio

import structlog
from minio import Minio

from chronik.adapters.postgres import cleanups
from chronik.adapters.postgres.database import Database
from chronik.adapters.s3 import remove_job_files

from .loops import run_loop

__all__ = ["FileJanitor"]

log = structlog.get_logger("chronik.files")

_LEASE_SECONDS = 120.0
_BATCH = 20


class FileJanitor:
    """Works off ``file_cleanups``: rows written by the statement that ended a job with files."""

    def __init__(self, database: Database, client: Minio, bucket: str, *, interval: float) -> None:
        self._database = database
        self._client = client
        self._bucket = bucket
        self._interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        """Clean up until ``stop``."""
        await run_loop("files", self._tick, stop, interval=self._interval)

    async def _tick(self) -> None:
        await self.clean()

    async def clean(self) -> int:
        """Empty the folders of due jobs; how many."""
        async with self._database.connection() as conn:
            due = await cleanups.claim_due(conn, limit=_BATCH, lease_seconds=_LEASE_SECONDS)
        for job_id in due:
            removed = await remove_job_files(self._client, self._bucket, str(job_id))
            async with self._database.connection() as conn:
                await cleanups.finish(conn, job_id)
            log.info("job_files_removed", job_id=str(job_id), objects=removed)
        return len(due)
