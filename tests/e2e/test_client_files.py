"""The client file routes over real HTTP and a real S3-compatible server (SeaweedFS): presigned
upload URLs, streamed uploads, download redirects, all in the job's own ``task_files`` folder and
only for the job's owner."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chronik import Blueprint
from chronik.adapters.s3 import S3Config, TaskFiles
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CLIENTS = """\
[billing]
token = "billing-token-0123456789"

[ops]
token = "ops-token-0123456789abc"

[auditor]
token = "auditor-token-0123456789"
role = "admin"
"""
BILLING = {"X-Client-Token": "billing-token-0123456789"}
OPS = {"X-Client-Token": "ops-token-0123456789abc"}
AUDITOR = {"X-Client-Token": "auditor-token-0123456789"}


def inbox_blueprint() -> Blueprint:
    """Waits for a person; then its handler reads the file the client uploaded (``task_files``)."""
    bp = Blueprint("inbox", api_endpoint="inbox")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.await_human_approval("upload input.json, then go", transitions={"go": "read"})

    @bp.handler_for("read")
    async def read(task_files: TaskFiles, state_history: dict[str, Any], actions: Any) -> None:
        state_history["input"] = await task_files.read_json("input.json")
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


@pytest.fixture
async def api(
    start_orchestrator: Any, s3_server: S3Config, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    clients = tmp_path / "clients.toml"
    clients.write_text(CLIENTS)
    orchestrator = await start_orchestrator(inbox_blueprint(), s3=s3_server, clients_config_path=str(clients))
    async with httpx.AsyncClient(base_url=orchestrator.url, timeout=30) as client:
        yield client


async def create(api: httpx.AsyncClient, who: dict[str, str]) -> str:
    response = await api.post("/api/v1/jobs/inbox", json={"initial_data": {}}, headers=who)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["job_id"])

    async def waiting() -> bool:
        job = (await api.get(f"/api/v1/jobs/{job_id}", headers=who)).json()
        return bool(job["status"] == "waiting_for_human")

    await wait_for(waiting)
    return job_id


async def download(api: httpx.AsyncClient, job_id: str, name: str, who: dict[str, str]) -> bytes:
    """Follow the download route's redirect, as a browser would (without the client token)."""
    redirect = await api.get(f"/api/v1/jobs/{job_id}/files/download/{name}", headers=who)
    assert redirect.status_code == 302, redirect.text
    async with httpx.AsyncClient(timeout=30) as plain:
        fetched = await plain.get(redirect.headers["location"])
    assert fetched.status_code == 200, fetched.text
    return fetched.content


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


async def test_a_presigned_upload_reaches_the_jobs_handler(
    api: httpx.AsyncClient, s3_server: S3Config
) -> None:
    job_id = await create(api, BILLING)
    link = await api.get(
        f"/api/v1/jobs/{job_id}/files/upload",
        params={"filename": "input.json", "expires_in": 120},
        headers=BILLING,
    )
    assert link.status_code == 200, link.text
    body = link.json()
    assert (body["expires_in"], body["method"]) == (120, "PUT")
    async with httpx.AsyncClient(timeout=30) as plain:  # straight to S3, no orchestrator in between
        put = await plain.put(body["url"], content=b'{"rows": 3}')
    assert put.status_code == 200, put.text
    # The very object the job's task_files (handlers and workers) see, under the job's folder.
    listed = await TaskFiles(s3_server.client(), s3_server.bucket, job_id).list()
    assert listed == [f"jobs/{job_id}/input.json"]
    assert await download(api, job_id, "input.json", BILLING) == b'{"rows": 3}'
    decided = await api.post(f"/api/v1/jobs/{job_id}/approval", json={"decision": "go"}, headers=BILLING)
    assert decided.status_code == 200, decided.text

    async def finished() -> Any:
        job = (await api.get(f"/api/v1/jobs/{job_id}", headers=BILLING)).json()
        return job if job["status"] == "finished" else None

    job = await wait_for(finished)
    assert job["state_history"]["input"] == {"rows": 3}


