"""The hash chain over a real log: the database's equals Python's, and a change is found and named.

A database owner can turn the append-only trigger off and edit an event; ``chronik events
verify`` then names the job and the version, in the database and in an archive file, and an
export or archive line that was edited does not load.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import psycopg
import pytest

from chronik._runtime.retention import Archiver, RetentionPolicy
from chronik._runtime.verify import manifest_key, verify_chains, verify_file
from chronik.adapters.archive_store import FolderArchive
from chronik.adapters.postgres import partitions
from chronik.core import ids
from chronik.core.archive_format import Manifest, decode_member, encode_member
from chronik.core.chain import event_hash
from chronik.core.errors import InvalidInput
from chronik.core.state import JobState
from chronik.demo import blueprints
from chronik.engine import Engine
from tests.conftest import dsn, fast_settings, wait_for

ROOT = Path(__file__).resolve().parents[2]
REAL_NEW_JOB_ID = ids.new_job_id
# Text forms the chain must hash as PostgreSQL stores them: non-ASCII, escapes, floats, nesting.
AWKWARD = {
    "amount": 12,
    "name": 'Zoë ✓ "quoted"\n\ttab',
    "ratio": 0.1,
    "tiny": 2.5e-7,
    "big": 1e21,
    "nested": {"b": [1, None, True, -0.0], "a": {}},
}


def chronik(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, on ``database_url``."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "chronik", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _ended(engine: Engine, *jobs: JobState) -> None:
    for job in jobs:
        await wait_for(partial(_is_terminal, engine, job.job_id))


async def _is_terminal(engine: Engine, job_id: UUID) -> bool:
    return (await engine.get_job(job_id)).is_terminal


async def _events_of(conn: asyncpg.Connection, job_id: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT version, type, data::text AS data, meta::text AS meta, recorded_at, hash, "
        "tableoid::regclass::text AS partition FROM events WHERE job_id = $1 ORDER BY version",
        job_id,
    )
    return rows


# -- the database's chain is the Python one ------------------------------------------------------


async def test_the_database_chains_each_job_as_core_chain_does(make_engine: Callable[..., Any]) -> None:
    engine: Engine = await make_engine(*blueprints)
    approved = await engine.create_job("review", AWKWARD, actor="ada")
    rejected = await engine.create_job("review", {"amount": 5000})
    waiting = await engine.create_job("demo", {"name": "Ådä"})  # no worker: its task stays queued
    await _ended(engine, approved, rejected)
    await wait_for(lambda: _has_task(engine, waiting.job_id))

    async with engine.database.connection() as conn:
        for job in (approved, rejected, waiting):
            rows = await _events_of(conn, job.job_id)
            assert len(rows) >= 2
            prev: bytes | None = None
            for row in rows:
                computed = event_hash(
                    prev,
                    job_id=job.job_id,
                    version=row["version"],
                    type=row["type"],
                    data=row["data"],
                    meta=row["meta"],
                    recorded_at=row["recorded_at"],
                )
                assert bytes(row["hash"]) == computed, (job.job_id, row["version"])
                prev = computed
            head = await conn.fetchval("SELECT chain_head FROM jobs WHERE job_id = $1", job.job_id)
            assert bytes(head) == prev
            # The id carries the creation instant; the partition key is the same in SQL and Python.
            sql_time = await conn.fetchval("SELECT chronik_job_time_v1($1)", job.job_id)
            stored = await conn.fetch("SELECT DISTINCT job_time FROM events WHERE job_id = $1", job.job_id)
            assert sql_time == ids.job_time(job.job_id) == stored[0]["job_time"] and len(stored) == 1
            assert {row["partition"] for row in rows} != {"events_legacy"}
        # The whole log verifies, and the awkward data kept its text through the chain.
        report = await verify_chains(engine.database)
        assert (report.jobs, report.first_break) == (3, None)
        data = await conn.fetchval(
            "SELECT data->'initial_data' FROM events WHERE job_id = $1 AND version = 1", approved.job_id
        )
        assert json.loads(data) == AWKWARD


async def _has_task(engine: Engine, job_id: UUID) -> bool:
    async with engine.database.connection() as conn:
        return bool(await conn.fetchval("SELECT count(*) FROM tasks WHERE job_id = $1", job_id))


@pytest.mark.parametrize(
    ("data", "recorded_at"),
    [
        ('{"b": 1.10, "a": [1E+2, 0.0000001, -0.0]}', datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)),
        ('{"s": "Zo\\u00eb \\"x\\"\\n", "t": "✓"}', datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("{}", datetime(2000, 2, 29, tzinfo=UTC)),
    ],
)
async def test_the_sql_hash_function_is_the_python_one(
    pool: asyncpg.Pool, data: str, recorded_at: datetime
) -> None:
    job_id, prev = uuid4(), hashlib.sha256(b"previous").digest()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT chronik_event_hash_v1($1, $2, 7, 'StateEntered', $3::jsonb, '{\"actor\": \"ada\"}', $4) "
            'AS hash, $3::jsonb::text AS data, \'{"actor": "ada"}\'::jsonb::text AS meta, '
            "chronik_job_time_v1($2) = '-infinity' AS legacy",
            prev,
            job_id,
            data,
            recorded_at,
        )
    expected = event_hash(
        prev,
        job_id=job_id,
        version=7,
        type="StateEntered",
        data=row["data"],
        meta=row["meta"],
        recorded_at=recorded_at,
    )
    assert bytes(row["hash"]) == expected
    # A uuid4 has no time: its job belongs to the legacy partition, in SQL as in Python.
    assert row["legacy"] and ids.job_time(job_id) is None


# -- a changed event in the database is named ----------------------------------------------------


async def _tamper(conn: asyncpg.Connection, statement: str, *args: Any) -> None:
    """Run ``statement`` on events with the append-only trigger off, as a database owner could."""
    async with conn.transaction():
        # On the parent it reaches every partition's clone of the trigger too.
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        await conn.execute(statement, *args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")


@pytest.mark.projection_damaged  # an edited event folds to another state than the row holds
async def test_verify_names_the_job_and_version_whose_event_was_edited(
    make_engine: Callable[..., Any], database_url: str
) -> None:
    engine: Engine = await make_engine(*blueprints)
    jobs = [await engine.create_job("review", {"amount": amount}) for amount in (12, 5000, 30)]
    await _ended(engine, *jobs)
    good, edited, cut = (job.job_id for job in jobs)
    assert chronik("events", "verify", "--all", database_url=database_url).returncode == 0

    async with engine.database.connection() as conn:
        before = await conn.fetchval(
            "SELECT data->>'state' FROM events WHERE job_id = $1 AND version = 2", edited
        )
        assert before == "rejected"
        await _tamper(
            conn,
            "UPDATE events SET data = jsonb_set(data, '{state}', '\"approved\"') "
            "WHERE job_id = $1 AND version = 2",
            edited,
        )
        await _tamper(conn, "DELETE FROM events WHERE job_id = $1 AND version = 3", cut)
        # The guard is back on.
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("UPDATE events SET type = type WHERE job_id = $1", good)

    ok = chronik("events", "verify", str(good), database_url=database_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok: 3 event(s) of 1 job(s)")

    broken = chronik("events", "verify", str(edited), database_url=database_url)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"BROKEN: job {edited} version 2: the event does not match its hash" in broken.stdout

    short = chronik("events", "verify", str(cut), database_url=database_url)
    assert short.returncode == 1, short.stdout + short.stderr
    assert f"BROKEN: job {cut} version 2: the chain does not end at the recorded head" in short.stdout

    everything = chronik("events", "verify", "--all", database_url=database_url)
    assert everything.returncode == 1, everything.stdout + everything.stderr
    first = min(edited, cut)  # jobs are walked in id order, up to the first break
    assert f"BROKEN: job {first} version 2" in everything.stdout
    assert "ok:" not in everything.stdout

    unknown = chronik("events", "verify", str(uuid4()), database_url=database_url)
    assert unknown.returncode == 2 and "no job has the id" in unknown.stderr


# -- an archive file -----------------------------------------------------------------------------


def _dated(monkeypatch: pytest.MonkeyPatch, days_ago: float) -> None:
    """Make the next jobs' ids, and so their partition, as if created ``days_ago``."""

    def dated(at: datetime | None = None, *, seed: UUID | None = None) -> UUID:
        return REAL_NEW_JOB_ID(datetime.now(UTC) - timedelta(days=days_ago), seed=seed)

    monkeypatch.setattr(ids, "new_job_id", dated)


