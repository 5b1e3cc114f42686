"""A worker with every SDK default, for the throughput tests (``tests.e2e.throughput_app:worker``)."""

from __future__ import annotations

from typing import Any

from chronik import Worker

worker = Worker()


@worker.task("quick")
async def quick(params: dict[str, Any]) -> dict[str, Any]:
    """Answer at once: the work is the protocol's round trips."""
    return {"echo": params.get("i", 0)}
