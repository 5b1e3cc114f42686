"""Seed the log by COPY: real jobs' events, replayed under new ids, times and hashes (bench only).

A template is one real job, made through the API and read back with the adapters'
own reads (``partitions.job_chain``: each event's data and meta as jsonb's text,
``jobs.load_state``: its row). Its texts are compiled once into format strings
whose slots are what differs between jobs: the job id, other ids (task ids), every
instant (as an offset from the job's creation), a name token of the ``demo``
jobs and the amount of the ``review`` ones. A seeded job fills the slots and
copies the rest verbatim, so its data is still jsonb's own text of the document
(the same keys in the same order, only string and integer values changed), and
its hashes, computed here with ``core.chain.event_hash``, are the ones
PostgreSQL would have chained. ``check`` proves it on a sample: the chains hold
(``verify_job``) and each row is the fold of its events (``refold_differences``);
the archive of a partition walks every chain of it again.

Seeded jobs are spread evenly over a time window, their ids UUIDv7 of their
creation instant (``new_job_id``), in the window's weekly partitions. Their events
are written interleaved, ``WAVE`` jobs at a time (each job's first event, then
each one's second, ...), as a deployment running that many jobs at once writes
them: a job's events are spread over several pages, not packed into one, so a
history read costs what it costs in production.

SQL here: none. COPY goes through asyncpg's ``copy_records_to_table``; sizes,
VACUUM, CHECKPOINT and the log's last position through ``adapters/postgres/upkeep``,
everything else through chronik's other adapters.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from chronik._runtime.verify import verify_job
from chronik.adapters.postgres import checkpoints, jobs, partitions, upkeep
from chronik.adapters.postgres.database import Database
from chronik.core.chain import event_hash, first_break
from chronik.core.effects import JobRow
from chronik.core.ids import job_time, new_job_id
from chronik.projections.setup import PROJECTORS

__all__ = [
    "KINDS",
    "Kind",
    "Seeder",
    "Template",
    "capture",
    "check",
    "finish",
    "seed",
]

WAVE = 64
"""Jobs whose events are written interleaved, as that many jobs running at once would."""
BATCH = 50_000
"""Events per COPY (one transaction each); memory stays bounded by it."""

EVENT_COLUMNS = ["job_id", "job_time", "version", "type", "data", "meta", "recorded_at", "hash"]
JOB_COLUMNS = ["job_id", "blueprint", "status", "current_state", "version", "created_at", "updated_at",
               "finished_at", "state", "chain_head"]  # fmt: skip

# Bench-only SQL (chronik has no statement for these; none runs on the measured path).
_SLOT = re.compile(
    r"(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"
    r"|(?P<name>[xX]\d{8})"
    r'|(?P<key>"amount": ?)(?P<amount>\d+)'
)
_ENCODE = msgspec.json.Encoder()


@dataclass(frozen=True)
class Kind:
    """A kind of job to seed: how the template is created through the API, and how often it comes."""

    label: str
    endpoint: str
    initial_data: dict[str, Any]
    weight: int
    amounts: tuple[int, int] | None = None
    """The range a seeded job's ``amount`` is drawn from (its outcome depends on it)."""


KINDS = (
    Kind("demo, finished", "demo", {"name": "x00000000"}, 70),
    Kind("demo, failed by its worker", "demo", {"name": ""}, 5),
    Kind("review, approved", "review", {"amount": 10}, 20, amounts=(1, 1000)),
    Kind("review, rejected", "review", {"amount": 5000}, 5, amounts=(1001, 100_000)),
)
"""The seeded mix (chronik.demo's blueprints): mostly finished, a tenth failed."""


@dataclass(frozen=True)
class EventTemplate:
    version: int
    type: str
    data: str
    """A format string: the event's jsonb text with its slots."""
    meta: str
    recorded: timedelta
    """``recorded_at`` after the job's creation."""


@dataclass(frozen=True)
class Template:
    """One real job, compiled: its events and its ``jobs`` row, with slots for what differs."""

    kind: Kind
    events: tuple[EventTemplate, ...]
    state: str
    """The row's ``state`` text (msgspec's JSON of the JobState) as a format string."""
    row: JobRow
    offsets: tuple[timedelta, ...]
    """Every instant in the texts, after the job's creation; slot ``t<i>``."""
    ids: int
    """How many other ids (task ids) the texts hold; slots ``u<i>``."""