def _forge(path: Path, manifest: Manifest, into: Path) -> tuple[Path, UUID]:
    """Copy an archive file with its first job's version 2 changed, and a manifest that matches
    the new bytes (size, SHA-256, offsets and lengths): only the hash chain can tell."""
    blob = path.read_bytes()
    members = [blob[job.offset : job.offset + job.length] for job in manifest.jobs]
    events = list(decode_member(members[0]))
    data = json.loads(bytes(events[1].data))
    data["state"] = "approved" if data["state"] != "approved" else "rejected"
    events[1] = msgspec.structs.replace(events[1], data=msgspec.Raw(json.dumps(data).encode()))
    members[0] = encode_member(events)
    jobs, offset = [], 0
    for job, member in zip(manifest.jobs, members, strict=True):
        jobs.append(msgspec.structs.replace(job, offset=offset, length=len(member)))
        offset += len(member)
    forged = b"".join(members)
    into.mkdir()
    target = into / path.name
    target.write_bytes(forged)
    rewritten = msgspec.structs.replace(
        manifest, jobs=tuple(jobs), bytes=len(forged), sha256=hashlib.sha256(forged).hexdigest()
    )
    (into / manifest_key(path.name)).write_bytes(msgspec.json.encode(rewritten))
    assert forged != blob
    return target, manifest.jobs[0].job_id


