"""Workers over TLS: client certificates (their CN is the worker's id), WORKER_AUTH_MODE, short-lived
worker tokens and their renewal by the SDK, workers.toml patterns; certificates made by the test."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import trustme

from chronik import Worker
from tests.conftest import wait_for
from tests.e2e.conftest import CLIENT_TOKEN, ROOT, WORKER_TOKEN, free_port, work_blueprint

pytestmark = pytest.mark.e2e

CLIENT = {"X-Client-Token": CLIENT_TOKEN}
REGISTER = {"worker_id": "", "worker_type": "t", "supported_skills": [{"name": "work", "type": "work"}]}


@dataclass
class Pki:
    """A CA made for the test, the server's certificate for 127.0.0.1, and client certificates."""

    authority: trustme.CA
    folder: Path
    ca: str
    server_cert: str
    server_key: str

    def client_cert(self, common_name: str) -> str:
        """A PEM file with the key and certificate of a client whose CN is ``common_name``."""
        path = self.folder / f"{common_name}.pem"
        if not path.exists():
            leaf = self.authority.issue_cert(common_name=common_name)
            leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
        return str(path)

    def context(self, common_name: str | None = None) -> ssl.SSLContext:
        """An httpx TLS context trusting the CA, presenting ``common_name``'s certificate if given."""
        context = ssl.create_default_context(cafile=self.ca)
        if common_name is not None:
            context.load_cert_chain(self.client_cert(common_name))
        return context

    def settings(self, **more: Any) -> dict[str, Any]:
        """The orchestrator's TLS settings."""
        return {
            "tls_cert_path": self.server_cert,
            "tls_key_path": self.server_key,
            "tls_ca_path": self.ca,
            **more,
        }


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path / "pki"
    folder.mkdir()
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    return Pki(
        authority, folder, str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key")
    )


def worker_client(
    url: str, pki: Pki | None, common_name: str | None = None, **headers: str
) -> httpx.AsyncClient:
    """A raw worker-side HTTP client (no SDK)."""
    verify: Any = True if pki is None else pki.context(common_name)
    return httpx.AsyncClient(base_url=url, verify=verify, headers=headers, timeout=10)


def register_body(worker_id: str) -> dict[str, Any]:
    return {**REGISTER, "worker_id": worker_id}


def run_in_background(worker: Worker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.serve())


async def stop(worker: Worker, running: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(running, timeout=20)


def doubling_worker(worker_id: str, url: str, **options: Any) -> Worker:
    worker = Worker(worker_id, url=url, heartbeat_interval=0.5, poll_timeout=1.0, **options)

    @worker.task("work")
    async def work(params: dict[str, Any]) -> dict[str, Any]:
        return {"answer": params["n"] * 2, "worker": worker.worker_id}

    return worker


async def finished(orchestrator: Any, job_id: Any, *, within: float = 20) -> Any:
    async def ended() -> Any:
        state = await orchestrator.engine.get_job(job_id)
        return state if state.is_terminal else None

    return await wait_for(ended, within=within)


# -- client certificates ----------------------------------------------------------


async def test_a_worker_with_a_client_certificate_registers_and_runs_a_task(
    start_orchestrator: Any, pki: Pki
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), **pki.settings(worker_auth_mode="mtls-only"))
    assert orchestrator.url.startswith("https://")
    # No token at all: the certificate is the credential, its CN the worker's id.
    certificate = pki.client_cert("tls-worker-1")
    worker = doubling_worker("tls-worker-1", orchestrator.url, token="", tls_cert=certificate, tls_ca=pki.ca)
    running = run_in_background(worker)
    try:
        # A client over HTTPS, without a certificate of its own (the server asks, does not require).
        async with httpx.AsyncClient(
            base_url=orchestrator.url, verify=pki.context(), headers=CLIENT
        ) as client:
            created = await client.post("/api/v1/jobs/work", json={"initial_data": {"n": 21}})
            assert created.status_code == 202, created.text
            job_id = created.json()["job_id"]
            done = await finished(orchestrator, job_id)
            assert done.status == "finished"
            shown = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            assert shown["state_history"]["answer"] == 42
            assert shown["state_history"]["worker"] == "tls-worker-1"
    finally:
        await stop(worker, running)


