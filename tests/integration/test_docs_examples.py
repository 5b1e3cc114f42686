"""Every example under docs/examples runs as the docs say."""

from __future__ import annotations

from typing import Any

from chronik.core.state import JobStatus
from chronik.loader import load_blueprints
from tests.conftest import wait_for


async def test_quickstart(make_engine: Any) -> None:
    engine = await make_engine(*load_blueprints("docs.examples.quickstart:bp"))
    good = await engine.create_job("orders", {"quantity": 4})
    bad = await engine.create_job("orders", {"quantity": 0})

    async def ended(job_id: Any) -> Any:
        state = await engine.get_job(job_id)
        return state if state.is_terminal else None

    good_state = await wait_for(lambda: ended(good.job_id))
    assert good_state.status == JobStatus.FINISHED
    assert good_state.state_history == {"total": 10.0, "confirmed": {"total": 10.0}}
    bad_state = await wait_for(lambda: ended(bad.job_id))
    assert bad_state.status == JobStatus.FAILED
    assert bad_state.state_history["rejected"] == {"reason": "quantity must be positive"}
