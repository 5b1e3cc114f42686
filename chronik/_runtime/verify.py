"""``chronik events verify``: walk the hash chains, in the database and in archive files."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import msgspec

from chronik.adapters.postgres import partitions
from chronik.adapters.postgres.database import Database
from chronik.core.archive_format import Manifest
from chronik.core.chain import ChainBreak, first_break
from chronik.core.errors import InvalidInput, JobNotFound

from .retention import manifest_key, verify_file

__all__ = ["ChainReport", "verify_archive_file", "verify_chains", "verify_job"]

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