async def test_mtls_only_refuses_workers_without_a_certificate_and_static_tokens(
    start_orchestrator: Any, pki: Pki
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), **pki.settings(worker_auth_mode="mtls-only"))
    async with worker_client(
        orchestrator.url, pki, **{"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "w1"}
    ) as bare:
        refused = await bare.post("/_worker/workers/register", json=register_body("w1"))
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHORIZED"
        assert "client certificate is required" in refused.json()["error"]["message"]
        exchange = await bare.post("/_worker/auth/token")
        assert exchange.status_code == 401  # a static token buys no short-lived one either
    async with worker_client(orchestrator.url, pki, "w2", **{"X-Worker-ID": "w1"}) as impostor:
        mismatch = await impostor.post("/_worker/workers/register", json=register_body("w1"))
        assert mismatch.status_code == 403
        message = mismatch.json()["error"]["message"]
        assert "'w2'" in message and "'w1'" in message
    async with worker_client(orchestrator.url, pki, "w2") as holder:
        # The certificate alone names the worker: no X-Worker-ID needed.
        assert (await holder.post("/_worker/workers/register", json=register_body("w2"))).status_code == 200
    # The SDK without a certificate gives up with the orchestrator's reason.
    worker = doubling_worker("w3", orchestrator.url, token=WORKER_TOKEN, tls_ca=pki.ca)
    with pytest.raises(RuntimeError, match="client certificate is required"):
        await asyncio.wait_for(worker.serve(), timeout=20)


async def test_token_only_ignores_certificates(start_orchestrator: Any, pki: Pki) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), **pki.settings(worker_auth_mode="token-only"))
    async with worker_client(orchestrator.url, pki, "tls-worker-1", **{"X-Worker-ID": "tls-worker-1"}) as c:
        refused = await c.post("/_worker/workers/register", json=register_body("tls-worker-1"))
        assert refused.status_code == 401
        assert "X-Worker-Token" in refused.json()["error"]["message"]
    # The token decides, whatever the certificate's CN says.
    headers = {"X-Worker-ID": "another", "X-Worker-Token": WORKER_TOKEN}
    async with worker_client(orchestrator.url, pki, "tls-worker-1", **headers) as c:
        assert (await c.post("/_worker/workers/register", json=register_body("another"))).status_code == 200


async def test_mixed_takes_a_certificate_or_a_token(start_orchestrator: Any, pki: Pki) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), **pki.settings())
    async with worker_client(orchestrator.url, pki, "cert-worker") as by_cert:
        assert (
            await by_cert.post("/_worker/workers/register", json=register_body("cert-worker"))
        ).status_code == 200
    headers = {"X-Worker-ID": "someone-else", "X-Worker-Token": WORKER_TOKEN}
    async with worker_client(orchestrator.url, pki, "cert-worker", **headers) as both:
        # A certificate wins over a token: it cannot speak for another worker.
        assert (
            await both.post("/_worker/workers/register", json=register_body("someone-else"))
        ).status_code == 403
    worker = doubling_worker("token-worker", orchestrator.url, token=WORKER_TOKEN, tls_ca=pki.ca)
    running = run_in_background(worker)
    try:
        job = await orchestrator.engine.create_job("work", {"n": 1})
        assert (await finished(orchestrator, job.job_id)).status == "finished"
    finally:
        await stop(worker, running)


async def test_a_required_client_certificate_is_checked_in_the_handshake(
    start_orchestrator: Any, pki: Pki
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), **pki.settings(tls_require_client_cert=True))
    async with httpx.AsyncClient(base_url=orchestrator.url, verify=pki.context(), timeout=10) as bare:
        with pytest.raises(httpx.TransportError):
            await bare.get("/_public/status")
    async with httpx.AsyncClient(
        base_url=orchestrator.url, verify=pki.context("anyone"), timeout=10
    ) as holder:
        assert (await holder.get("/_public/status")).status_code == 200
    stranger = trustme.CA().issue_cert(common_name="w1")  # a certificate the orchestrator's CA never signed
    foreign = pki.folder / "foreign.pem"
    stranger.private_key_and_cert_chain_pem.write_to_path(str(foreign))
    context = pki.context()
    context.load_cert_chain(str(foreign))
    async with httpx.AsyncClient(base_url=orchestrator.url, verify=context, timeout=10) as impostor:
        with pytest.raises(httpx.TransportError):
            await impostor.get("/_public/status")


