"""Avtomatika 1.0b30 orchestrator for the benchmark, with one blueprint: "flow".

Run it with the orchestrator venv that ``setup.sh`` creates::

    bench/.venvs/avtomatika/bin/python bench/avtomatika/orchestrator.py

The flow
--------
``POST /api/v1/jobs/flow`` with ``{"initial_data": {"n": <int>}}`` and header
``X-Client-Token: $CLIENT_TOKEN`` answers ``202 {"status": "accepted", "job_id": ...}``.
The start state dispatches one task of type ``echo`` with params ``{"n": n}``.
On ``success`` the job moves to the end state ``finished``. Avtomatika gives a job
whose end state is named ``finished`` the status ``finished``. On ``failure`` it
moves to ``failed``, and that end state gives the status ``failed``.
``GET /api/v1/jobs/{job_id}`` (same header) returns ``{"id", "status", ...}``.

Readiness
---------
* ``GET /_public/status`` answers ``200 {"status": "ok"}`` once the HTTP server
  listens. aiohttp runs the startup hooks (Redis ping, workers.toml and
  clients.toml loading, background loops) before it binds the port.
* Jobs can only be dispatched once a worker has registered. Before that, a job
  fails at once with "No suitable workers". Also wait until
  ``GET /api/v1/workers`` (with ``X-Client-Token``) returns a non-empty JSON list.

Stop it with SIGTERM or SIGINT. It exits within AVT_SHUTDOWN_TIMEOUT (5 s). If a
worker long-poll is still open, aiohttp would otherwise wait for it, for up to 30 s.

Environment (all optional)
--------------------------
PORT                 HTTP port (default 8082)
HOST                 bind address (default 127.0.0.1)
CLIENT_TOKEN         client token for X-Client-Token (default "bench-client-token")
REDIS_HOST/PORT/DB   Redis (default 127.0.0.1 / 6379 / 5). A dedicated DB number.
REDIS_MAX_CONNECTIONS  the Redis client's pool size (default 1000; see below)
AVT_FLUSH_REDIS      "1" (default) runs FLUSHDB on REDIS_DB at start, so runs are
                     independent. "0" keeps the data.
WORKERS_CONFIG_PATH  an existing workers.toml to use as-is. If unset, one is
                     written to AVT_RUNTIME_DIR from the next two variables.
WORKER_TOKEN         token of every generated worker entry (default "bench-worker-token")
WORKER_IDS           comma-separated worker ids for the generated workers.toml
                     (default avt-worker-1 .. avt-worker-$WORKER_COUNT)
WORKER_COUNT         used only for the default WORKER_IDS (default 16)
CLIENTS_CONFIG_PATH  an existing clients.toml to use as-is. If unset, one is written
                     with CLIENT_TOKEN and a quota of AVT_CLIENT_QUOTA requests.
AVT_CLIENT_QUOTA     quota for the generated clients.toml (default 1_000_000_000)
AVT_RUNTIME_DIR      where the generated toml files go (default /tmp/avt-bench-$PORT)
AVT_DISPATCH_STRATEGY  the blueprint's dispatch_strategy (default "default"). With
                     several workers "round_robin" or "least_connections" spread
                     the tasks. With "default" one worker gets them all and the
                     others only steal work.
AVT_SHUTDOWN_TIMEOUT seconds allowed for a graceful stop, then the process exits (default 5)
AVT_UVLOOP           "1" (default) runs the event loop on uvloop, "0" the stock asyncio
                     loop. The orchestrator is CPU-bound on one core. uvloop gave
                     about 10-15% more jobs/s here and does not change behaviour.
LOG_LEVEL            default WARNING. LOG_FORMAT default text.

You can also set any other Avtomatika variable (see avtomatika/config.py), for
example RATE_LIMIT_*, WORKER_POLL_TIMEOUT_SECONDS, EXECUTOR_MAX_CONCURRENT_JOBS,
REDIS_STREAM_BLOCK_MS, HISTORY_DATABASE_URI, ENVIRONMENT. Setting
ORCHESTRATOR_SECRET_KEY in the environment also turns on HMAC signing of every
job state in Redis. That is a security feature and costs CPU. It is off by
default in development mode. Leave it unset for the default benchmark. If the
worker gets the same variable, it checks task signatures.

What differs from Avtomatika's defaults, and why
------------------------------------------------
* Rate limits raised from 100/min general, 60/min polls and 120/min heartbeats
  to 1e9 per 60 s window. The limiter stays on, so every request still pays
  its INCR+EXPIRE in Redis. The stock limits are per client IP + path (all load
  comes from 127.0.0.1, so job creation is capped at 100 per minute) and per
  worker + message type. A worker gets one task per poll, so 60 polls per
  minute would cap one busy worker at 1 task/s. A user benchmarking
  throughput would raise them.
* Per-worker tokens come from workers.toml. With only GLOBAL_WORKER_TOKEN, every
  worker request misses the per-worker token lookup and falls back to a
  SCAN over the whole Redis keyspace (find_worker_token's pattern lookup).
  This is Avtomatika's documented setup. GLOBAL_WORKER_TOKEN is set to a random
  value, so only the workers.toml tokens are accepted.
* The client comes from clients.toml with a large quota. The global CLIENT_TOKEN
  fallback would otherwise give it a quota of 1,000,000 requests, and that runs
  out during long runs because every status poll uses quota. Quota checking stays on.
* Logging is text at WARNING. The engine logs several INFO lines per job. The
  root logger is set to LOG_LEVEL too. Avtomatika leaves it at DEBUG, so
  aiohttp's per-request access log and redis-py's DEBUG lines would still go out.
* API_HOST is 127.0.0.1 (the default is 0.0.0.0).
* The event loop is uvloop (AVT_UVLOOP=1).
* The Redis client's pool holds up to 1000 connections (REDIS_MAX_CONNECTIONS).
  Avtomatika leaves making the client to its user, and redis-py 8.1 (the version
  avtomatika[redis] pins) allows 100 by default and then fails the command
  ("Too many connections") instead of waiting. With 64 polling clients, the
  worker's long-poll and the watcher re-dispatching a batch of jobs at once, that
  limit was hit, and status requests answered 500. Redis itself allows 10000 clients.
* For the benchmark's counts, one added middleware counts the HTTP requests by
  route group, served at ``GET /_bench/requests`` (see ``_count_requests``).
Nothing else changes. History storage is off, which is the default (no
HISTORY_DATABASE_URI). Telemetry is off because opentelemetry is not installed.

What you will see from the reference (its own behaviour, left as it is)
------------------------------------------------------------------------
* CRITICAL "REPLAY ATTACK DETECTED" / 403 "Duplicate message detected" on
  heartbeats every few seconds. The worker SDK sends byte-identical debounced
  heartbeats, and Avtomatika uses the signature as a nonce. Tasks are not affected.
* WARNING "Watcher: Job ... timed out" then "Received STALE result". On pickup,
  WorkerService writes the watch deadline as time.monotonic() + timeout, but the
  Watcher compares it with time.time(). So every job that is running when the
  watcher ticks (every 20 s) counts as timed out. It is re-dispatched, finishes on
  the retry, and the first result is ignored. Each tick hits a few jobs.
* Log lines show up twice. LogManager attaches the same handler to the
  "avtomatika" logger and to the root logger.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


PORT = int(_env("PORT", "8082"))
HOST = _env("HOST", "127.0.0.1")
CLIENT_TOKEN = _env("CLIENT_TOKEN", "bench-client-token")
REDIS_HOST = _env("REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(_env("REDIS_PORT", "6379"))
REDIS_DB = int(_env("REDIS_DB", "5"))
REDIS_MAX_CONNECTIONS = int(_env("REDIS_MAX_CONNECTIONS", "1000"))
FLUSH_REDIS = _env("AVT_FLUSH_REDIS", "1") == "1"
WORKER_TOKEN = _env("WORKER_TOKEN", "bench-worker-token")
WORKER_COUNT = int(_env("WORKER_COUNT", "16"))
WORKER_IDS = [
    w.strip()
    for w in _env("WORKER_IDS", ",".join(f"avt-worker-{i}" for i in range(1, WORKER_COUNT + 1))).split(",")
    if w.strip()
]
CLIENT_QUOTA = int(_env("AVT_CLIENT_QUOTA", "1000000000"))
RUNTIME_DIR = Path(_env("AVT_RUNTIME_DIR", f"/tmp/avt-bench-{PORT}"))
DISPATCH_STRATEGY = _env("AVT_DISPATCH_STRATEGY", "default")
USE_UVLOOP = _env("AVT_UVLOOP", "1") == "1"

# Avtomatika's Config reads os.environ in its constructor, so set the defaults
# first. A value the caller already set wins.
_RAISED_LIMIT = "1000000000"
for _key, _value in {
    "API_HOST": HOST,
    "API_PORT": str(PORT),
    "CLIENT_TOKEN": CLIENT_TOKEN,
    "GLOBAL_WORKER_TOKEN": secrets.token_hex(24),
    "REDIS_HOST": REDIS_HOST,
    "REDIS_PORT": str(REDIS_PORT),
    "REDIS_DB": str(REDIS_DB),
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "text",
    # Raised from 100/60/120 per 60 s; the limiter itself stays on.
    "RATE_LIMITING_ENABLED": "true",
    "RATE_LIMIT_LIMIT": _RAISED_LIMIT,
    "RATE_LIMIT_POLL_LIMIT": _RAISED_LIMIT,
    "RATE_LIMIT_HEARTBEAT_LIMIT": _RAISED_LIMIT,
}.items():
    if not os.environ.get(_key):
        os.environ[_key] = _value

from aiohttp import web  # noqa: E402
from avtomatika import Blueprint, OrchestratorEngine  # noqa: E402
from avtomatika.config import Config  # noqa: E402
from avtomatika.storage.redis import RedisStorage  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

# --------------------------------------------------------------------------
# The blueprint. Avtomatika reads the handler source (AST) to find the
# transitions, so the state names must be literal constants here.
# --------------------------------------------------------------------------
bp = Blueprint(name="flow", api_version="v1", api_endpoint="/jobs/flow")


@bp.handler(is_start=True)
async def start(initial_data, actions):
    actions.dispatch_task(
        task_type="echo",
        params={"n": initial_data.get("n")},
        transitions={"success": "finished", "failure": "failed"},
        dispatch_strategy=DISPATCH_STRATEGY,
    )


@bp.handler(is_end=True)
async def finished(actions):
    """End state. Its name makes the job's status "finished"."""


