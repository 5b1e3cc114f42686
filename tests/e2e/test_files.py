"""task_files over a real S3-compatible server (SeaweedFS): 50 MB from a handler to a worker and
back, streamed, checked, recorded in the history, and removed when the job ends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from chronik import Blueprint
from chronik.adapters.s3 import S3Config, TaskFiles
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN

pytestmark = pytest.mark.e2e

SIZE = 50 * 1024 * 1024


def _write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def payload_blueprint() -> Blueprint:
    bp = Blueprint("payload")

    @bp.handler_for("start", is_start=True)
    async def start(task_files: TaskFiles, state_history: dict[str, Any], actions: Any) -> None:
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "input.bin"
            state_history["sha256"] = await asyncio.to_thread(_write_file, local, SIZE)
            await task_files.upload(local)
        actions.dispatch_task(
            "echo_file", {"name": "input.bin", "as": "output.bin"}, transitions={"success": "verify"}
        )

    @bp.handler_for("verify")
    async def verify(task_files: TaskFiles, state_history: dict[str, Any], actions: Any) -> None:
        with tempfile.TemporaryDirectory() as folder:
            local = await task_files.download("output.bin", Path(folder) / "output.bin")
            state_history["round_trip"] = await asyncio.to_thread(_sha256, local)
        await task_files.write_json("summary.json", {"bytes": SIZE})
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done(state_history: dict[str, Any], task_files: TaskFiles) -> None:
        state_history["done"] = {
            "same": state_history["round_trip"] == state_history["sha256"] == state_history["worker_sha256"],
            "summary": await task_files.read_json("summary.json"),
        }

    return bp


async def test_fifty_megabytes_pass_through_s3_and_are_removed_after(
    start_orchestrator: Any, spawn_worker: Any, s3_server: S3Config
) -> None:
    orchestrator = await start_orchestrator(payload_blueprint(), s3=s3_server)
    spawn_worker(
        orchestrator.url,
        app="tests.e2e.files_app:worker",
        S3_ENDPOINT=s3_server.endpoint,
        S3_ACCESS_KEY=s3_server.access_key,
        S3_SECRET_KEY=s3_server.secret_key,
        S3_BUCKET=s3_server.bucket,
    )
    headers = {"X-Client-Token": CLIENT_TOKEN}
    async with httpx.AsyncClient(base_url=orchestrator.url, headers=headers, timeout=30) as client:
        job_id = (await client.post("/api/v1/jobs/payload", json={"initial_data": {}})).json()["job_id"]

        async def ended() -> Any:
            job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            return job if job["status"] in ("finished", "failed") else None

        job = await wait_for(ended, within=120, interval=0.2)
        assert job["status"] == "finished", job
        worker_result = job["state_history"]
        assert job["result"] == {"same": True, "summary": {"bytes": SIZE}}
        # The worker streamed the file: its peak memory grew by far less than the file's 50 MB.
        assert worker_result["peak_growth_kib"] < 20 * 1024, worker_result["peak_growth_kib"]
        history = (await client.get(f"/api/v1/jobs/{job_id}/history")).json()
        stored = [(e["data"]["by"], e["data"]["keys"]) for e in history if e["type"] == "FilesStored"]
        assert stored == [
            ("handler:start", [f"jobs/{job_id}/input.bin"]),
            (stored[1][0], [f"jobs/{job_id}/output.bin"]),
            ("handler:verify", [f"jobs/{job_id}/summary.json"]),
        ]
        assert stored[1][0].startswith("w")  # the worker's id

    client_s3 = s3_server.client()

    def left() -> list[str]:
        objects = client_s3.list_objects(s3_server.bucket, f"jobs/{job_id}/", recursive=True)
        return [o.object_name for o in objects]

    await wait_for(lambda: _empty(left), within=30)  # the janitor emptied the job's folder


async def _empty(left: Any) -> bool:
    return not await asyncio.to_thread(left)
