"""Handler arguments are injected by name: built-ins, then state_history, then initial_data."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from chronik.core.actions import Actions
from chronik.core.errors import BlueprintError
from chronik.core.injection import JobContext, MissingArgument, build_arguments, plan_arguments


def context() -> JobContext:
    return JobContext(
        job_id=uuid4(),
        blueprint="bp",
        current_state="s",
        initial_data={"order": 7, "shared": "initial"},
        state_history={"total": 3, "shared": "history"},
        actions=Actions("s"),
    )


def test_lookup_order() -> None:
    async def handler(
        job_id: Any, actions: Any, context: Any, total: int, order: int, shared: str
    ) -> None: ...

    ctx = context()
    kwargs = build_arguments(plan_arguments(handler, where="w"), ctx)
    assert kwargs == {
        "job_id": ctx.job_id,
        "actions": ctx.actions,
        "context": ctx,
        "total": 3,
        "order": 7,
        "shared": "history",
    }


def test_missing_argument_names_it_and_defaults_apply() -> None:
    async def wants(nope: int) -> None: ...

    async def optional(nope: int = 5) -> None: ...

    with pytest.raises(MissingArgument, match="asks for 'nope'"):
        build_arguments(plan_arguments(wants, where="w"), context())
    assert build_arguments(plan_arguments(optional, where="w"), context()) == {}


def test_positional_only_is_refused() -> None:
    async def positional(a: int, /) -> None: ...

    with pytest.raises(BlueprintError, match="positional-only"):
        plan_arguments(positional, where="w")
