"""Clients' side of ``task_files``: presigned links to a job's S3 folder, and uploads streamed through.

The objects are the very ones the job's handlers and workers see: the folder
``jobs/<job_id>/`` of the bucket (``TaskFiles``), so a file a client uploads as
``input.csv`` is ``task_files``' ``input.csv``. Every call checks that the caller
owns the job first (another client's job is ``JobNotFound``).

Uploads are refused once the job has ended: the janitor empties an ended job's
folder once, so a later object would outlive it. A streamed upload that finishes
after the job ended meanwhile is removed again and refused the same way. (A
presigned upload URL cannot be held to that: S3 accepts it until it expires.)

A client's upload is not recorded in the job's log (``FilesStored``), unlike what
a handler or a worker stores, which is recorded with the outcome it belongs to.
Alone, the event would move the job: appended while its handler runs, it makes
that handler's outcome lose its race, so the handler runs again, for nothing
but a record. The record is not what removes the files either (the folder of
every ended job is emptied, whatever the log says), and a presigned upload is
never seen here at all. The upload is logged (``job_file_uploaded``) instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import structlog
from minio import Minio

from chronik.adapters.s3 import S3Config, TaskFiles
from chronik.core.errors import FilesNotConfigured, InvalidInput, JobEnded

from .jobs import JobService

__all__ = ["DOWNLOAD_LINK_SECONDS", "MAX_LINK_SECONDS", "MAX_NAME_LENGTH", "JobFiles", "check_file_name"]

log = structlog.get_logger("chronik.files")

MAX_LINK_SECONDS = 7 * 24 * 3600
"""The longest a presigned upload URL may last: S3's own limit for a signature (SigV4)."""

DOWNLOAD_LINK_SECONDS = 60
"""The life of the presigned URL a download redirects to: enough for the client to start."""

MAX_NAME_LENGTH = 255
"""The longest file name (characters), as most file systems allow."""


def check_file_name(name: str) -> None:
    """``InvalidInput`` unless ``name`` is one plain file name: no folders, no ``..``, no control
    characters, 1 to ``MAX_NAME_LENGTH`` characters."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"a file name has 1 to {MAX_NAME_LENGTH} characters, got {len(name)}")
    if "/" in name or "\\" in name:
        raise InvalidInput(f"file name {name!r} must not hold a path separator (/ or \\)")
    if name == "." or ".." in name:
        raise InvalidInput(f"file name {name!r} must not be '.' or hold '..'")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise InvalidInput(f"file name {name!r} must not hold control characters")


class JobFiles:
    """The client file routes' service: links and uploads for the jobs a client owns."""

    def __init__(self, jobs: JobService, s3: S3Config | None) -> None:
        self._jobs = jobs
        self._bucket = s3.bucket if s3 is not None else ""
        self._client: Minio | None = s3.client() if s3 is not None else None

    async def upload_url(self, job_id: UUID, name: str, *, expires_in: int, owner: str | None) -> str:
        """A presigned ``PUT`` URL for the job's file ``name``, good for ``expires_in`` seconds."""
        folder = await self._folder(job_id, name, owner=owner, live=True)
        if not 1 <= expires_in <= MAX_LINK_SECONDS:
            raise InvalidInput(f"expires_in must be from 1 to {MAX_LINK_SECONDS} seconds, got {expires_in}")
        return await folder.upload_url(name, seconds=expires_in)

    async def upload(
        self,
        job_id: UUID,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        length: int | None,
        content_type: str,
        actor: str,
        owner: str | None,
    ) -> str:
        """Stream ``chunks`` into the job's file ``name``; its ``s3://`` URI."""
        folder = await self._folder(job_id, name, owner=owner, live=True)
        key = await folder.upload_stream(name, chunks, length=length, content_type=content_type)
        if (await self._jobs.get(job_id, owner=owner)).is_terminal:
            # It ended while the body came in, and its folder may be emptied already: nothing
            # would ever remove this object.
            await folder.remove(name)
            raise JobEnded(f"job {job_id} ended during the upload; the file was not kept")
        log.info("job_file_uploaded", job_id=str(job_id), key=key, client=actor)
        return folder.uri(key)

    async def download_url(self, job_id: UUID, name: str, *, owner: str | None) -> str:
        """A presigned ``GET`` URL of the job's file ``name``, good for ``DOWNLOAD_LINK_SECONDS``."""
        folder = await self._folder(job_id, name, owner=owner, live=False)
        return await folder.download_url(name, seconds=DOWNLOAD_LINK_SECONDS)

    async def _folder(self, job_id: UUID, name: str, *, owner: str | None, live: bool) -> TaskFiles:
        """The job's folder, once the caller owns the job (first), S3 is on, the name is plain,
        and (``live``) the job has not ended."""
        state = await self._jobs.get(job_id, owner=owner)
        if self._client is None:
            raise FilesNotConfigured(
                "job files need S3-compatible storage, and this orchestrator has none: "
                "set S3_ENDPOINT (with S3_ACCESS_KEY and S3_SECRET_KEY)"
            )
        check_file_name(name)
        if live and state.is_terminal:
            raise JobEnded(
                f"job {job_id} has ended ({state.status}); its files are removed, and no more can be added"
            )
        return TaskFiles(self._client, self._bucket, str(job_id))
