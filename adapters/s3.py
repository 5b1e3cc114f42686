"""``task_files``: a job's folder in S3-compatible storage, for payloads too big for the log.

Handlers and worker tasks that ask for ``task_files`` get the folder
``jobs/<job_id>/`` of the bucket. Files stream between disk and S3 (multipart,
8 MiB parts, one at a time), so a file larger than memory passes; each upload is checked by
size and ETag, each download by size. The keys a handler or a task stored are
recorded in the job's history (``FilesStored``), and the folder is emptied
when the job ends.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from chronik.core.errors import ChronikError, ConfigError

__all__ = ["FilesError", "S3Config", "TaskFiles"]

_PART_SIZE = 8 * 1024 * 1024


class FilesError(ChronikError):
    """An object did not arrive whole (its size or ETag differs), or S3 refused it."""

    code = "FILES_ERROR"


class S3Config(msgspec.Struct, frozen=True, kw_only=True):
    """Where the files go: ``S3_ENDPOINT``, ``S3_ACCESS_KEY``, ``S3_SECRET_KEY``, ``S3_BUCKET``."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = "chronik"
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Config | None:
        """The S3 settings, or None when ``S3_ENDPOINT`` is unset."""
        env = os.environ if env is None else env
        endpoint = env.get("S3_ENDPOINT")
        if not endpoint:
            return None
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"S3_ENDPOINT={endpoint!r} must be an http(s) URL such as http://minio:9000")
        access, secret = env.get("S3_ACCESS_KEY", ""), env.get("S3_SECRET_KEY", "")
        if not access or not secret:
            raise ConfigError("S3_ENDPOINT is set: S3_ACCESS_KEY and S3_SECRET_KEY must be set too")
        return cls(
            endpoint=f"{parts.scheme}://{parts.netloc}",
            access_key=access,
            secret_key=secret,
            bucket=env.get("S3_BUCKET") or "chronik",
            region=env.get("S3_REGION") or None,
        )

    def client(self) -> Minio:
        """A minio client of this storage."""
        parts = urlsplit(self.endpoint)
        return Minio(
            parts.netloc,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=parts.scheme == "https",
            region=self.region,
        )


