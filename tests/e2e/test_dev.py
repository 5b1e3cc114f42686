"""``chronik dev`` as a newcomer runs it: a subprocess on the embedded PostgreSQL, driven over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chronik_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLIENT_TOKEN")}
    env.update(CHRONIK_DATA_DIR=str(data_dir), POLL_INTERVAL_SECONDS="1", **extra)
    return env


def chronik(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronik", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``chronik dev`` with no CLIENT_TOKEN and no DATABASE_URL; yields its URL, token and data dir."""
    data_dir = tmp_path / "pgdata"
    port = free_port()
    env = chronik_env(data_dir)
    log = (tmp_path / "dev.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chronik", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    banner = ""
    deadline = time.monotonic() + 60
    while "Then follow it" not in banner and time.monotonic() < deadline and proc.poll() is None:
        banner += proc.stdout.readline()
    token = re.search(r"client token: (\S+)", banner)
    assert token, f"no banner; stdout={banner!r} log={(tmp_path / 'dev.log').read_text()}"
    assert f"curl -s -X POST http://127.0.0.1:{port}/api/v1/jobs/demo" in banner
    assert re.search(r"webhook secret: \S{20,}", banner), banner  # a webhook_url works at once
    assert f"web console:  http://127.0.0.1:{port}/console " in banner, banner
    try:
        yield f"http://127.0.0.1:{port}", token.group(1), data_dir
    finally:
        # SIGTERM, as a container runtime sends it: the engine, PostgreSQL and the worker stop.
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None  # it did not stop on SIGTERM: fail, but leave nothing running
        rest = proc.stdout.read()
        proc.stdout.close()
        log.close()
        output = rest + (tmp_path / "dev.log").read_text()
        assert code == 0, output[-4000:]
        assert "engine_stopped" in output, output[-4000:]


def test_dev_serves_the_demo_end_to_end(dev_server: tuple[str, str, Path]) -> None:
    url, token, data_dir = dev_server
    headers = {"X-Client-Token": token}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        assert client.get("/_public/status").json() == {"status": "ok"}
        created = client.post("/api/v1/jobs/demo", json={"initial_data": {"name": "Ada"}})
        assert created.status_code == 202, created.text
        hooked = {"initial_data": {"name": "Bo"}, "webhook_url": "http://127.0.0.1:9/hook"}
        assert client.post("/api/v1/jobs/demo", json=hooked).status_code == 202  # dev made a secret
        job_id = created.json()["job_id"]
        deadline = time.monotonic() + 20
        while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] in (
            "running",
            "waiting_for_worker",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "finished"
        assert job["result"] == {"greeting": "Hello, Ada!", "shouted": "HELLO, ADA!"}
        history = client.get(f"/api/v1/jobs/{job_id}/history").json()
        assert [e["type"] for e in history] == [
            "JobCreated", "TaskDispatched", "TaskCompleted", "StateEntered", "JobFinished",
        ]  # fmt: skip
        assert history[2]["data"]["data"] == {"shouted": "HELLO, ADA!"}  # the worker process answered
        assert client.get(f"/api/v1/jobs/{job_id}", headers={"X-Client-Token": "wrong"}).status_code == 401

    # The CLI reads the same embedded database while the server runs.
    env = chronik_env(data_dir)
    got = chronik("jobs", "get", job_id, env=env)
    assert got.returncode == 0, got.stderr
    assert '"status": "finished"' in got.stdout
    table = chronik("jobs", "history", job_id, env=env)
    assert table.returncode == 0, table.stderr
    assert [line.split()[2] for line in table.stdout.splitlines()[1:]] == [
        "JobCreated", "TaskDispatched", "TaskCompleted", "StateEntered", "JobFinished",
    ]  # fmt: skip
    replayed = chronik("jobs", "replay", job_id, env=env)
    assert replayed.returncode == 0, replayed.stderr
    statuses = [line.split()[2] for line in replayed.stdout.splitlines()[1:]]
    assert statuses == ["running", "waiting_for_worker", "running", "running", "finished"]


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["dev", "no_such_module:bp"], {}, "cannot import module 'no_such_module'"),
        (["dev", "chronik.demo:nothing"], {}, "module 'chronik.demo' has no attribute 'nothing'"),
        (["dev", "chronik.demo"], {}, "must have the form module:attribute"),
        (["serve", "chronik.demo:blueprints"], {}, "CLIENT_TOKEN is not set"),
        (["db", "migrate"], {"EXECUTOR_MAX_CONCURRENT_JOBS": "lots"}, "EXECUTOR_MAX_CONCURRENT_JOBS='lots'"),
        (["jobs", "get", "not-a-uuid"], {}, "'not-a-uuid' is not a UUID"),
    ],
)
def test_cli_errors_name_the_culprit_and_exit_2(
    tmp_path: Path, args: list[str], extra_env: dict[str, str], message: str
) -> None:
    result = chronik(*args, env=chronik_env(tmp_path / "pgdata", **extra_env))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_db_migrate_is_idempotent(tmp_path: Path) -> None:
    env = chronik_env(tmp_path / "pgdata")
    for _ in range(2):
        result = chronik("db", "migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "database is up to date" in result.stdout


def test_the_worker_never_outlives_chronik_dev_killed_with_9(tmp_path: Path) -> None:
    """kill -9 sends a process's children nothing: the worker notices its parent is gone and exits."""
    data_dir = tmp_path / "pgdata"
    env = chronik_env(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "chronik", "dev", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "Then follow it" not in banner and time.monotonic() < deadline and proc.poll() is None:
            banner += proc.stdout.readline()
        assert "Then follow it" in banner, banner
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        workers = [int(pid) for pid in children if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 1, children
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while Path(f"/proc/{workers[0]}").exists() and time.monotonic() < deadline:
            if Path(f"/proc/{workers[0]}/stat").read_text().split()[2] == "Z":
                break  # exited; a zombie until its new parent reaps it
            time.sleep(0.1)
        gone = not Path(f"/proc/{workers[0]}").exists() or (
            Path(f"/proc/{workers[0]}/stat").read_text().split()[2] == "Z"
        )
        assert gone, "the worker outlived chronik dev"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        # The embedded PostgreSQL outlives a kill -9 of its user; stop it so the test leaves nothing.
        from chronik.adapters.postgres.embedded import start_embedded

        start_embedded(data_dir).stop()


def _start_dev(tmp_path: Path, data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """``chronik dev`` up to its banner; the process and its worker's pid."""
    log = tmp_path / f"dev-{time.monotonic_ns()}.log"
    with log.open("w") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chronik", "dev", "--port", str(free_port())],
            env=chronik_env(data_dir),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=tmp_path,
        )
    assert proc.stdout is not None
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "Then follow it" not in banner and time.monotonic() < deadline and proc.poll() is None:
            banner += proc.stdout.readline()
        assert "Then follow it" in banner, banner + log.read_text()[-3000:]
        deadline = time.monotonic() + 20
        while True:  # the worker is started once the server answers, just after the banner
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            workers = [int(pid) for pid in children if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            if workers or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        (worker,) = workers
    except BaseException:
        proc.send_signal(signal.SIGTERM)  # leave nothing running (its worker and PostgreSQL stop with it)
        proc.wait(timeout=30)
        proc.stdout.close()
        raise
    return proc, worker


def _postmaster(data_dir: Path) -> int | None:
    """The pid of the embedded PostgreSQL running on ``data_dir``, or None."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    path = Path(f"/proc/{pid}/stat")
    return path.exists() and path.read_text().split()[2] != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def test_a_postgresql_left_by_a_kill_9_is_adopted_and_stopped_by_the_next_dev(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    first, _worker = _start_dev(tmp_path, data_dir)
    first.kill()
    first.wait()
    assert first.stdout is not None
    first.stdout.close()
    left = _postmaster(data_dir)
    assert left is not None, "kill -9 leaves the embedded PostgreSQL running (nothing told it to stop)"
    second, worker = _start_dev(tmp_path, data_dir)
    try:
        assert _postmaster(data_dir) == left, "the next chronik dev uses the server that was left"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        assert _gone_within(left, 20), "the adopted PostgreSQL was stopped with chronik dev"
        assert _gone_within(worker, 20), "and so was the worker"
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        assert second.stdout is not None
        second.stdout.close()
        if _postmaster(data_dir) is not None:
            from chronik.adapters.postgres.embedded import start_embedded

            start_embedded(data_dir).stop()


def test_a_second_signal_during_shutdown_leaves_no_worker_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    proc, worker = _start_dev(tmp_path, data_dir)
    try:
        # An impatient operator: SIGTERM, then SIGINT (Ctrl-C) at once, before shutdown is done.
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert _gone_within(worker, 20), "the worker outlived chronik dev"
        server = _postmaster(data_dir)
        assert server is None or _gone_within(server, 20), "PostgreSQL outlived chronik dev"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        if _postmaster(data_dir) is not None:
            from chronik.adapters.postgres.embedded import start_embedded

            start_embedded(data_dir).stop()