async def test_verify_checks_an_archive_file_and_names_what_was_changed(
    make_engine: Callable[..., Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: Engine = await make_engine(*blueprints)
    now = datetime.now(UTC)
    async with engine.database.transaction() as conn:
        await partitions.ensure(conn, since=now - timedelta(days=30), until=now, days=7)
    _dated(monkeypatch, 20)
    jobs = [await engine.create_job("review", {"amount": amount}) for amount in (5000, 12, 40)]
    monkeypatch.undo()
    await _ended(engine, *jobs)
    # A running engine's archiver holds the one archiver lock: archive from one that runs no loops.
    await engine.stop()
    engine = await make_engine(*blueprints, start=False)
    await engine.start(run_executor=False)
    async with engine.database.connection() as conn:
        (name,) = {row["partition"] for job in jobs for row in await _events_of(conn, job.job_id)}
    assert name != "events_legacy"
    archiver = Archiver(
        engine.database,
        store=FolderArchive(tmp_path / "archive"),
        policy=RetentionPolicy(default_days=1e-6),  # about 0.09 s
        partition_days=7,
        interval=3600,
    )
    await wait_for(lambda: _leaves(archiver, name))
    try:
        done = await archiver.archive(name)
    finally:
        # Its loop, told to stop before it starts, lets go of the archiver lock and its connection.
        stopped = asyncio.Event()
        stopped.set()
        await archiver.run(stopped)
    assert done.dropped and (done.events, done.jobs) == (9, 3)
    (path,) = (tmp_path / "archive").glob(f"{name}-*.jsonl.gz")
    manifest = msgspec.json.decode((path.parent / manifest_key(path.name)).read_bytes(), type=Manifest)
    assert len(manifest.jobs) == 3

    ok = chronik("events", "verify", "--archive", str(path), database_url=database_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok: 9 event(s) of 3 job(s)")

    forged, job_id = _forge(path, manifest, tmp_path / "forged")
    rewritten = msgspec.json.decode((forged.parent / manifest_key(forged.name)).read_bytes(), type=Manifest)
    problems = verify_file(forged, rewritten)
    assert [(p.job_id, p.version) for p in problems] == [(job_id, 2)], "size and SHA-256 match"
    broken = chronik("events", "verify", "--archive", str(forged), database_url=database_url)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"BROKEN: job {job_id} version 2: the event does not match its hash" in broken.stdout
    assert "SHA-256" not in broken.stdout and "bytes" not in broken.stdout
    # Nor does a restore load it: the line is named.
    with gzip.open(forged, "rt", encoding="utf-8") as lines, pytest.raises(InvalidInput) as refused:
        await engine.import_events(lines, name=forged.name, restore=True)
    assert f"line 2: job {job_id} version 2 does not match its hash" in str(refused.value)
    async with engine.database.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE job_id = $1", job_id) == 0

    (tmp_path / "truncated").mkdir()
    truncated = tmp_path / "truncated" / path.name
    truncated.write_bytes(path.read_bytes()[:-20])
    (truncated.parent / manifest_key(path.name)).write_bytes(
        (path.parent / manifest_key(path.name)).read_bytes()
    )
    cut = chronik("events", "verify", "--archive", str(truncated), database_url=database_url)
    assert cut.returncode == 1, cut.stdout + cut.stderr
    size = path.stat().st_size
    assert f"problem: it has {size - 20} bytes, the manifest says {size}" in cut.stdout
    assert f"problem: job {manifest.jobs[-1].job_id}: its events do not decode" in cut.stdout
    assert "ok:" not in cut.stdout


async def _leaves(archiver: Archiver, name: str) -> bool:
    return any(plan.name == name and plan.leaves for plan in await archiver.plan())


# -- export and import ---------------------------------------------------------------------------


async def test_an_export_imports_with_the_same_hashes_and_an_edited_line_is_refused(
    make_engine: Callable[..., Any], database_url: str, postgresql: psycopg.Connection
) -> None:
    engine: Engine = await make_engine(*blueprints)
    jobs = [
        await engine.create_job("review", AWKWARD),
        await engine.create_job("review", {"amount": 5000}),
        await engine.create_job("review", {"amount": 3}),
    ]
    await _ended(engine, *jobs)
    out = io.StringIO()
    count = await engine.export_events(out)
    lines = out.getvalue().splitlines()
    assert count == len(lines) == 9
    assert all(len(json.loads(line)["hash"]) == 64 for line in lines)

    victim = jobs[1].job_id
    number, line = next(
        (n, json.loads(text))
        for n, text in enumerate(lines, start=1)
        if json.loads(text)["job_id"] == str(victim) and json.loads(text)["version"] == 2
    )
    line["data"]["state"] = "approved"
    edited = [*lines[: number - 1], json.dumps(line), *lines[number:]]

    info = postgresql.info
    name = f"chronik_chain_import_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    target = Engine(
        dsn(host=info.host, port=info.port, user=info.user, dbname=name, password=info.password),
        blueprints=blueprints,
        settings=fast_settings(),
    )
    try:
        await target.start(run_executor=False)
        with pytest.raises(InvalidInput) as refused:
            await target.import_events(edited, name="events.jsonl")
        assert f"events.jsonl, line {number}: job {victim} version 2 does not match its hash" in str(
            refused.value
        )
        async with target.database.connection() as conn:
            assert await conn.fetchval("SELECT count(*) FROM events") == 0, "all or nothing"

        imported = await target.import_events(lines, name="events.jsonl")
        assert (imported.events, imported.jobs) == (9, 3)
        report = await verify_chains(target.database)
        assert (report.jobs, report.events, report.first_break) == (3, 9, None)
        log = "SELECT position, job_id, version, data::text, recorded_at, hash FROM events ORDER BY position"
        heads = "SELECT job_id, chain_head FROM jobs ORDER BY job_id"
        async with engine.database.connection() as source, target.database.connection() as copy:
            assert await copy.fetch(log) == await source.fetch(log)
            assert await copy.fetch(heads) == await source.fetch(heads)
    finally:
        await target.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
