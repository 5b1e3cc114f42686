"""Where archive files of the log go: a local folder or an S3 bucket (through the minio SDK).

``ARCHIVE_URL`` names it: ``file:///var/lib/chronik/archive`` (or a plain path) or
``s3://bucket/prefix`` on the S3-compatible storage ``S3_ENDPOINT`` and its keys point at.
Writes to a folder go to a temporary name first and are renamed into place after an fsync, so
a crash never leaves half a file under the final name.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from chronik.core.errors import ConfigError

from .s3 import S3Config

__all__ = ["ArchiveStore", "FolderArchive", "S3Archive", "open_archive"]


class ArchiveStore(Protocol):
    """A place for archive files, addressed by key (``events_p20261130.jsonl.gz``)."""

    def uri(self, key: str) -> str:
        """The file's address, as recorded in ``event_partitions``."""
        ...

    async def put_file(self, key: str, path: Path) -> None:
        """Store a local file under ``key``, replacing any file there."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``."""
        ...

    async def fetch_file(self, key: str, path: Path) -> None:
        """Copy the stored file to a local path."""
        ...

    async def read(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """The stored file's bytes, or a range of them."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        ...


class FolderArchive:
    """Archive files in a local (or mounted) folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def uri(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()

    async def put_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._put, key, path)

    def _put(self, key: str, path: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / key
        partial = final.with_name(final.name + ".partial")
        shutil.copyfile(path, partial)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, final)

    async def put_bytes(self, key: str, data: bytes) -> None:
        def put() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            final = self.root / key
            partial = final.with_name(final.name + ".partial")
            with partial.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)

        await asyncio.to_thread(put)

    async def fetch_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, self.root / key, path)

    async def read(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        def read() -> bytes:
            with (self.root / key).open("rb") as handle:
                handle.seek(offset)
                return handle.read() if length is None else handle.read(length)

        return await asyncio.to_thread(read)

    async def exists(self, key: str) -> bool:
        return (self.root / key).is_file()


class S3Archive:
    """Archive files in an S3 bucket, under a prefix."""

    def __init__(self, client: Minio, bucket: str, prefix: str, endpoint: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._endpoint = endpoint

    def _key(self, key: str) -> str:
        return f"{self._prefix}/{key}" if self._prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._key(key)}"

    async def _ensure_bucket(self) -> None:
        if not await asyncio.to_thread(self._client.bucket_exists, self._bucket):
            await asyncio.to_thread(self._client.make_bucket, self._bucket)

    async def put_file(self, key: str, path: Path) -> None:
        await self._ensure_bucket()
        await asyncio.to_thread(self._client.fput_object, self._bucket, self._key(key), str(path))

    async def put_bytes(self, key: str, data: bytes) -> None:
        import io

        await self._ensure_bucket()
        await asyncio.to_thread(
            self._client.put_object, self._bucket, self._key(key), io.BytesIO(data), len(data)
        )

    async def fetch_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._client.fget_object, self._bucket, self._key(key), str(path))

    async def read(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(
                self._bucket, self._key(key), offset=offset, length=length or 0
            )
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(read)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._client.stat_object, self._bucket, self._key(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return False
            raise
        return True


def open_archive(url: str, s3: S3Config | None) -> ArchiveStore:
    """The archive ``ARCHIVE_URL`` names; ``ConfigError`` says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if s3 is None:
            raise ConfigError(
                f"ARCHIVE_URL={url!r} is on S3: set S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY"
            )
        if not parts.netloc:
            raise ConfigError(f"ARCHIVE_URL={url!r} needs a bucket: s3://bucket/prefix")
        return S3Archive(s3.client(), parts.netloc, parts.path, s3.endpoint)
    if parts.scheme == "file":
        return FolderArchive(Path(parts.path))
    if parts.scheme == "":
        return FolderArchive(Path(url))
    raise ConfigError(f"ARCHIVE_URL={url!r} must be file:///a/folder, a folder path, or s3://bucket/prefix")
