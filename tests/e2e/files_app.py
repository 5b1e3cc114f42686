"""A worker whose task streams a job's file through S3: down, and back up under another name.

It reports how much its peak memory grew while doing so, so a test can show that a
file larger than that passed without being held in memory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from chronik import Worker
from chronik.adapters.s3 import TaskFiles

worker = Worker(capacity=2, heartbeat_interval=1.0, poll_timeout=5.0)


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


class _PeakMemory:
    """Samples this process's resident memory every 5 ms while the task runs."""

    def __init__(self) -> None:
        self.start = _rss_kib()
        self.peak = self.start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss_kib())

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(0, self.peak - self.start)


@worker.task("echo_file")
async def echo_file(params: dict[str, Any], task_files: TaskFiles) -> dict[str, Any]:
    """Download ``params.name``, hash it, upload it again as ``params.as``."""
    memory = _PeakMemory()
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "copy.bin"
        await task_files.download(params["name"], local)
        digest = hashlib.sha256()
        with local.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        await task_files.upload(local, params["as"])
    return {"worker_sha256": digest.hexdigest(), "peak_growth_kib": memory.stop()}