class TaskFiles:
    """The folder ``jobs/<job_id>/`` of one job; names are relative to it."""

    def __init__(self, client: Minio, bucket: str, job_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self.prefix = f"jobs/{job_id}/"
        self.stored: list[str] = []
        """The keys stored through this object, in order (recorded as ``FilesStored``)."""

    def key(self, name: str) -> str:
        """The object key of ``name``."""
        clean = name.strip("/")
        if not clean or ".." in clean.split("/"):
            raise FilesError(f"{name!r} is not a file name inside the job's folder")
        return self.prefix + clean

    async def upload(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Stream a local file up as ``name`` (default: its own name); its key."""
        local = Path(path)
        key = self.key(name or local.name)

        def put() -> tuple[int, str | None]:
            size = os.path.getsize(local)
            # One part at a time: minio buffers each part it sends, so memory stays at one part.
            written = self._client.fput_object(
                self._bucket, key, str(local), part_size=_PART_SIZE, num_parallel_uploads=1
            )
            return size, written.etag

        size, etag = await asyncio.to_thread(put)
        await self._check(key, size, etag)
        return key

    async def download(self, name: str, path: str | os.PathLike[str]) -> Path:
        """Stream ``name`` down to a local file; the file."""
        key = self.key(name)
        local = Path(path)

        def get() -> tuple[int | None, int]:
            stat = self._client.fget_object(self._bucket, key, str(local))
            return stat.size, os.path.getsize(local)

        expected, got = await asyncio.to_thread(get)
        if expected is not None and got != expected:
            raise FilesError(f"{key}: downloaded {got} bytes of {expected}")
        return local

    async def write_json(self, name: str, value: Any) -> str:
        """Store ``value`` as JSON under ``name``; its key."""
        body = json.dumps(value, separators=(",", ":")).encode()
        key = self.key(name)
        written = await asyncio.to_thread(
            self._client.put_object, self._bucket, key, io.BytesIO(body), len(body), "application/json"
        )
        await self._check(key, len(body), written.etag)
        return key

    async def read_json(self, name: str) -> Any:
        """The JSON stored under ``name``."""

        def read() -> bytes:
            response = self._client.get_object(self._bucket, self.key(name))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return json.loads(await asyncio.to_thread(read))

    async def upload_dir(self, path: str | os.PathLike[str], name: str) -> list[str]:
        """Upload every file under a local directory to the folder ``name``; their keys."""
        root = Path(path)
        keys = []
        found = await asyncio.to_thread(lambda: sorted(p for p in root.rglob("*") if p.is_file()))
        for file in found:
            keys.append(await self.upload(file, f"{name.strip('/')}/{file.relative_to(root).as_posix()}"))
        return keys

    async def download_dir(self, name: str, path: str | os.PathLike[str]) -> list[Path]:
        """Download every object under the folder ``name`` into a local directory; the files."""
        root, folder = Path(path), self.key(name) + "/"
        files = []
        for key in await self.list(name):
            target = root / key.removeprefix(folder)
            os.makedirs(target.parent, exist_ok=True)
            files.append(await self.download(key.removeprefix(self.prefix), target))
        return files

    async def list(self, name: str = "") -> list[str]:
        """The keys under the folder ``name`` (default: the whole job's folder)."""
        prefix = self.key(name) + "/" if name else self.prefix

        def keys() -> list[str]:
            return [o.object_name for o in self._client.list_objects(self._bucket, prefix, recursive=True)]

        return await asyncio.to_thread(keys)

    def uri(self, key: str) -> str:
        """The ``s3://bucket/key`` URI of an object key."""
        return f"s3://{self._bucket}/{key}"

    async def upload_url(self, name: str, *, seconds: int) -> str:
        """A presigned URL that lets whoever holds it ``PUT`` the object ``name`` for ``seconds``."""
        key = self.key(name)
        return await asyncio.to_thread(
            self._client.presigned_put_object, self._bucket, key, timedelta(seconds=seconds)
        )

    async def download_url(self, name: str, *, seconds: int) -> str:
        """A presigned URL that lets whoever holds it ``GET`` the object ``name`` for ``seconds``."""
        key = self.key(name)
        return await asyncio.to_thread(
            self._client.presigned_get_object, self._bucket, key, timedelta(seconds=seconds)
        )

    async def upload_stream(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Stream ``chunks`` up as ``name``, ``length`` bytes when known; its key.

        Memory stays at one part: of 8 MiB without a length (so at most 80 GB), of
        minio's choice with one (5 MiB up to 48 GB). The object is checked like ``upload``.
        """
        key = self.key(name)
        reader = _StreamReader(chunks, asyncio.get_running_loop())

        def put() -> str | None:
            written = self._client.put_object(
                self._bucket,
                key,
                reader,  # type: ignore[arg-type]  # read() is all minio calls on it
                -1 if length is None else length,
                content_type=content_type,
                part_size=_PART_SIZE if length is None else 0,
                num_parallel_uploads=1,
            )
            return written.etag

        try:
            etag = await asyncio.to_thread(put)
        except S3Error as exc:
            raise FilesError(f"{key}: S3 refused the upload ({exc.code}: {exc.message})") from exc
        except OSError as exc:  # minio's "stream having not enough data": the body ended early
            raise FilesError(f"{key}: {exc}") from exc
        await self._check(key, reader.count, etag)
        return key

    async def remove(self, name: str) -> None:
        """Delete the object ``name`` (nothing happens when there is none)."""
        await asyncio.to_thread(self._client.remove_object, self._bucket, self.key(name))

    async def _check(self, key: str, size: int, etag: str | None) -> None:
        stat = await asyncio.to_thread(self._client.stat_object, self._bucket, key)
        if stat.size != size or (etag and stat.etag and stat.etag.strip('"') != etag.strip('"')):
            raise FilesError(f"{key}: stored {stat.size} bytes (ETag {stat.etag}), sent {size} (ETag {etag})")
        self.stored.append(key)


class _StreamReader:
    """A blocking ``read()`` over an async byte stream, for minio in a worker thread.

    Each read hands the event loop the wait for the next chunk, so the request body
    flows into S3 without being held whole anywhere.
    """

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buffer = bytearray()
        self._ended = False
        self.count = 0
        """Bytes handed out so far."""

    async def _next(self) -> bytes | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            if chunk is None:
                self._ended = True
            else:
                self._buffer += chunk
        end = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        self.count += len(data)
        return data


async def remove_job_files(client: Minio, bucket: str, job_id: str) -> int:
    """Delete the job's folder; how many objects were removed."""

    def remove() -> int:
        names = [o.object_name for o in client.list_objects(bucket, f"jobs/{job_id}/", recursive=True)]
        errors = list(client.remove_objects(bucket, [DeleteObject(n) for n in names if n]))
        if errors:
            raise FilesError(f"could not remove {len(errors)} object(s) of job {job_id}: {errors[0]}")
        return len(names)

    return await asyncio.to_thread(remove)


def ensure_bucket(client: Minio, bucket: str) -> None:
    """Create the bucket when it does not exist (at start)."""
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
