"""Idempotent creates, client side: retry ``POST /api/v1/jobs/checkout`` with one Idempotency-Key.

A response lost on the network leaves the client unsure whether the job exists;
sending the same key again returns the job the first request created (for 24
hours), so an order is never charged twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def place_order(client: httpx.AsyncClient, order: dict[str, Any], *, key: str, retries: int = 3) -> str:
    """Create the checkout job of ``order``; every retry sends the same ``key``. Returns the job id."""
    for attempt in range(retries + 1):
        try:
            response = await client.post(
                "/api/v1/jobs/checkout", json={"initial_data": order}, headers={"Idempotency-Key": key}
            )
            break
        except httpx.TransportError:
            if attempt == retries:
                raise
            await asyncio.sleep(0.1 * 2**attempt)
    response.raise_for_status()
    return str(response.json()["job_id"])