class _Compiler:
    def __init__(self, job_id: UUID, created: datetime) -> None:
        self.job = str(job_id)
        self.created = created
        self.ids: dict[str, str] = {}
        self.times: dict[str, str] = {}
        self.offsets: list[timedelta] = []

    def compile(self, text: str) -> str:
        parts: list[str] = []
        last = 0
        for found in _SLOT.finditer(text):
            parts.append(_escape(text[last : found.start()]))
            if found["uuid"]:
                value = found["uuid"]
                slot = "job" if value == self.job else self.ids.setdefault(value, f"u{len(self.ids)}")
            elif found["time"]:
                slot = self._time(found["time"])
            elif found["name"]:
                slot = "NAME" if found["name"][0] == "X" else "name"
            else:
                parts.append(_escape(found["key"]))
                slot = "amount"
            parts.append("{" + slot + "}")
            last = found.end()
        parts.append(_escape(text[last:]))
        return "".join(parts)

    def _time(self, text: str) -> str:
        if text not in self.times:
            self.times[text] = f"t{len(self.offsets)}"
            self.offsets.append(datetime.fromisoformat(text) - self.created)
        return self.times[text]


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


async def capture(conn: asyncpg.Connection, kind: Kind, job_id: UUID) -> Template:
    """Read an ended real job back and compile it into a template."""
    links, head = await partitions.job_chain(conn, job_id)
    state = await jobs.load_state(conn, job_id)
    if state is None or state.finished_at is None or not links:
        raise RuntimeError(f"template job {job_id} ({kind.label}) has not ended")
    broken = first_break(links, head=head)
    if broken is not None:
        raise RuntimeError(f"template job {job_id}: its chain does not hold: {broken.reason}")
    row = JobRow.of(state)
    compiler = _Compiler(job_id, state.created_at)
    events = tuple(
        EventTemplate(
            link.version,
            link.type,
            compiler.compile(link.data),
            link.meta,
            link.recorded_at - state.created_at,
        )
        for link in links
    )
    state_text = compiler.compile(jobs.columns_of(row)[-1])
    return Template(kind, events, state_text, row, tuple(compiler.offsets), len(compiler.ids))


def _iso(at: datetime) -> str:
    """An instant as msgspec writes it (as the templates hold them)."""
    return _ENCODE.encode(at)[1:-1].decode()


@dataclass
class Seeder:
    """Makes seeded jobs from templates; remembers a uniform sample of the ids it made."""

    templates: list[Template]
    pick: random.Random = field(default_factory=lambda: random.Random(15))
    sample_size: int = 2000
    made: int = 0
    sample: list[UUID] = field(default_factory=list)

    @property
    def mean_events(self) -> float:
        weights = sum(t.kind.weight for t in self.templates)
        return sum(t.kind.weight * len(t.events) for t in self.templates) / weights

    def job(self, created: datetime) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
        """One seeded job created at ``created``: its event records and its jobs record."""
        pick = self.pick
        template = pick.choices(self.templates, weights=[t.kind.weight for t in self.templates])[0]
        job_id = new_job_id(created, seed=UUID(int=pick.getrandbits(128), version=4))
        self.made += 1
        values = {"job": str(job_id), "name": f"x{self.made:08d}", "NAME": f"X{self.made:08d}"}
        if template.kind.amounts is not None:
            values["amount"] = str(pick.randint(*template.kind.amounts))
        for n, offset in enumerate(template.offsets):
            values[f"t{n}"] = _iso(created + offset)
        for n in range(template.ids):
            values[f"u{n}"] = str(UUID(int=pick.getrandbits(128), version=4))
        at = job_time(job_id)
        prev: bytes | None = None
        events = []
        for event in template.events:
            data = event.data.format_map(values)
            recorded = created + event.recorded
            prev = event_hash(
                prev,
                job_id=job_id,
                version=event.version,
                type=event.type,
                data=data,
                meta=event.meta,
                recorded_at=recorded,
            )
            events.append((job_id, at, event.version, event.type, data, event.meta, recorded, prev))
        row = template.row
        shift = created - row.created_at
        finished = None if row.finished_at is None else row.finished_at + shift
        state = template.state.format_map(values)
        record = (job_id, row.blueprint, row.status, row.current_state, row.version, created,
                  row.updated_at + shift, finished, state, prev)  # fmt: skip
        self._remember(job_id)
        return events, record

    def _remember(self, job_id: UUID) -> None:
        # Reservoir sampling: every job made so far is in the sample with the same chance.
        if len(self.sample) < self.sample_size:
            self.sample.append(job_id)
        else:
            slot = self.pick.randrange(self.made)
            if slot < self.sample_size:
                self.sample[slot] = job_id

    def batches(
        self, *, events: int, since: datetime, until: datetime
    ) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """About ``events`` events of jobs created evenly from ``since`` to ``until``, oldest first,
        in batches of about ``BATCH`` events (event records, then job records)."""
        count = max(1, round(events / self.mean_events))
        step = (until - since) / count
        written = n = 0
        event_rows: list[tuple[Any, ...]] = []
        job_rows: list[tuple[Any, ...]] = []
        while written < events:
            wave = []
            while len(wave) < WAVE and written < events:
                made, record = self.job(since + step * (n + self.pick.random()))
                n += 1
                written += len(made)
                wave.append(made)
                job_rows.append(record)
            for version in range(max(len(made) for made in wave)):
                event_rows.extend(made[version] for made in wave if version < len(made))
            if len(event_rows) >= BATCH or written >= events:
                yield event_rows, job_rows
                event_rows, job_rows = [], []


