"""``chronik serve --processes 2``: two engine processes on one port, stopped together, never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CLIENT_TOKEN, ROOT, WORKER_TOKEN, free_port

pytestmark = pytest.mark.e2e

APP = "tests.e2e.conftest:work_blueprint"  # a function returning the ``work`` blueprint


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _stat(int(entry))[1:] == (pid,) and alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    state = _stat(pid)[0]
    return state not in ("", "Z", "X")


def _stat(pid: int) -> tuple[str, int | None]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "", None
    return fields[0], int(fields[1])


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def wait_until(predicate: Callable[[], Any], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.1)
    return result


@pytest.fixture
def serve_processes(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str, list[int]]]]:
    """Start ``chronik serve APP --processes 2``; yield a function that starts it and returns the
    parent, its URL and its two children once both answer. Anything left is killed at the end."""
    started: list[subprocess.Popen[str]] = []
    pids: list[int] = []

    def start(**env: str) -> tuple[subprocess.Popen[str], str, list[int]]:
        port = free_port()
        full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "INSTANCE_ID")}
        full_env.update(
            CLIENT_TOKEN=CLIENT_TOKEN, GLOBAL_WORKER_TOKEN=WORKER_TOKEN, INSTANCE_ID="multi",
            CHRONIK_DATA_DIR=str(tmp_path / "pgdata"), TASK_LEASE_SECONDS="10", LOG_LEVEL="INFO", **env,
        )  # fmt: skip
        log = (tmp_path / "serve.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "chronik", "serve", APP, "--host", "127.0.0.1", "--port", str(port),
             "--processes", "2"],
            env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        log.close()
        started.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> list[int] | None:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            children = children_of(proc.pid)
            pids.extend(pid for pid in children if pid not in pids)
            if len(children) < 2:
                return None
            # Both engines have started once the port answers from each of them: each logs it.
            return children if (tmp_path / "serve.log").read_text().count("engine_started") >= 2 else None

        children = wait_until(ready, within=90, what="two engine processes")
        wait_until(lambda: _answers(url), within=30, what="the port")
        return proc, url, children

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_public/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_processes_share_the_port_and_stop_together(
    serve_processes: Any, spawn_worker: Any, tmp_path: Path
) -> None:
    # No DATABASE_URL: the parent starts the embedded PostgreSQL once and hands its URL on.
    parent, url, children = serve_processes()
    envs = [environ_of(pid) for pid in children]
    assert sorted(env["INSTANCE_ID"] for env in envs) == ["multi-1", "multi-2"]
    assert {env["DATABASE_URL"] for env in envs} == {envs[0]["DATABASE_URL"]}
    assert str(tmp_path / "pgdata") in envs[0]["DATABASE_URL"]  # the embedded server's socket

    spawn_worker(url, WORKER_CAPACITY="8")
    # No keep-alive: each request opens a connection, which the kernel hands to either process.
    limits = httpx.Limits(max_keepalive_connections=0)
    headers = {"X-Client-Token": CLIENT_TOKEN}
    with httpx.Client(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        jobs = []
        for n in range(40):
            created = client.post("/api/v1/jobs/work", json={"initial_data": {"n": n}})
            assert created.status_code == 202, created.text
            jobs.append(created.json()["job_id"])

        def all_finished() -> bool:
            return all(client.get(f"/api/v1/jobs/{job}").json()["status"] == "finished" for job in jobs)

        wait_until(all_finished, within=60, what="40 jobs finished")
        instances = {
            event["meta"]["instance"]
            for job in jobs
            for event in client.get(f"/api/v1/jobs/{job}/history").json()
        }
    assert instances == {"multi-1", "multi-2"}

    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=90) == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not [pid for pid in children if alive(pid)]
    log = (tmp_path / "serve.log").read_text()
    assert log.count("engine_stopped") == 2, log[-3000:]
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()  # the embedded server stopped too


def test_a_child_that_dies_stops_the_others_and_fails_the_command(
    serve_processes: Any, database_url: str, tmp_path: Path
) -> None:
    parent, _url, children = serve_processes(DATABASE_URL=database_url)
    os.kill(children[0], signal.SIGKILL)
    assert parent.wait(timeout=90) == 2
    assert not [pid for pid in children if alive(pid)]
    log = (tmp_path / "serve.log").read_text()
    assert "engine process 1" in log and "exited with code -9; the others were stopped" in log, log[-3000:]


def test_children_stop_when_the_parent_is_killed(
    serve_processes: Any, database_url: str, tmp_path: Path
) -> None:
    parent, url, children = serve_processes(DATABASE_URL=database_url)
    parent.kill()  # no signal to forward: the children see their pipe to it close
    parent.wait()
    wait_until(
        lambda: not [pid for pid in children if alive(pid)], within=60, what="children gone after the parent"
    )
    assert not _answers(url)
    assert (tmp_path / "serve.log").read_text().count("parent_gone") == 2