# -- short-lived tokens -----------------------------------------------------------


async def test_short_lived_tokens_expire_and_work_on_every_instance(
    start_orchestrator: Any, database_url: str
) -> None:
    first = await start_orchestrator(work_blueprint(), instance_id="one", worker_token_ttl_seconds=2.0)
    second = await start_orchestrator(work_blueprint(), instance_id="two", worker_token_ttl_seconds=2.0)
    async with worker_client(
        first.url, None, **{"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "sts-1"}
    ) as c:
        answer = await c.post("/_worker/auth/token")
        assert answer.status_code == 200, answer.text
        issued = answer.json()
    assert issued["worker_id"] == "sts-1" and issued["expires_in"] == 2 and issued["refresh_token"] is None
    token = issued["access_token"]
    for orchestrator in (first, second):  # kept in PostgreSQL: any instance knows it
        async with worker_client(orchestrator.url, None, **{"X-Worker-Token": token}) as c:
            assert (await c.post("/_worker/workers/register", json=register_body("sts-1"))).status_code == 200
            again = await c.post("/_worker/auth/token")
            assert again.status_code == 403  # a short-lived token cannot mint another
            assert "cannot be exchanged" in again.json()["error"]["message"]
    async with worker_client(first.url, None, **{"X-Worker-Token": token, "X-Worker-ID": "sts-2"}) as c:
        other = await c.post("/_worker/workers/register", json=register_body("sts-2"))
        assert other.status_code == 401 and "'sts-1'" in other.json()["error"]["message"]
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch("SELECT token_sha256, worker_id FROM worker_tokens")
        assert [row["worker_id"] for row in stored] == ["sts-1"]
        assert token.encode() not in bytes(stored[0]["token_sha256"])  # only its digest is kept
        await asyncio.sleep(2.2)
        for orchestrator in (first, second):  # the one that cached it and the one that did not
            async with worker_client(orchestrator.url, None, **{"X-Worker-Token": token}) as c:
                expired = await c.post("/_worker/workers/register", json=register_body("sts-1"))
                assert expired.status_code == 401
                assert expired.json()["error"]["code"] == "UNAUTHORIZED"
                message = expired.json()["error"]["message"]
                assert "expired" in message and "POST /_worker/auth/token" in message
        # Retention: the watcher's housekeeping deletes expired tokens.
        watcher = first.engine.instance.watcher
        watcher._next_prune = 0.0
        await watcher.sweep()
        assert await conn.fetchval("SELECT count(*) FROM worker_tokens") == 0
    finally:
        await conn.close()


async def test_a_certificate_buys_short_lived_tokens_that_mtls_only_accepts(
    start_orchestrator: Any, pki: Pki
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), **pki.settings(worker_auth_mode="mtls-only"))
    async with worker_client(orchestrator.url, pki, "sts-cert") as holder:
        answer = await holder.post("/_worker/auth/token")
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
    # Without the certificate, the token issued for it is enough, even in mtls-only.
    async with worker_client(orchestrator.url, pki, **{"X-Worker-Token": token}) as bare:
        assert (
            await bare.post("/_worker/workers/register", json=register_body("sts-cert"))
        ).status_code == 200


async def test_the_sdk_exchanges_and_renews_short_lived_tokens(
    start_orchestrator: Any, database_url: str
) -> None:
    orchestrator = await start_orchestrator(work_blueprint(), worker_token_ttl_seconds=1.0)
    worker = doubling_worker("renewing", orchestrator.url, token=WORKER_TOKEN, token_exchange=True)
    running = run_in_background(worker)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 3:  # three lifetimes: renewed before each ends
            job = await orchestrator.engine.create_job("work", {"n": 2})
            assert (await finished(orchestrator, job.job_id)).status == "finished"
            await asyncio.sleep(0.3)
        assert await conn.fetchval("SELECT count(*) FROM worker_tokens WHERE worker_id = 'renewing'") >= 3
        # A token that expires before the worker expects it to (a laptop that slept through its
        # renewal): the next request is answered 401, and the SDK renews and sends it again.
        link = await wait_for(lambda: worker._link)
        async with link._renewing:  # not while a renewal is under way
            link._renew_at = float("inf")  # it no longer renews on its own
            before = await conn.fetchval("SELECT count(*) FROM worker_tokens")
        await asyncio.sleep(1.5)  # the token expires; the next poll is answered 401
        job = await orchestrator.engine.create_job("work", {"n": 3})
        assert (await finished(orchestrator, job.job_id)).state_history["answer"] == 6
        assert link._renew_at < float("inf")  # renewed again, which only a 401 makes it do now
        assert await conn.fetchval("SELECT count(*) FROM worker_tokens") > before
    finally:
        await conn.close()
        await stop(worker, running)


