"""What the ``chronik`` commands print: tables for people, JSON for programs.

Each function takes what a command found and prints it to standard output; none
of them reads the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec

from chronik._runtime.retention import Archived, PartitionPlan
from chronik._runtime.verify import ChainReport
from chronik.adapters.postgres.checkpoints import CheckpointStatus
from chronik.api.schemas import HistoryEntry, JobView
from chronik.core.audit import facts_of
from chronik.core.divergence import Divergence
from chronik.core.evolve import evolve
from chronik.core.records import LogPosition, RecordedEvent
from chronik.core.state import JobState

__all__ = [
    "ScheduleRow",
    "print_archive_plan",
    "print_archived",
    "print_chain_report",
    "print_divergences",
    "print_history",
    "print_job",
    "print_projection_status",
    "print_rebuilt",
    "print_replay",
    "print_schedules",
]


def print_job(job: JobState) -> None:
    """``jobs get``: the job's current state as JSON."""
    print(json.dumps(msgspec.to_builtins(JobView.of(job)), indent=2))


def print_history(recorded: Sequence[RecordedEvent], *, as_json: bool) -> None:
    """``jobs history``: each event with when, who and what happened in words (or the raw events)."""
    if as_json:
        print(json.dumps(msgspec.to_builtins([HistoryEntry.of(e) for e in recorded]), indent=2))
        return
    print(f"{'VERSION':>7}  {'AT':<32}  {'TYPE':<18}  {'ACTOR':<12}  WHAT HAPPENED")
    state = None
    for entry in recorded:
        facts = facts_of(entry.event, state, entry.meta)
        state = evolve(state, entry.event)
        print(
            f"{entry.version:>7}  {entry.event.at.isoformat():<32}  {entry.type:<18}  {facts.actor:<12}  "
            f"{facts.summary}"
        )


def print_replay(recorded: Sequence[RecordedEvent], states: Sequence[JobState], *, as_json: bool) -> None:
    """``jobs replay``: the job's state after each of its events."""
    if as_json:
        steps = [{"version": r.version, "type": r.type, "state": msgspec.to_builtins(JobView.of(s))}
                 for r, s in zip(recorded, states, strict=True)]  # fmt: skip
        print(json.dumps(steps, indent=2))
        return
    print(f"{'VERSION':>7}  {'EVENT':<18}  {'STATUS':<18}  {'STATE':<16}  STATE_HISTORY")
    for r, s in zip(recorded, states, strict=True):
        history = json.dumps(s.state_history, separators=(",", ":"), sort_keys=True)
        print(f"{r.version:>7}  {r.type:<18}  {s.status:<18}  {s.current_state:<16}  {history}")


def print_divergences(
    job_id: UUID, blueprint: str, runs: int, differing: Sequence[Divergence], *, as_json: bool
) -> None:
    """``jobs replay --blueprint``: the handler runs today's code decides differently, if any."""
    if as_json:
        print(json.dumps({"handler_runs": runs, "divergences": msgspec.to_builtins(differing)}, indent=2))
    elif not differing:
        print(f"job {job_id}: today's {blueprint!r} decides as history did at all {runs} handler run(s)")
    else:
        print(f"job {job_id}: {len(differing)} of {runs} handler run(s) would be decided differently today")
        for divergence in differing:
            print(f"\n  at version {divergence.version}, in state {divergence.state!r}:")
            print(f"    history:  {_describe(divergence.recorded)}")
            print(f"    today:    {_describe(divergence.decided)}")


def _describe(events: list[dict[str, Any]]) -> str:
    shown = []
    for event in events:
        fields = {k: v for k, v in event.items() if k not in ("type", "at") and v not in ({}, [], None, "")}
        shown.append(f"{event['type']} {json.dumps(fields, separators=(',', ':'), sort_keys=True)}")
    return "; ".join(shown)


class ScheduleRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``schedules list``."""

    name: str
    blueprint: str
    when: str
    next_fire: str
    """The next fire time in ISO 8601, or ``never``."""


def print_schedules(rows: Sequence[ScheduleRow], *, timezone: str) -> None:
    """``schedules list``: each schedule and its next fire time in ``timezone``."""
    print(f"{'SCHEDULE':<24}  {'BLUEPRINT':<20}  {'WHEN':<28}  NEXT FIRE ({timezone})")
    for row in rows:
        print(f"{row.name:<24}  {row.blueprint:<20}  {row.when:<28}  {row.next_fire}")


def print_projection_status(found: Sequence[CheckpointStatus]) -> None:
    """``projections status``: each projection's checkpoint and its lag behind the log."""
    header = ("PROJECTION", "VERSION", "POSITION", "LAG EVENTS", "LAG S", "UPDATED AT")
    print("{:<16}  {:>7}  {:>10}  {:>10}  {:>8}  {}".format(*header))
    for status in found:
        print(
            f"{status.name:<16}  {status.version:>7}  {status.position:>10}  {status.lag_events:>10}  "
            f"{status.lag_seconds:>8.1f}  {status.updated_at.isoformat()}"
        )
    held = next((status.held_by for status in found if status.held_by), None)
    if held:
        print(f"the projections wait for an open transaction that may append to the log: {held}")


def print_rebuilt(reached: Sequence[tuple[str, LogPosition]]) -> None:
    """``projections rebuild``: where each rebuilt projection got to."""
    for name, position in reached:
        print(f"{name}: rebuilt from the log up to position {position.position}")


def print_archive_plan(plans: Sequence[PartitionPlan]) -> None:
    """``events archive --plan``: each closed partition, whether it leaves now, and why (not)."""
    if not plans:
        print("no closed partition (the log's partitions still take new jobs)")
        return
    print(f"{'PARTITION':<20}  {'JOBS':>8}  {'RUNNING':>7}  {'LEAVES':<6}  WHY")
    for plan in plans:
        leaves = "yes" if plan.leaves else "no"
        print(f"{plan.name:<20}  {plan.jobs:>8}  {plan.running:>7}  {leaves:<6}  {plan.reason}")


def print_archived(done: Archived) -> None:
    """``events archive``: what archiving a partition did."""
    rate = done.events / done.seconds if done.seconds else 0.0
    if done.dropped:
        print(
            f"{done.partition}: {done.events} event(s) of {done.jobs} job(s) archived to {done.uri} "
            f"({done.bytes} bytes, verified, {rate:,.0f} events/s); the partition was dropped"
        )
    else:
        print(
            f"{done.partition}: archived to {done.uri} but kept: {done.reason}; the next run archives it anew"
        )


def print_chain_report(report: ChainReport) -> None:
    """``events verify``: how much was checked, and the first job and version that does not match."""
    for problem in report.problems:
        print(f"problem: {problem}")
    if report.first_break is not None:
        broken = report.first_break
        print(f"BROKEN: job {broken.job_id} version {broken.version}: {broken.reason}")
        return
    if report.problems:
        return
    print(f"ok: {report.events} event(s) of {report.jobs} job(s); every hash chain holds")
