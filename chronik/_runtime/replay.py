"""``chronik jobs replay ID --blueprint APP``: would today's handlers decide as history did?

Run this before deploying a changed blueprint: every handler run in a job's
history is run again with the current code, from the state the log gives at
that point, and each outcome is compared with what was recorded. Handlers run
for real, so keep their side effects in tasks (where they belong anyway).
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import msgspec

from chronik.core.blueprint import Blueprint
from chronik.core.deadlines import stamp_state_deadlines
from chronik.core.decide import decide_step
from chronik.core.divergence import Divergence, handler_runs, recorded_ids
from chronik.core.events import AnyEvent

from .handlers import run_handler

__all__ = ["Divergence", "divergences"]


async def divergences(
    blueprint: Blueprint, events: Sequence[AnyEvent], *, blueprints: Container[str] = ()
) -> tuple[int, list[Divergence]]:
    """How many handler runs the history has, and those today's ``blueprint`` decides differently."""
    found: list[Divergence] = []
    runs = 0
    for run in handler_runs(events):
        runs += 1
        outcome = await run_handler(blueprint, run.before)
        decided = decide_step(
            run.before,
            blueprint,
            outcome,
            run.events[0].at,
            new_id=recorded_ids(run.events),
            blueprints=blueprints,
        )
        decided = stamp_state_deadlines(blueprint, decided)
        recorded, now = _comparable(run.events), _comparable(decided)
        if recorded != now:
            found.append(
                Divergence(
                    version=run.version, state=run.before.current_state, recorded=recorded, decided=now
                )
            )
    return runs, found


def _comparable(events: Sequence[AnyEvent]) -> list[dict[str, Any]]:
    # A traceback names files and lines, which move with any edit; the error itself is compared.
    built = [msgspec.to_builtins(event) for event in events]
    for item in built:
        item.pop("traceback", None)
    return built