async def seed(
    conn: asyncpg.Connection,
    seeder: Seeder,
    *,
    events: int,
    since: datetime,
    until: datetime,
    partition_days: int,
    report: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """COPY about ``events`` seeded events (and their jobs) into the log; (events, jobs) written."""
    report = report or functools.partial(print, flush=True)
    await partitions.ensure(conn, since=since, until=until, days=partition_days)
    started = last_report = time.perf_counter()
    written = made = 0
    for event_rows, job_rows in seeder.batches(events=events, since=since, until=until):
        await conn.copy_records_to_table("events", records=event_rows, columns=EVENT_COLUMNS)
        await conn.copy_records_to_table("jobs", records=job_rows, columns=JOB_COLUMNS)
        written += len(event_rows)
        made += len(job_rows)
        now = time.perf_counter()
        if now - last_report >= 15 or written >= events:
            last_report = now
            report(
                f"    {written:>12,} / {events:,} events, {made:,} jobs"
                f" ({written / (now - started):,.0f} events/s)"
            )
    return written, made


async def finish(conn: asyncpg.Connection) -> None:
    """After a seed: vacuum and analyze, flush, and move the projections past the seeded events.

    The asynchronous projections (job_history, task_attempts) would otherwise replay every
    seeded event through chronik's Python projector while the run measures, competing with
    the measured requests for the CPU, and for long at ten million. None of the measured
    operations reads them (get and list read ``jobs``, history reads ``events``), so their
    tables keep only the API's jobs, and their checkpoints move as if the seeded events had
    been applied. (The projector's own writes during the round trip go to small tables at
    both sizes: that is the one place the big phase is measured lighter than production.)
    """
    await upkeep.vacuum_analyze(conn, "events", "jobs")  # hint bits and the visibility map
    await upkeep.checkpoint(conn)  # the seed's dirty pages are not flushed mid-run (if the role may)
    last = await upkeep.last_log_position(conn)
    if last is not None:
        for projector in PROJECTORS:
            await checkpoints.save(conn, projector.name, last)


async def check(dsn: str, job_ids: list[UUID]) -> None:
    """Prove the seed on a sample: each chain holds up to its row's head, each row is its fold."""
    database = await Database.open(dsn, max_size=2)
    try:
        for job_id in job_ids:
            report = await verify_job(database, job_id)
            if report.first_break is not None:
                raise RuntimeError(f"seeded job {job_id}: chain broken: {report.first_break.reason}")
            async with database.connection() as conn:
                differences = await jobs.refold_differences(conn, job_id)
            if differences:
                raise RuntimeError(f"seeded job {job_id}: its row is not its fold: {differences}")
    finally:
        await database.close()
