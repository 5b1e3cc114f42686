"""Workers the end-to-end tests run as separate processes (``chronik worker tests.e2e.worker_app:worker``).

The task ``work`` does what its params say: sleep, report progress, fail with an
error code on given attempts. Every task a worker receives is appended to the
file named by ``CLAIM_LOG``, so a test can prove no attempt went to two workers.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from chronik import Result, TaskError, Worker

worker = Worker(
    capacity=int(os.environ.get("WORKER_CAPACITY", "10")),
    heartbeat_interval=float(os.environ.get("HEARTBEAT_INTERVAL", "1")),
    poll_timeout=float(os.environ.get("TASK_POLL_TIMEOUT", "5")),
)


@worker.task("work")
async def work(params: dict[str, Any], task_id: str, attempt: int, progress: Any) -> Any:
    """Sleep, report progress and fail as ``params`` ask."""
    log = os.environ.get("CLAIM_LOG")
    if log:
        with open(log, "a") as handle:  # noqa: ASYNC230 (a tiny append, in a test worker)
            handle.write(f"{task_id}\n")
    if params.get("progress"):
        await progress(50, "halfway")
    await asyncio.sleep(float(os.environ.get("TASK_SLEEP", params.get("sleep", 0))))
    if attempt in params.get("fail_attempts", []):
        raise TaskError(
            f"failing attempt {attempt} as asked", code=params.get("fail_with", "TRANSIENT_ERROR")
        )
    if "status" in params:
        return Result({"answer": params["status"]}, status=params["status"])
    return {"answer": params.get("n", 0) * 2, "worker": worker.worker_id}