@bp.handler(is_end=True)
async def failed(actions):
    """End state for a failed task (job status "failed")."""


# --------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_configs(config: Config) -> None:
    if not config.WORKERS_CONFIG_PATH or not config.CLIENTS_CONFIG_PATH:
        RUNTIME_DIR.mkdir(parents=True, exist_ok=True)
    if not config.WORKERS_CONFIG_PATH:
        path = RUNTIME_DIR / "workers.toml"
        lines = []
        for wid in WORKER_IDS:
            lines += [f"[{_toml_str(wid)}]", f"token = {_toml_str(WORKER_TOKEN)}", ""]
        path.write_text("\n".join(lines))
        config.WORKERS_CONFIG_PATH = str(path)
    elif not Path(config.WORKERS_CONFIG_PATH).exists():
        sys.exit(f"orchestrator: WORKERS_CONFIG_PATH={config.WORKERS_CONFIG_PATH} does not exist")
    if not config.CLIENTS_CONFIG_PATH:
        path = RUNTIME_DIR / "clients.toml"
        path.write_text(
            f'[bench]\ntoken = {_toml_str(config.CLIENT_TOKEN)}\nplan = "bench"\n'
            f"monthly_attempts = {CLIENT_QUOTA}\n"
        )
        config.CLIENTS_CONFIG_PATH = str(path)


