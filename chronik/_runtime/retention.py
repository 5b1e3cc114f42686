"""Retention: which partitions of the log may leave, and the archiver that lets them go.

A partition leaves whole, never by DELETE, and only when

1. its range is over (no new job can be created into it),
2. every job created in it has ended, and each one's retention has run out since it ended
   (the blueprint's ``retention_days``, else ``RETENTION_DAYS``; failed and quarantined jobs at
   least ``RETENTION_FAILED_DAYS``), and
3. its events are in an archive file that was written, read back and verified: byte count,
   SHA-256, every job's events and hash chain up to the head recorded in the manifest.

Then, in order: the archived jobs are indexed (``archived_jobs``: which file and where), their
live rows go (``jobs`` and the audit-trail projections; a job revived meanwhile keeps its own),
and the partition is dropped only if it still holds exactly the archived events. A crash at any
point leaves the partition, or a verified file and the index; the next round finishes the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import structlog

from chronik.adapters.archive_store import ArchiveStore
from chronik.adapters.postgres import partitions
from chronik.adapters.postgres.database import Database, lift_timeouts
from chronik.adapters.postgres.locks import SingletonLock
from chronik.adapters.postgres.partitions import JobIndexEntry, PartitionRow
from chronik.core.archive_format import ArchivedEvent, Manifest, ManifestJob, encode_member
from chronik.core.blueprint import Blueprint
from chronik.core.chain import ChainLink, first_break

from .loops import run_loop
from .verify import ArchiveError, manifest_key, verify_stored

__all__ = [
    "ArchiveError",
    "Archived",
    "Archiver",
    "PartitionPlan",
    "RetentionPolicy",
    "manifest_key",
]

log = structlog.get_logger("chronik.archive")

_DAY = 86400.0
_INDEX_BATCH = 5000
_LEAD_PERIODS = 2


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long ended jobs stay: days by default, for failed ones, per blueprint (None: forever)."""

    default_days: float | None = None
    failed_days: float | None = None
    blueprint_days: dict[str, float | None] = msgspec.field(default_factory=dict)

    @classmethod
    def of(
        cls, blueprints: Mapping[str, Blueprint], *, default_days: float | None, failed_days: float | None
    ) -> RetentionPolicy:
        """The policy of these settings and the blueprints' own ``retention_days``."""
        overrides: dict[str, float | None] = {}
        for blueprint in blueprints.values():
            if blueprint.retention_days == "forever":
                overrides[blueprint.name] = None
            elif blueprint.retention_days is not None:
                overrides[blueprint.name] = float(blueprint.retention_days)
        return cls(default_days=default_days, failed_days=failed_days, blueprint_days=overrides)

    @property
    def enabled(self) -> bool:
        """Whether anything can ever leave."""
        return (
            self.default_days is not None
            or self.failed_days is not None
            or any(days is not None for days in self.blueprint_days.values())
        )


class PartitionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One closed live partition: whether it may leave now, and if not, why it stays."""

    name: str
    lo: datetime | None
    hi: datetime
    jobs: int
    running: int
    kept_forever: int
    leaves_at: datetime | None
    holder: str | None
    leaves: bool
    reason: str


class Archived(msgspec.Struct, frozen=True, kw_only=True):
    """What archiving one partition did."""

    partition: str
    uri: str
    events: int
    jobs: int
    bytes: int
    seconds: float
    dropped: bool
    reason: str = ""


def _days(days: float | None) -> float | None:
    return None if days is None else days * _DAY


class Archiver:
    """Creates partitions ahead and archives the ones past retention, one instance at a time."""

    def __init__(
        self,
        database: Database,
        *,
        store: ArchiveStore | None,
        policy: RetentionPolicy,
        partition_days: int,
        interval: float,
    ) -> None:
        self._database = database
        self._store = store
        self._policy = policy
        self._partition_days = partition_days
        self._interval = interval
        self._lock = SingletonLock(database.dsn, "chronik.archiver")
        # One archive at a time in this process too (the loop, and a command run in the same one).
        self._busy = asyncio.Lock()
        self._ticked = False

    async def run(self, stop: asyncio.Event) -> None:
        """Every ``interval``, while holding the archiver lock: partitions ahead, then archive."""
        try:
            await run_loop("archiver", self._tick, stop, interval=self._interval)
        finally:
            await self._lock.release()

    async def _tick(self) -> float | None:
        if not self._ticked:
            # The instance made today's partitions as it started; the first round waits an interval.
            self._ticked = True
            return None
        if not await self._lock.try_hold():
            return None
        await self.ensure_partitions()
        if self._store is not None and self._policy.enabled:
            await self.archive_due()
        return None

    async def ensure_partitions(self) -> list[str]:
        """Create the partitions of the next periods; the names created."""
        now = datetime.now(UTC)
        until = now + timedelta(days=self._partition_days * _LEAD_PERIODS)
        async with self._database.transaction() as conn:
            created = await partitions.ensure(conn, since=now, until=until, days=self._partition_days)
        if created:
            log.info("partitions_created", names=created)
        return created

    async def partitions(self) -> list[PartitionRow]:
        """Every partition of the log, live or archived, oldest first."""
        async with self._database.connection() as conn:
            return await partitions.list_partitions(conn)

    async def plan(self) -> list[PartitionPlan]:
        """Every closed live partition: whether it may leave now and, if not, what holds it."""
        policy = self._policy
        async with self._database.transaction(readonly=True) as conn:
            await lift_timeouts(conn)  # it reads every job's row: see _archive
            rows = await partitions.plan(
                conn,
                default_seconds=_days(policy.default_days),
                failed_seconds=_days(policy.failed_days),
                blueprint_seconds={name: _days(days) for name, days in policy.blueprint_days.items()},
            )
        now = datetime.now(UTC)
        return [_planned(row, now) for row in rows]

    async def archive_due(self) -> list[Archived]:
        """Archive every partition the plan lets leave now."""
        done = []
        for entry in await self.plan():
            if entry.leaves:
                done.append(await self._archive_held(entry.name))
        return done

    async def archive(self, name: str) -> Archived:
        """Write, verify and let go one partition, if the plan lets it leave now (see the module's
        docstring for the order)."""
        planned = {entry.name: entry for entry in await self.plan()}
        if name not in planned or not planned[name].leaves:
            why = planned[name].reason if name in planned else "it is not a closed live partition"
            raise ArchiveError(f"{name} does not leave now: {why}")
        return await self._archive_held(name)

    async def _archive_held(self, name: str) -> Archived:
        if self._store is None:
            raise ArchiveError("no ARCHIVE_URL is set: there is nowhere to archive to")
        async with self._busy:
            if not await self._lock.try_hold():
                raise ArchiveError("another instance is archiving now; try again when it is done")
            return await self._archive(name, self._store)

    async def _archive(self, name: str, store: ArchiveStore) -> Archived:
        # What changed since the plan (a job revived, or made in the range) is caught where it
        # matters: the partition drops only if it holds the archived events and no job of it runs.
        # Each transaction below reads or writes a whole partition (or batches of thousands of
        # jobs): on a large log one statement may legitimately run longer than
        # DB_STATEMENT_TIMEOUT_SECONDS, so each lifts it for itself. DB_LOCK_TIMEOUT_SECONDS stays:
        # a lock the hot path holds makes this round fail and the next one finish the work (see
        # the module's docstring), rather than queue the archive's locks ahead of the hot path's.
        started = asyncio.get_running_loop().time()
        async with self._database.connection() as conn:
            found = [row for row in await partitions.list_partitions(conn) if row.name == name]
        if not found or found[0].status != "live":
            raise ArchiveError(f"{name} is not a live partition of the log")
        row = found[0]
        with tempfile.TemporaryDirectory(prefix="chronik-archive-") as folder:
            local = Path(folder) / "events.jsonl.gz"
            manifest, index = await self._write(row, local)
            key = f"{name}-{manifest.sha256[:16]}.jsonl.gz"
            await store.put_file(key, local)
            await store.put_bytes(manifest_key(key), msgspec.json.encode(manifest))
            await verify_stored(store, key, Path(folder) / "read-back.jsonl.gz")
        async with self._database.transaction() as conn:
            await lift_timeouts(conn)
            for start in range(0, len(index), _INDEX_BATCH):
                await partitions.record_jobs(conn, name, key, index[start : start + _INDEX_BATCH])
        for start in range(0, len(index), _INDEX_BATCH):
            async with self._database.transaction() as conn:
                await lift_timeouts(conn)
                await partitions.forget_jobs(
                    conn, [entry.job_id for entry in index[start : start + _INDEX_BATCH]]
                )
        async with self._database.transaction() as conn:
            await lift_timeouts(conn)
            held = await partitions.drop(conn, name, expected=manifest.events)
            dropped = held == manifest.events
            if dropped:
                await partitions.mark_archived(
                    conn,
                    name,
                    uri=store.uri(key),
                    events=manifest.events,
                    jobs=len(index),
                    sha256=manifest.sha256,
                )
        seconds = asyncio.get_running_loop().time() - started
        reason = ""
        if held < 0:
            reason = "a job created in its range runs (it ended when planned, or was made since)"
        elif not dropped:
            reason = f"the partition now holds {held} events, {manifest.events} were archived"
        log.info(
            "partition_archived" if dropped else "partition_kept",
            partition=name,
            events=manifest.events,
            jobs=len(index),
            seconds=round(seconds, 3),
            reason=reason or None,
        )
        return Archived(
            partition=name,
            uri=store.uri(key),
            events=manifest.events,
            jobs=len(index),
            bytes=manifest.bytes,
            seconds=seconds,
            dropped=dropped,
            reason=reason,
        )

    async def _write(self, row: PartitionRow, path: Path) -> tuple[Manifest, list[JobIndexEntry]]:
        """The partition's events into ``path``, a gzip member a job, each chain checked first."""
        digest = hashlib.sha256()
        index: list[JobIndexEntry] = []
        entries: list[ManifestJob] = []
        total = 0
        first_position: int | None = None
        last_position: int | None = None
        offset = 0
        pending: list[tuple[int, ChainLink]] = []

        def flush(handle: object) -> None:
            nonlocal offset
            links = [link for _, link in pending]
            broken = first_break(links)
            if broken is not None:
                raise ArchiveError(
                    f"job {broken.job_id} version {broken.version}: {broken.reason}; nothing was archived "
                    "(run `chronik events verify` and look into it)"
                )
            member = encode_member([_archived(position, link) for position, link in pending])
            handle.write(member)  # type: ignore[attr-defined]
            digest.update(member)
            job = links[0].job_id
            head = links[-1].hash
            index.append(
                JobIndexEntry(job_id=job, offset=offset, length=len(member), events=len(links), head=head)
            )
            entries.append(ManifestJob(job, offset, len(member), len(links), head.hex()))
            offset += len(member)
            pending.clear()

        with path.open("wb") as handle:
            async with self._database.transaction(readonly=True) as conn:
                await lift_timeouts(conn)  # the first page sorts the whole partition
                async for position, link in partitions.stream(conn, lo=row.lo, hi=row.hi):
                    if pending and pending[-1][1].job_id != link.job_id:
                        flush(handle)
                    pending.append((position, link))
                    total += 1
                    first_position = position if first_position is None else min(first_position, position)
                    last_position = position if last_position is None else max(last_position, position)
            if pending:
                flush(handle)
        manifest = Manifest(
            partition=row.name,
            lo=row.lo,
            hi=row.hi,
            events=total,
            first_position=first_position,
            last_position=last_position,
            bytes=offset,
            sha256=digest.hexdigest(),
            written_at=datetime.now(UTC),
            jobs=tuple(entries),
        )
        return manifest, index


