"""avtomatika-worker 1.0b20 worker for the benchmark, with one skill: "echo".

Run it with the worker venv that ``setup.sh`` creates. That venv is separate
from the orchestrator's, because the two releases pin incompatible orjson
versions::

    bench/.venvs/avtomatika-worker/bin/python bench/avtomatika/worker.py

``echo`` returns ``{"data": {"n": params["n"]}}``. The status is left out, which
means "success" on the wire.

Environment
-----------
ORCHESTRATOR_URL      orchestrator base URL (default http://127.0.0.1:8082)
WORKER_ID             worker id. It must be listed in the orchestrator's
                      workers.toml (default avt-worker-1, the orchestrator's
                      generated ids are avt-worker-1..16).
WORKER_TOKEN          that worker's token (default "bench-worker-token"). The SDK
                      prefers WORKER_INDIVIDUAL_TOKEN if that is set.
MAX_CONCURRENT_TASKS  tasks run at once (default 16)
LOG_LEVEL             default WARNING. LOG_FORMAT default text.
You can also set any other avtomatika-worker variable (TASK_POLL_TIMEOUT,
HEARTBEAT_INTERVAL, IDLE_POLL_DELAY, ...). Do not leave ORCHESTRATOR_SECRET_KEY
or SECRET_KEY in this process's environment unless the orchestrator uses the
same key. Otherwise the worker drops every task without a word.

The worker registers, then heartbeats every 15 s and long-polls
``/_worker/workers/{id}/tasks/next``, one poll at a time. Stop it with SIGTERM or
SIGINT. It sends an "offline" heartbeat and waits for tasks in flight.
"""

from __future__ import annotations

import os

for _key, _value in {
    "ORCHESTRATOR_URL": "http://127.0.0.1:8082",
    "WORKER_ID": "avt-worker-1",
    "WORKER_TOKEN": "bench-worker-token",
    "MAX_CONCURRENT_TASKS": "16",
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "text",
}.items():
    if not os.environ.get(_key):
        os.environ[_key] = _value

from avtomatika_worker import Worker  # noqa: E402

worker = Worker(
    worker_type="bench-echo",
    max_concurrent_tasks=int(os.environ["MAX_CONCURRENT_TASKS"]),
)


@worker.skill("echo", description="Returns its input n")
async def echo(params: dict) -> dict:
    return {"data": {"n": params["n"]}}


if __name__ == "__main__":
    worker.run()
