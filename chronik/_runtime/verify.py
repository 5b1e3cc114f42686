"""Checking history: the hash chains in the database, and archive files against their manifests.

``chronik events verify`` uses it, and so does the archiver, which reads every file it wrote back
before a partition may leave.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from uuid import UUID

import msgspec

from chronik.adapters.archive_store import ArchiveStore
from chronik.adapters.postgres import partitions
from chronik.adapters.postgres.database import Database
from chronik.core.archive_format import Manifest, decode_member
from chronik.core.chain import ChainBreak, first_break
from chronik.core.errors import ChronikError, InvalidInput, JobNotFound

__all__ = [
    "ArchiveError",
    "ArchiveProblem",
    "ChainReport",
    "manifest_key",
    "verify_archive_file",
    "verify_chains",
    "verify_file",
    "verify_job",
    "verify_stored",
]

_PAGE = 500


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a walk of the chains found: how many jobs and events it checked, and the first break."""

    jobs: int
    events: int
    first_break: ChainBreak | None = None
    problems: tuple[str, ...] = ()


async def verify_job(database: Database, job_id: UUID) -> ChainReport:
    """Walk one job's chain in the database up to the head its ``jobs`` row holds."""
    async with database.connection() as conn:
        links, head = await partitions.job_chain(conn, job_id)
    if not links:
        raise JobNotFound(f"no job has the id {job_id} in the database (an archived job: verify its file)")
    broken = first_break(links, head=head)
    return ChainReport(jobs=1, events=len(links), first_break=broken)


async def verify_chains(database: Database) -> ChainReport:
    """Walk every job's chain in the database; stop at the first break."""
    jobs = events = 0
    after = UUID(int=0)
    while True:
        async with database.connection() as conn:
            page = await partitions.jobs_page(conn, after=after, limit=_PAGE)
        for job_id in page:
            async with database.connection() as conn:
                links, head = await partitions.job_chain(conn, job_id)
            jobs += 1
            events += len(links)
            broken = first_break(links, head=head)
            if broken is not None:
                return ChainReport(jobs=jobs, events=events, first_break=broken)
        if len(page) < _PAGE:
            return ChainReport(jobs=jobs, events=events)
        after = page[-1]


def verify_archive_file(path: Path) -> ChainReport:
    """Check an archive file against the manifest beside it: size, SHA-256, counts, every chain."""
    manifest_path = path.with_name(manifest_key(path.name))
    try:
        manifest = msgspec.json.decode(manifest_path.read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no manifest beside it (expected {manifest_path.name})") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"{manifest_path}: not an archive manifest: {exc}") from None
    problems = verify_file(path, manifest)
    broken = next(
        (
            ChainBreak(job_id=problem.job_id, version=problem.version, reason=problem.message)
            for problem in problems
            if problem.job_id is not None and problem.version is not None
        ),
        None,
    )
    return ChainReport(
        jobs=len(manifest.jobs),
        events=manifest.events,
        first_break=broken,
        problems=tuple(str(problem) for problem in problems),
    )


class ArchiveError(ChronikError):
    """An archive could not be written or did not verify; nothing left the database."""

    code = "ARCHIVE_FAILED"


def manifest_key(archive_key: str) -> str:
    """The manifest's key beside its archive file."""
    return archive_key.removesuffix(".jsonl.gz") + ".manifest.json"


async def verify_stored(store: ArchiveStore, key: str, scratch: Path) -> Manifest:
    """Read an archive file and its manifest back and check them against each other.

    ``ArchiveError`` names what does not match: size, SHA-256, a job's member, its event
    count, or its hash chain up to the head the manifest records.
    """
    manifest = msgspec.json.decode(await store.read(manifest_key(key)), type=Manifest)
    await store.fetch_file(key, scratch)
    problems = verify_file(scratch, manifest)
    if problems:
        raise ArchiveError(f"{store.uri(key)} did not verify: {problems[0]}")
    return manifest


class ArchiveProblem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong with an archive file; ``job_id`` and ``version`` when it is a job's."""

    message: str
    job_id: UUID | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.job_id is None:
            return self.message
        where = f"job {self.job_id}" + ("" if self.version is None else f" version {self.version}")
        return f"{where}: {self.message}"


def verify_file(path: Path, manifest: Manifest) -> list[ArchiveProblem]:
    """What is wrong with an archive file, as its manifest describes it (empty: nothing)."""
    problems: list[ArchiveProblem] = []
    size = path.stat().st_size
    if size != manifest.bytes:
        problems.append(ArchiveProblem(message=f"it has {size} bytes, the manifest says {manifest.bytes}"))
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != manifest.sha256:
        problems.append(ArchiveProblem(message="its SHA-256 is not the manifest's: the file was changed"))
    total = 0
    with path.open("rb") as handle:
        for job in manifest.jobs:
            handle.seek(job.offset)
            try:
                events = list(decode_member(handle.read(job.length)))
            except (OSError, EOFError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                problems.append(
                    ArchiveProblem(message=f"its events do not decode ({exc})", job_id=job.job_id)
                )
                continue
            total += len(events)
            if len(events) != job.events or any(event.job_id != job.job_id for event in events):
                problems.append(
                    ArchiveProblem(
                        message=f"{len(events)} events of it, the manifest says {job.events}",
                        job_id=job.job_id,
                    )
                )
                continue
            broken = first_break((event.link() for event in events), head=bytes.fromhex(job.head))
            if broken is not None:
                problems.append(
                    ArchiveProblem(message=broken.reason, job_id=broken.job_id, version=broken.version)
                )
    if total != manifest.events:
        problems.append(ArchiveProblem(message=f"{total} events in it, the manifest says {manifest.events}"))
    return problems
