"""Issue 16's scenarios 1 and 2 in short form: a PostgreSQL fast restart, and every session killed.

Each runs the fault harness (chaos/) for real: its own embedded PostgreSQL on a temporary
folder (never the system's), two ``chronik serve`` instances, two workers and a steady load
of jobs with a fan-out, a timer, approvals and a webhook each, then checks every invariant:
no job lost, stuck or duplicated (some are left waiting for a decision on purpose, and must
be told apart), no event lost or written twice, every row equal to the fold of its log,
every task attempt's result applied once, every ended job's webhook received under its
stable id, each instance's LISTEN session back (a new one), no 500 and no unexplained error
in the logs, and throughput back to 90 % of its baseline within 30 s. ``python -m chaos --all`` runs the full
forms, docs/reliability.md has their figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.__main__ import details
from chaos.scenarios import Timing, run_scenario

pytestmark = pytest.mark.chaos

SHORT = Timing(warmup=3.0, baseline=6.0, window=3.0, clients=4, terminate_for=6.0)


@pytest.mark.parametrize("scenario", ["restart-fast", "terminate"])
async def test_the_invariants_hold_through_the_fault(scenario: str, tmp_path: Path) -> None:
    result = await run_scenario(scenario, tmp_path, SHORT)
    report = "\n".join(details(result))
    found = result.findings
    assert found.jobs >= 10, report
    assert result.faults >= 1, report
    assert not found.lost and not found.duplicated and not found.unexpected, report
    assert not found.stuck and not found.failed and not found.row_differs, report
    assert found.notifications >= 10 and not found.webhooks, report
    assert not result.listener_problem, report
    assert result.http_500s == 0 and not result.server_errors, report
    assert not result.log_problems, report
    assert result.recovery is not None and result.recovery <= 30, report
