"""The growth benchmark's figures (bench/growth.py) and the tables it prints of them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GOAL", "OPERATIONS", "RATES", "ArchiveRun", "Figure", "Phase", "mb", "report", "report_archive"]

GOAL = 1.5
"""Every slowdown from the small log to the big one must stay under this."""


@dataclass
class Figure:
    """One operation's result at one size: a time in ms (p50, p99), or a rate."""

    p50: float
    p99: float | None = None
    failed: int = 0


@dataclass
class Phase:
    """One size: what the database held and what the operations measured."""

    events: int
    jobs: int
    size: int
    """pg_database_size, bytes."""
    events_size: int
    """The log's partitions with their indexes, bytes."""
    jobs_size: int
    """The jobs table with its indexes, bytes."""
    figures: dict[str, Figure]
    seed_seconds: float
    vacuum_seconds: float


OPERATIONS = (
    ("create", "POST /jobs/demo, ms"),
    ("get", "GET /jobs/{id}, ms"),
    ("history", "GET /jobs/{id}/history, ms"),
    ("list finished", "GET /jobs?status=finished, ms"),
    ("list failed", "GET /jobs?status=failed, ms"),
    ("round trip", "create -> worker -> finished, ms"),
    ("round trip rate", "the same, jobs/s"),
)
RATES = {"round trip rate"}


@dataclass
class ArchiveRun:
    """What archiving one partition did, and the sizes around it."""

    partition: str = ""
    events: int = 0
    jobs: int = 0
    seconds: float = 0.0
    bytes: int = 0
    dropped: bool = False
    reason: str = ""
    partition_size: int = 0
    database_before: int = 0
    database_after: int = 0
    plan_seconds: float = 0.0
    skipped: str = ""

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def mb(size: int) -> str:
    """A size in bytes, in MB."""
    return f"{size / 2**20:,.1f} MB"


def _cell(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width},.2f}"


def report(small: Phase, big: Phase) -> bool:
    """The table of every operation at both sizes; whether every slowdown is under the goal."""
    print(
        f"\n{'operation':<16}{'measured as':<34}{'small p50':>11}{'p99':>9}{'big p50':>11}{'p99':>9}"
        f"{'slowdown':>10}  < {GOAL}"
    )
    print(f"{'':<16}{'':<34}{f'{small.events:,} ev':>20}{f'{big.events:,} ev':>20}")
    within = True
    for key, label in OPERATIONS:
        a, b = small.figures[key], big.figures[key]
        slowdown = (a.p50 / b.p50) if key in RATES else (b.p50 / a.p50)
        ok = slowdown < GOAL
        within = within and ok
        failed = f"  ({a.failed} + {b.failed} jobs failed)" if a.failed or b.failed else ""
        print(
            f"{key:<16}{label:<34}{_cell(a.p50, 11)}{_cell(a.p99, 9)}{_cell(b.p50, 11)}{_cell(b.p99, 9)}"
            f"{slowdown:>10.2f}  {'ok' if ok else 'OVER'}{failed}"
        )
    print()
    for phase in (small, big):
        print(
            f"database (pg_database_size): {mb(phase.size)} with {phase.events:,} events "
            f"({mb(phase.events_size)}) and {phase.jobs:,} jobs ({mb(phase.jobs_size)})"
        )
    print(f"slowdown: big/small for a time, small/big for a rate; {'all' if within else 'not all'} < {GOAL}")
    return within


def report_archive(run: ArchiveRun) -> None:
    if run.skipped:
        print(f"\narchive: skipped: {run.skipped}")
        return
    dropped = "" if run.dropped else f"; NOT dropped: {run.reason}"
    print(
        f"\narchive of {run.partition} (Archiver.archive into a folder){dropped}\n"
        f"  {run.events:,} events of {run.jobs:,} jobs in {run.seconds:.2f} s = "
        f"{run.events_per_second:,.0f} events/s; archive file {run.bytes:,} bytes "
        f"({run.bytes / max(1, run.events):.0f} bytes/event)\n"
        f"  the partition held {mb(run.partition_size)} (pg_total_relation_size); database "
        f"{mb(run.database_before)} -> {mb(run.database_after)} (the jobs rows it deleted stay "
        f"as dead tuples until VACUUM)\n"
        f"  the retention plan (which partitions may leave) took {run.plan_seconds:.2f} s"
    )
