"""``python -m chaos --scenario NAME [--duration S] [--short]``, ``python -m chaos --all``, or
``python -m chaos --soak [--minutes M]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
from dataclasses import replace
from pathlib import Path

from chaos.scenarios import SCENARIOS, Result, Timing, run_scenario
from chaos.soak import SoakResult, run_soak

WORK = Path(__file__).resolve().parent / ".work"

HEADER = (
    f"{'scenario':<19}{'jobs':>6}{'faults':>8}{'lost':>6}{'dup':>5}{'stuck':>7}{'500s':>6}"
    f"{'recovery s':>12}{'after/before jobs/s':>22}{'waiting':>9}{'webhooks':>10}  ok"
)


def row(result: Result) -> str:
    found = result.findings
    recovery = "no" if result.recovery is None else f"{result.recovery:.1f}"
    ratio = f"{result.after:.2f}/{result.before:.2f}"
    return (
        f"{result.scenario:<19}{found.jobs:>6}{result.faults:>8}{len(found.lost):>6}{len(found.duplicated):>5}"
        f"{len(found.stuck):>7}{result.http_500s:>6}{recovery:>12}{ratio:>22}{found.waiting:>9}"
        f"{found.notifications:>10}  {'yes' if result.ok else 'NO'}"
    )


def details(result: Result) -> list[str]:
    found = result.findings
    lines = [f"  {result.scenario}: {result.fault_detail}; statuses {result.statuses}"]
    lines.append(
        f"    LISTEN sessions: {result.listeners}; webhooks: {found.notifications} owed, all received"
        f" unless listed below, {found.redelivered} received more than once"
    )
    if result.listener_problem:
        lines.append(f"    LISTEN: {result.listener_problem}")
    if result.connection_errors:
        lines.append(f"    connection errors (retried): {result.connection_errors}")
    if found.answers_lost:
        lines.append(f"    creates whose answer was lost, found by key: {found.answers_lost}")
    for label, items in (
        ("lost", found.lost),
        ("duplicated", found.duplicated),
        ("stuck", found.stuck),
        ("failed", found.failed),
        ("row differs from fold", found.row_differs),
        ("unexpected", found.unexpected),
        ("webhooks", found.webhooks),
        ("5xx answers", result.server_errors),
        ("unexplained log lines", result.log_problems),
    ):
        if items:
            lines.append(f"    {label} ({len(items)}): " + "; ".join(items[:3]))
    if result.log_explained:
        lines.append(f"    explained log lines: {result.log_explained}")
    return lines


def soak_report(result: SoakResult) -> list[str]:
    found = result.findings
    lines = [
        f"soak: {result.minutes:g} min at {result.rate:.2f} jobs/s started ({result.achieved:.2f} ended/s);"
        f" maximum {result.maximum:.2f} (ramp, clients: jobs/s {result.ramp})",
        f"  jobs {found.jobs}, lost {len(found.lost)}, duplicated {len(found.duplicated)},"
        f" stuck {len(found.stuck)}, failed {len(found.failed)}, rows differ {len(found.row_differs)},"
        f" webhooks {found.notifications} owed ({len(found.webhooks)} problems,"
        f" {found.redelivered} redelivered)",
        f"  statuses {result.statuses}; latency {result.latency}",
        "  slopes per 10 min (after the first minute):",
        *(f"    {name}: {slope:+.2f}" for name, slope in sorted(result.slopes.items())),
    ]
    if result.samples:
        first, last = result.samples[0], result.samples[-1]
        lines.append(f"  first sample {first}")
        lines.append(f"  last sample  {last}")
    for label, items in (
        ("problems", found.lost + found.duplicated + found.stuck + found.failed + found.row_differs),
        ("webhooks", found.webhooks),
        ("5xx answers", result.server_errors),
        ("unexplained log lines", result.log_problems),
    ):
        if items:
            lines.append(f"  {label} ({len(items)}): " + "; ".join(items[:3]))
    if result.log_explained:
        lines.append(f"  explained log lines: {result.log_explained}")
    lines.append(f"  ok: {'yes' if result.ok else 'NO'}")
    return lines


def soak(minutes: float) -> None:
    folder = WORK / "soak"
    shutil.rmtree(folder, ignore_errors=True)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; soak of {minutes:g} minutes", flush=True)
    result = asyncio.run(run_soak(folder, minutes=minutes))
    print("\n".join(soak_report(result)))
    saved = WORK / "last-soak.json"
    saved.write_text(json.dumps(result.as_json(), indent=1))
    print(f"\n(figures and every sample: {saved}; logs: {folder}/)")
    raise SystemExit(0 if result.ok else 1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--scenario", choices=sorted(SCENARIOS))
    which.add_argument("--all", action="store_true", help="every scenario, one after the other")
    which.add_argument("--soak", action="store_true", help="scenario 8: the maximum, then 80 %% of it")
    parser.add_argument("--duration", type=float, help="seconds of baseline (and of 'after'); default 20")
    parser.add_argument("--short", action="store_true", help="a short form: fewer clients and faults")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the soak runs; default 10")
    args = parser.parse_args()
    if args.soak:
        soak(args.minutes)
    timing = Timing.short() if args.short else Timing()
    if args.duration:
        timing = replace(timing, baseline=args.duration)
    names = list(SCENARIOS) if args.all else [args.scenario]
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; {timing}", flush=True)
    results = []
    for name in names:
        folder = WORK / name
        shutil.rmtree(folder, ignore_errors=True)
        print(f"running {name} ...", flush=True)
        results.append(asyncio.run(run_scenario(name, folder, timing)))
        print(row(results[-1]), flush=True)
    print("\n" + HEADER)
    for result in results:
        print(row(result))
    for result in results:
        print("\n".join(details(result)))
    WORK.mkdir(parents=True, exist_ok=True)
    saved = WORK / "last-run.json"
    figures = {"timing": timing.__dict__, "results": [result.as_json() for result in results]}
    saved.write_text(json.dumps(figures, indent=1))
    print(f"\n(figures: {saved}; logs: {WORK}/<scenario>/)")
    raise SystemExit(0 if all(result.ok for result in results) else 1)


if __name__ == "__main__":
    main()