async def test_a_streamed_upload_is_downloaded_whole(api: httpx.AsyncClient) -> None:
    job_id = await create(api, BILLING)
    block = os.urandom(1 << 20)
    size = 20 * len(block)  # several 8 MiB parts: a multipart upload of unknown length

    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield block

    streamed = await api.put(
        f"/api/v1/jobs/{job_id}/files/content/big.bin",
        content=body(),
        headers={**BILLING, "Content-Type": "application/octet-stream"},
    )
    assert streamed.status_code == 200, streamed.text
    assert streamed.json() == {"status": "uploaded", "s3_uri": f"s3://chronik/jobs/{job_id}/big.bin"}
    got = await download(api, job_id, "big.bin", BILLING)
    assert len(got) == size and hashlib.sha256(got).digest() == hashlib.sha256(block * 20).digest()
    # With a Content-Length, and again under the same name: the later upload wins.
    small = await api.put(f"/api/v1/jobs/{job_id}/files/content/big.bin", content=b"small", headers=BILLING)
    assert small.status_code == 200, small.text
    assert await download(api, job_id, "big.bin", BILLING) == b"small"
    # An admin may reach every client's files.
    assert await download(api, job_id, "big.bin", AUDITOR) == b"small"


async def test_another_clients_job_is_not_found_on_every_file_route(api: httpx.AsyncClient) -> None:
    job_id = await create(api, BILLING)
    uploaded = await api.put(f"/api/v1/jobs/{job_id}/files/content/a.txt", content=b"mine", headers=BILLING)
    assert uploaded.status_code == 200, uploaded.text
    link = await api.get(f"/api/v1/jobs/{job_id}/files/upload", params={"filename": "a.txt"}, headers=OPS)
    assert_error(link, 404, "JOB_NOT_FOUND")
    put = await api.put(f"/api/v1/jobs/{job_id}/files/content/a.txt", content=b"theirs", headers=OPS)
    assert_error(put, 404, "JOB_NOT_FOUND")
    get = await api.get(f"/api/v1/jobs/{job_id}/files/download/a.txt", headers=OPS)
    assert_error(get, 404, "JOB_NOT_FOUND")
    assert await download(api, job_id, "a.txt", BILLING) == b"mine"  # untouched


async def test_bad_names_and_lifetimes_are_refused_and_an_ended_job_takes_no_files(
    api: httpx.AsyncClient, s3_server: S3Config
) -> None:
    job_id = await create(api, BILLING)
    upload = f"/api/v1/jobs/{job_id}/files/upload"
    for name in ("../escape", "a/b", "a\\b", "..", "a..b", "x" * 256, "tab\there"):
        refused = await api.get(upload, params={"filename": name}, headers=BILLING)
        assert_error(refused, 400, "INVALID_INPUT_ERROR")
    for expires_in in (0, 7 * 24 * 3600 + 1):
        refused = await api.get(
            upload, params={"filename": "a.txt", "expires_in": expires_in}, headers=BILLING
        )
        assert_error(refused, 400, "INVALID_INPUT_ERROR")
        assert "expires_in" in refused.json()["error"]["message"]
    longest = await api.get(
        upload, params={"filename": "a.txt", "expires_in": 7 * 24 * 3600}, headers=BILLING
    )
    assert longest.status_code == 200, longest.text
    dots = await api.put(f"/api/v1/jobs/{job_id}/files/content/a..b", content=b"x", headers=BILLING)
    assert_error(dots, 400, "INVALID_INPUT_ERROR")

    kept = await api.put(f"/api/v1/jobs/{job_id}/files/content/kept.txt", content=b"x", headers=BILLING)
    assert kept.status_code == 200, kept.text
    cancelled = await api.post(f"/api/v1/jobs/{job_id}/cancel", headers=BILLING)
    assert cancelled.status_code == 200, cancelled.text
    # Its folder is emptied once, when it ends: a later file would stay forever, so none is taken.
    late = await api.put(f"/api/v1/jobs/{job_id}/files/content/late.txt", content=b"x", headers=BILLING)
    assert_error(late, 409, "JOB_ENDED")
    assert_error(await api.get(upload, params={"filename": "late.txt"}, headers=BILLING), 409, "JOB_ENDED")
    folder = TaskFiles(s3_server.client(), s3_server.bucket, job_id)

    async def emptied() -> bool:
        return not await folder.list()

    await wait_for(emptied, within=30)  # the janitor removed what the client uploaded
    # A download is still answered (the link leads to S3's own 404 once the file is gone).
    assert (
        await api.get(f"/api/v1/jobs/{job_id}/files/download/kept.txt", headers=BILLING)
    ).status_code == 302
