"""The file janitor: empties the S3 folder of each job that ended, once, from any instance."""

from __future__ import annotations

import asyncio
import contextlib
import random
from uuid import UUID

import asyncpg
import structlog
from minio import Minio

from chronik.adapters.postgres.queries import QUERIES
from chronik.adapters.s3 import remove_job_files

__all__ = ["FileJanitor"]

log = structlog.get_logger("chronik.files")

_LEASE_SECONDS = 120.0


class FileJanitor:
    """Works off ``file_cleanups``: rows written by the statement that ended a job with files."""

    def __init__(self, pool: asyncpg.Pool, client: Minio, bucket: str, *, interval: float) -> None:
        self._pool = pool
        self._client = client
        self._bucket = bucket
        self._interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        """Clean up until ``stop``."""
        while not stop.is_set():
            try:
                await self.clean()
            except Exception:
                log.exception("file_cleanup_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval * random.uniform(0.8, 1.2))

    async def clean(self) -> int:
        """Empty the folders of due jobs; how many."""
        async with self._pool.acquire() as conn:
            due = [
                UUID(str(row["job_id"]))
                for row in await conn.fetch(QUERIES["claim_file_cleanups"], 20, _LEASE_SECONDS)
            ]
        for job_id in due:
            removed = await remove_job_files(self._client, self._bucket, str(job_id))
            async with self._pool.acquire() as conn:
                await conn.execute(QUERIES["finish_file_cleanup"], job_id)
            log.info("job_files_removed", job_id=str(job_id), objects=removed)
        return len(due)
