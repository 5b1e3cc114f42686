"""``python -m chaos --scenario NAME [--duration S] [--short]`` or ``python -m chaos --all``."""

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

WORK = Path(__file__).resolve().parent / ".work"

HEADER = (
    f"{'scenario':<19}{'jobs':>6}{'faults':>8}{'lost':>6}{'dup':>5}{'stuck':>7}{'500s':>6}"
    f"{'recovery s':>12}{'after/before jobs/s':>22}  ok"
)


def row(result: Result) -> str:
    found = result.findings
    recovery = "no" if result.recovery is None else f"{result.recovery:.1f}"
    ratio = f"{result.after:.2f}/{result.before:.2f}"
    return (
        f"{result.scenario:<19}{found.jobs:>6}{result.faults:>8}{len(found.lost):>6}{len(found.duplicated):>5}"
        f"{len(found.stuck):>7}{result.http_500s:>6}{recovery:>12}{ratio:>22}  {'yes' if result.ok else 'NO'}"
    )


def details(result: Result) -> list[str]:
    found = result.findings
    lines = [f"  {result.scenario}: {result.fault_detail}; statuses {result.statuses}"]
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
        ("5xx answers", result.server_errors),
        ("unexplained log lines", result.log_problems),
    ):
        if items:
            lines.append(f"    {label} ({len(items)}): " + "; ".join(items[:3]))
    if result.log_explained:
        lines.append(f"    explained log lines: {result.log_explained}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--scenario", choices=sorted(SCENARIOS))
    which.add_argument("--all", action="store_true", help="every scenario, one after the other")
    parser.add_argument("--duration", type=float, help="seconds of baseline (and of 'after'); default 20")
    parser.add_argument("--short", action="store_true", help="a short form: fewer clients and faults")
    args = parser.parse_args()
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
