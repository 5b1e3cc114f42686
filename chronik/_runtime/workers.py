"""The orchestrator's side of the worker protocol: register, heartbeat, poll, result, progress.

Task ids on the wire name one attempt: ``<task uuid>:<attempt>``. A worker may
send the same result many times (its SDK retries on any error). A result is
settled optimistically: it appends at the version of the job it read, so of two
racing copies one wins and the other decides again, finds the attempt settled,
and is answered ``ignored``; no repeat is ever refused.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import structlog

from chronik.adapters.postgres import tasks, workers
from chronik.adapters.postgres.listener import Signal
from chronik.adapters.telemetry.tracing import job_span
from chronik.core.errors import InvalidInput, TaskNotFound, TaskNotHeld, VersionConflict, WorkerNotFound
from chronik.core.events import ErrorInfo, FilesStored, TaskCompleted, TaskFailed
from chronik.core.retry import RetryPolicy
from chronik.core.state import JobState
from chronik.core.tasks import TaskResult, decide_task_result

from .store import JobStore

__all__ = ["ResultAnswer", "WorkerService", "parse_task_id", "wire_task_id"]

log = structlog.get_logger("chronik.workers")

_RECHECK_SECONDS = 2.0
"""Idle polls look again this often: a retry that becomes due sends no notification."""

_MAX_SETTLE_ATTEMPTS = 10


class ResultAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The answer to a result: ``accepted``, or ``ignored`` with the reason."""

    status: str
    reason: str | None = None
    message: str | None = None


def wire_task_id(task_id: UUID, attempt: int) -> str:
    """The id of one attempt, as workers see it."""
    return f"{task_id}:{attempt}"


def parse_task_id(raw: str) -> tuple[UUID, int]:
    """Split a wire task id into the task and the attempt."""
    task_part, sep, attempt_part = raw.partition(":")
    try:
        task_id = UUID(task_part)
        attempt = int(attempt_part) if sep else 0
    except ValueError:
        raise InvalidInput(
            f"task_id {raw!r} is not a task id of this orchestrator (<uuid>:<attempt>)"
        ) from None
    if not 1 <= attempt < 2**31:
        raise InvalidInput(f"task_id {raw!r} has no valid attempt number (<uuid>:<attempt>, attempt from 1)")
    return task_id, attempt