# -- workers.toml -----------------------------------------------------------------


async def test_a_workers_toml_with_descriptions_and_patterns(start_orchestrator: Any, tmp_path: Path) -> None:
    config = tmp_path / "workers.toml"
    config.write_text(
        "# Section name must be the same as WORKER_ID on the worker side\n"
        '[gpu-worker-01]\ntoken = "super-secret-token-for-gpu-01"\n'
        'description = "Primary GPU node for video rendering"\n\n'
        '["pattern:cpu-worker-*"]\ntoken = "cpu-fleet-token"\ndescription = "Every CPU worker"\n'
    )
    orchestrator = await start_orchestrator(work_blueprint(), workers_config_path=str(config))
    worker = doubling_worker("cpu-worker-7", orchestrator.url, token="cpu-fleet-token")  # signs with it
    running = run_in_background(worker)
    try:
        job = await orchestrator.engine.create_job("work", {"n": 4})
        done = await finished(orchestrator, job.job_id)
        assert done.status == "finished" and done.state_history["worker"] == "cpu-worker-7"
    finally:
        await stop(worker, running)
    for worker_id, token in (("cpu-worker-8", WORKER_TOKEN), ("gpu-worker-01", "cpu-fleet-token")):
        async with worker_client(
            orchestrator.url, None, **{"X-Worker-Token": token, "X-Worker-ID": worker_id}
        ) as c:
            assert (
                await c.post("/_worker/workers/register", json=register_body(worker_id))
            ).status_code == 401


# -- several processes ------------------------------------------------------------


def test_serve_processes_over_tls_with_a_certificate_worker(
    pki: Pki, database_url: str, spawn_worker: Any, tmp_path: Path
) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TLS_", "WORKER_"))}
    env.update(
        DATABASE_URL=database_url, CLIENT_TOKEN=CLIENT_TOKEN, GLOBAL_WORKER_TOKEN=WORKER_TOKEN,
        TLS_CERT_PATH=pki.server_cert, TLS_KEY_PATH=pki.server_key, TLS_CA_PATH=pki.ca,
        WORKER_AUTH_MODE="mtls-only", INSTANCE_ID="tls", LOG_LEVEL="WARNING",
    )  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    parent = subprocess.Popen(
        [sys.executable, "-m", "chronik", "serve", "tests.e2e.conftest:work_blueprint", "--host", "127.0.0.1",
         "--port", str(port), "--processes", "2"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, verify=pki.context(), headers=CLIENT, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert parent.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    if client.get("/_public/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "chronik serve --processes 2 did not answer over HTTPS"
                time.sleep(0.2)
            # A chronik worker process with its certificate from the environment, as Avtomatika's reads it.
            certificate = pki.client_cert("proc-worker")
            spawn_worker(
                url, WORKER_ID="proc-worker", WORKER_TOKEN="", TLS_CERT_PATH=certificate, TLS_CA_PATH=pki.ca
            )
            jobs = [
                client.post("/api/v1/jobs/work", json={"initial_data": {"n": n}}).json()["job_id"]
                for n in range(6)
            ]
            deadline = time.monotonic() + 60
            while True:
                states = [client.get(f"/api/v1/jobs/{job_id}").json() for job_id in jobs]
                if all(state["status"] == "finished" for state in states):
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.3)
            assert {state["state_history"]["worker"] for state in states} == {"proc-worker"}
    finally:
        parent.send_signal(signal.SIGTERM)
        try:
            parent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            parent.kill()
            parent.wait()