async def main() -> None:
    config = Config()
    _write_configs(config)

    redis = Redis(
        host=config.REDIS_HOST,
        port=config.REDIS_PORT,
        db=config.REDIS_DB,
        max_connections=REDIS_MAX_CONNECTIONS,
    )
    try:
        await redis.ping()
    except Exception as exc:
        sys.exit(
            f"orchestrator: Redis at {config.REDIS_HOST}:{config.REDIS_PORT} is not reachable ({exc}).\n"
            "Start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
            '--save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log'
        )
    if FLUSH_REDIS:
        await redis.flushdb()

    engine = OrchestratorEngine(RedisStorage(redis), config)
    _count_requests(engine.app)
    # Avtomatika's LogManager sets LOG_LEVEL on the "avtomatika" logger but puts
    # the root logger at DEBUG. Then aiohttp writes an access-log line for every
    # request and redis-py logs its DEBUG lines. Make LOG_LEVEL apply to them too.
    logging.getLogger().setLevel(config.LOG_LEVEL)
    engine.register_blueprint(bp)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    await engine.start()
    print(
        f"avtomatika orchestrator listening on http://{config.API_HOST}:{config.API_PORT} "
        f"(redis db {config.REDIS_DB}, workers.toml {config.WORKERS_CONFIG_PATH})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await _shutdown(engine)
        await redis.aclose()


def _count_requests(app: web.Application) -> None:
    """Count every HTTP request by route group; ``GET /_bench/requests`` answers the counts.

    Added by the benchmark (bench/run.py reads it before and after a run), not part of
    Avtomatika: the outermost middleware, one dict lookup and one increment per request,
    as chronik's chronik_http_requests_total. The worker's requests are the ``worker`` group.
    """
    counts = {"client": 0, "worker": 0, "public": 0, "other": 0}
    groups = {"api": "client", "_worker": "worker", "_public": "public"}

    @web.middleware
    async def count(request: web.Request, handler):
        counts[groups.get(request.path.split("/", 2)[1], "other")] += 1
        return await handler(request)

    async def report(_request: web.Request) -> web.Response:
        return web.json_response(counts)

    app.middlewares.insert(0, count)
    app.router.add_get("/_bench/requests", report)


async def _shutdown(engine: OrchestratorEngine) -> None:
    """Stop the engine, with an upper bound on the time it takes.

    Works around an Avtomatika 1.0b30 bug. on_startup creates new JobExecutor,
    Watcher, HealthChecker, Scheduler and ReputationCalculator instances and
    runs those. on_shutdown calls stop() on the instances made in __init__,
    which never ran. The running loops keep ``_running`` True. The executor's
    dequeue also swallows CancelledError. So engine.stop() never returns. Here
    the running instances are stopped first. After AVT_SHUTDOWN_TIMEOUT seconds
    (default 5) the process stops waiting and exits (a worker long-poll can hold
    aiohttp's shutdown for up to WORKER_POLL_TIMEOUT_SECONDS).
    """
    from avtomatika.app_keys import (
        EXECUTOR_KEY,
        HEALTH_CHECKER_KEY,
        REPUTATION_CALCULATOR_KEY,
        SCHEDULER_KEY,
        WATCHER_KEY,
    )

    for key in (EXECUTOR_KEY, WATCHER_KEY, HEALTH_CHECKER_KEY, SCHEDULER_KEY, REPUTATION_CALCULATOR_KEY):
        component = engine.app.get(key)
        if component is not None and hasattr(component, "stop"):
            component.stop()
    try:
        await asyncio.wait_for(engine.stop(), float(_env("AVT_SHUTDOWN_TIMEOUT", "5")))
    except TimeoutError:
        print("orchestrator: shutdown timed out; exiting anyway", file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    if USE_UVLOOP:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