def _archived(position: int, link: ChainLink) -> ArchivedEvent:
    return ArchivedEvent(
        position=position,
        job_id=link.job_id,
        version=link.version,
        type=link.type,
        data=msgspec.Raw(link.data.encode()),
        meta=msgspec.Raw(link.meta.encode()),
        recorded_at=link.recorded_at,
        hash=link.hash.hex(),
    )


def _planned(row: partitions.PlanRow, now: datetime) -> PartitionPlan:
    reason: str
    leaves = False
    holder = None if row.holder is None else str(row.holder)
    if row.lo is None:
        reason = (
            "the legacy partition (jobs from before the log was partitioned) stays; export it to keep a copy"
        )
    elif row.jobs == 0:
        leaves, reason = True, "no jobs were created in it"
    elif row.running:
        reason = f"{row.running} of its jobs still run (job {holder}, for one)"
    elif row.forever:
        reason = f"{row.forever} of its jobs are kept forever (no retention for them; job {holder}, for one)"
    elif row.leaves_at is not None and row.leaves_at > now:
        reason = f"job {holder}'s retention runs until {row.leaves_at.isoformat()}"
    else:
        leaves, reason = True, "every job in it ended and is past its retention"
    return PartitionPlan(
        name=row.name,
        lo=row.lo,
        hi=row.hi,
        jobs=row.jobs,
        running=row.running,
        kept_forever=row.forever,
        leaves_at=row.leaves_at,
        holder=holder,
        leaves=leaves,
        reason=reason,
    )
