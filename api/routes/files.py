"""Client routes to a job's files in S3 (``task_files``): an upload URL, a streamed upload, a download.

They address the job's folder ``jobs/<job_id>/``, the one its handlers and workers
use. Each checks first that the caller owns the job (404 otherwise); without S3
they answer 501 ``FILES_NOT_CONFIGURED``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.status_codes import HTTP_302_FOUND

from chronik.core.errors import InvalidInput

from ..catalog_schemas import FileUploaded, FileUploadLink
from ..guards import client_of, owner_of
from ..ports import Orchestrator

__all__ = ["download_file", "file_upload_link", "upload_file"]


def _engine(state: State) -> Orchestrator:
    engine: Orchestrator = state.engine
    return engine


def _job_id(raw: str) -> UUID:
    # As in routes/jobs.py, which registers these routes (importing it from here would be circular).
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(f"job id {raw!r} is not a UUID") from None


@get("/jobs/{job_id:str}/files/upload", summary="A presigned URL to upload a job's file")
async def file_upload_link(
    job_id: FromPath[str],
    filename: FromQuery[str],
    state: State,
    request: Request[Any, Any, Any],
    expires_in: FromQuery[int] = 3600,
) -> FileUploadLink:
    """A URL to ``PUT`` the file ``filename`` into the job's folder directly, for ``expires_in`` s."""
    url = await _engine(state).files.upload_url(
        _job_id(job_id), filename, expires_in=expires_in, owner=owner_of(request)
    )
    return FileUploadLink(url=url, expires_in=expires_in)


@put(
    "/jobs/{job_id:str}/files/content/{filename:str}",
    summary="Upload a job's file through the orchestrator",
    request_max_body_size=None,  # streamed to S3, never held: S3's limits apply
)
async def upload_file(
    job_id: FromPath[str], filename: FromPath[str], state: State, request: Request[Any, Any, Any]
) -> FileUploaded:
    """Stream the request body into the job's file ``filename``; its ``s3://`` URI."""
    raw_length = request.headers.get("content-length")
    if raw_length is not None and not raw_length.isdigit():
        raise InvalidInput(f"Content-Length must be a number of bytes, got {raw_length!r}")
    uri = await _engine(state).files.upload(
        _job_id(job_id),
        filename,
        request.stream(),
        length=None if raw_length is None else int(raw_length),
        content_type=request.headers.get("content-type") or "application/octet-stream",
        actor=client_of(request),
        owner=owner_of(request),
    )
    return FileUploaded(s3_uri=uri)


@get(
    "/jobs/{job_id:str}/files/download/{filename:str}",
    summary="Download a job's file (a redirect to S3)",
    status_code=HTTP_302_FOUND,
)
async def download_file(
    job_id: FromPath[str], filename: FromPath[str], state: State, request: Request[Any, Any, Any]
) -> Redirect:
    """302 to a presigned S3 URL of the job's file ``filename``, good for 60 seconds."""
    url = await _engine(state).files.download_url(_job_id(job_id), filename, owner=owner_of(request))
    return Redirect(url, status_code=HTTP_302_FOUND)