class WorkerService:
    """Everything the worker routes do, over the job store."""

    def __init__(
        self,
        store: JobStore,
        *,
        tasks_signal: Signal,
        lease_seconds: float,
        max_poll_seconds: float,
        policy: RetryPolicy,
        instance: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._signal = tasks_signal
        self._lease = lease_seconds
        self._max_poll = max_poll_seconds
        self._policy = policy
        self._instance = instance
        self._clock = clock
        self._rand = rand
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Answer every waiting long-poll now (with no task): the instance is shutting down.

        Without this, the HTTP server's graceful shutdown would wait out each open poll.
        """
        self._closing.set()

    async def register(
        self, worker_id: str, *, task_types: list[str], capacity: int, info: dict[str, Any]
    ) -> None:
        """Register (or re-register) a worker."""
        async with self._store.pool.acquire() as conn:
            await workers.register(conn, worker_id, task_types=task_types, capacity=capacity, info=info)
        log.info("worker_registered", worker_id=worker_id, task_types=task_types)

    async def heartbeat(self, worker_id: str, running: list[str] | None = None) -> list[str]:
        """Record that ``worker_id`` is alive and extend its leases; return the attempts it must stop.

        ``running`` is the worker's own list of the attempts it runs (``current_tasks``):
        only those leases are extended, so the attempts of an earlier life of a worker
        that restarted under the same id lapse. A repeated or out-of-order heartbeat
        changes nothing more. Without the list, every lease it holds is extended.
        """
        held = None if running is None else [parsed for raw in running if (parsed := _parse_or_none(raw))]
        async with self._store.pool.acquire() as conn:
            if not await workers.heartbeat(conn, worker_id):
                raise WorkerNotFound(f"Worker not found: {worker_id!r} is not registered; register again")
            await tasks.extend_leases(conn, worker_id, self._lease, held)
            return [wire_task_id(t, a) for t, a in await tasks.cancelled_of_worker(conn, worker_id)]

    async def next_task(
        self,
        worker_id: str,
        task_types: list[str],
        wait_seconds: float,
        *,
        gone: asyncio.Event | None = None,
    ) -> dict[str, Any] | None:
        """Lease the best queued task of ``task_types``, waiting up to ``wait_seconds`` for one.

        The wait ends as soon as a task is queued: the LISTEN connection of this
        instance fires the tasks signal, which wakes every waiting poll at once.
        ``gone`` is set when the worker hung up: a poll of a dead worker must not
        take a task that would then wait out a whole lease.
        """
        if not task_types:
            return None
        gone = gone or asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(wait_seconds, self._max_poll))
        while not gone.is_set() and not self._closing.is_set():
            woken = self._signal.current()
            async with self._store.pool.acquire() as conn:
                claimed = await tasks.claim(
                    conn, worker_id=worker_id, task_types=task_types, limit=1, lease_seconds=self._lease
                )
            if claimed:
                return _payload(claimed[0])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            waiters = [asyncio.ensure_future(event.wait()) for event in (woken, gone, self._closing)]
            try:
                await asyncio.wait(
                    waiters, timeout=min(remaining, _RECHECK_SECONDS), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return None

    async def submit_result(
        self,
        worker_id: str,
        raw_task_id: str,
        *,
        status: str,
        data: Any,
        error: ErrorInfo | None,
        files: tuple[str, ...] = (),
    ) -> ResultAnswer:
        """Settle a worker's result; repeats and late results are answered ``ignored``.

        Raises ``TaskNotFound`` for a task this orchestrator never dispatched and
        ``TaskNotHeld`` for one this worker never held.
        """
        task_id, attempt = parse_task_id(raw_task_id)
        for tries in range(_MAX_SETTLE_ATTEMPTS):
            try:
                async with self._store.pool.acquire() as conn:
                    held = await tasks.find(conn, task_id)
                    if tries == 0 and not (held is not None and held.fan_out):
                        return await self._settle(
                            conn, held, worker_id, task_id, attempt, status, data, error, files
                        )
                    # Results of one fan-out arrive together, and another writer moved the job
                    # first: queue behind the others on the job's row instead of racing again.
                    # The wait must not cost the attempt its lease (its worker no longer renews it).
                    await tasks.extend_leases(conn, worker_id, self._lease, [(task_id, attempt)])
                    async with conn.transaction():
                        held = await tasks.find(conn, task_id, lock=True)
                        return await self._settle(
                            conn, held, worker_id, task_id, attempt, status, data, error, files
                        )
            except VersionConflict:
                continue  # settle against the job's new state
        raise VersionConflict(f"task {raw_task_id} could not be settled: its job kept moving")

    async def _settle(
        self,
        conn: Any,
        held: tasks.HeldTask | None,
        worker_id: str,
        task_id: UUID,
        attempt: int,
        status: str,
        data: Any,
        error: ErrorInfo | None,
        files: tuple[str, ...] = (),
    ) -> ResultAnswer:
        job_id = held.job_id if held is not None else await tasks.find_dispatching_job(conn, task_id)
        if job_id is None:
            raise TaskNotFound(f"no task has the id {task_id}")
        if held is not None and (held.attempt, held.worker_id) == (attempt, worker_id):
            if held.status == "cancelled":
                # The watcher removes the row when its lease runs out; repeats meet it until then.
                return ResultAnswer(status="ignored", reason="job_cancelled", message="the job was cancelled")
            if held.status == "leased" and held.job is not None:
                await self._decide(
                    conn, held.job, task_id, attempt, worker_id, status, data, error, held, files
                )
                return ResultAnswer(status="accepted")
        answered, lost = await tasks.attempt_history(conn, job_id, task_id, attempt, worker_id)
        if answered:
            return ResultAnswer(status="ignored", reason="duplicate", message="this result was already taken")
        if not lost:
            raise TaskNotHeld(f"task {task_id} attempt {attempt} is not held by worker {worker_id!r}")
        # A late result of an attempt this worker lost: recorded while the job lives, never applied.
        state = await self._store.load(job_id, conn=conn)
        if state is not None:
            await self._decide(conn, state, task_id, attempt, worker_id, status, data, error, None, files)
        return ResultAnswer(
            status="ignored", reason="stale_task", message="a later attempt superseded this one"
        )

    async def _decide(
        self,
        conn: Any,
        state: JobState,
        task_id: UUID,
        attempt: int,
        worker_id: str,
        status: str,
        data: Any,
        error: ErrorInfo | None,
        held: tasks.HeldTask | None,
        files: tuple[str, ...] = (),
    ) -> None:
        result = TaskResult(
            task_id=task_id,
            attempt=attempt,
            worker_id=worker_id,
            status=status,
            data=data,
            error=error,
            claimed_at=held.claimed_at if held is not None else None,
        )
        attributes = {
            "chronik.job_id": str(state.job_id),
            "chronik.task_id": str(task_id),
            "chronik.attempt": attempt,
            "chronik.worker_id": worker_id,
            "chronik.status": status,
        }
        with job_span("chronik.task.result", state.traceparent, attributes):
            events = decide_task_result(state, result, self._clock(), policy=self._policy, rand=self._rand())
            prefix = f"jobs/{state.job_id}/"
            foreign = [key for key in files if not key.startswith(prefix)]
            if foreign:
                # Checked against the task's own job, whatever job_id the worker's message names.
                raise InvalidInput(f"files {foreign[:3]!r} are not in the job's folder {prefix!r}")
            if files and any(isinstance(event, TaskCompleted | TaskFailed) for event in events):
                # What the worker stored in the job's folder is recorded with its result.
                events = (FilesStored(at=events[0].at, keys=files, by=worker_id), *events)
            if events:
                # One statement, outside any transaction: a conflict is retried by submit_result.
                await self._store.commit(
                    state, events, meta={"instance": self._instance}, conn=conn, savepoint=False
                )

    async def report_progress(
        self, worker_id: str, raw_task_id: str, *, progress: float | None, message: str
    ) -> list[str]:
        """Record progress of an attempt the worker holds (extending its lease); return attempts to stop."""
        task_id, attempt = parse_task_id(raw_task_id)
        async with self._store.pool.acquire() as conn:
            status = await tasks.record_progress(
                conn,
                task_id,
                attempt,
                worker_id,
                progress=progress,
                message=message,
                lease_seconds=self._lease,
            )
        if status is None:
            raise TaskNotHeld(f"task {task_id} attempt {attempt} is not held by worker {worker_id!r}")
        return [wire_task_id(task_id, attempt)] if status == "cancelled" else []


def _parse_or_none(raw: str) -> tuple[UUID, int] | None:
    try:
        return parse_task_id(raw)
    except InvalidInput:
        return None  # an attempt of another orchestrator, or of nobody: not ours to extend


def _payload(task: tasks.ClaimedTask) -> dict[str, Any]:
    # Types matter to Avtomatika's worker: ids are strings, times are integer unix seconds.
    payload: dict[str, Any] = {
        "job_id": str(task.job_id),
        "task_id": wire_task_id(task.task_id, task.attempt),
        "type": task.task_type,
        "params": task.params,
        "priority": int(task.priority),
        "timestamp": int(time.time()),
        "metadata": {
            "attempt": task.attempt,
            **({"traceparent": task.traceparent} if task.traceparent else {}),
        },
    }
    if task.deadline_at is not None:
        payload["deadline"] = int(task.deadline_at.timestamp())
    return payload
