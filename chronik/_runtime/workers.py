"""The orchestrator's side of the worker protocol: register, heartbeat, poll, result, progress.

It takes and answers the messages of ``core/wire.py``, with task ids already parsed
into ``TaskRef`` where the message came in. A worker may send the same result many
times (its SDK retries on any error). A result is settled optimistically: it
appends at the version of the job it read, so of two racing copies one wins and
the other decides again, finds the attempt settled, and is answered ``ignored``;
no repeat is ever refused.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from msgspec import UNSET

from chronik.adapters.postgres import tasks, workers
from chronik.adapters.postgres.database import Connection, savepoint
from chronik.adapters.postgres.listener import Signal
from chronik.adapters.telemetry.tracing import job_span
from chronik.core.errors import ChronikError, InvalidInput, TaskNotFound, TaskNotHeld, WorkerNotFound
from chronik.core.events import AnyEvent, FilesStored, TaskCompleted, TaskFailed
from chronik.core.evolve import fold
from chronik.core.retry import RetryPolicy
from chronik.core.state import JobState
from chronik.core.tasks import TaskResult, decide_task_result
from chronik.core.wire import (
    EventAnswer,
    HeartbeatAnswer,
    ProgressReport,
    RegisterAnswer,
    RegisterBody,
    ReportedResult,
    ResultAnswer,
    TaskMessage,
    TaskMetadata,
    TaskRef,
    TokenAnswer,
    TokenHolder,
)

from .commands import retry_on_conflict
from .loops import wait_any
from .store import JobStore
from .worker_tokens import WorkerTokens

__all__ = ["WorkerService"]

log = structlog.get_logger("chronik.workers")

_RECHECK_SECONDS = 15.0
"""Idle polls look again this often: a retry that becomes due sends no notification. Each look is a
query per waiting poll, a good part of an idle worker's cost; in a queue with other traffic the
notifications wake the polls, and they find due retries much sooner."""


_SETTLING_AT_ONCE = 4
"""Results of one batch settled at the same time (each holds a connection while it settles)."""

_CANCELLED = ResultAnswer(status="ignored", reason="job_cancelled", message="the job was cancelled")
"""The answer to a result of an attempt of a cancelled job."""


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
        self._tokens = WorkerTokens(store.database)

    def close(self) -> None:
        """Answer every waiting long-poll now (with no task): the instance is shutting down.

        Without this, the HTTP server's graceful shutdown would wait out each open poll.
        """
        self._closing.set()

    async def issue_token(self, worker_id: str, *, by_certificate: bool, seconds: float) -> TokenAnswer:
        """A short-lived token for the authenticated ``worker_id``, good on every instance for ``seconds``."""
        return await self._tokens.issue(worker_id, by_certificate=by_certificate, seconds=seconds)

    async def verify_token(self, token: str) -> TokenHolder | None:
        """Whom a short-lived token was issued to; None when it expired or was never issued."""
        return await self._tokens.verify(token)

    async def register(self, registration: RegisterBody) -> RegisterAnswer:
        """Register (or re-register) a worker with the task types it runs."""
        task_types = registration.all_task_types()
        async with self._store.database.connection() as conn:
            await workers.register(
                conn,
                registration.worker_id,
                task_types=task_types,
                capacity=registration.capacity,
                info=registration.info(),
            )
        log.info("worker_registered", worker_id=registration.worker_id, task_types=task_types)
        return RegisterAnswer()

    async def heartbeat(self, worker_id: str, running: list[TaskRef] | None = None) -> HeartbeatAnswer:
        """Record that ``worker_id`` is alive and extend its leases; answer the attempts it must stop.

        ``running`` is the worker's own list of the attempts it runs (``current_tasks``):
        only those leases are extended, so the attempts of an earlier life of a worker
        that restarted under the same id lapse. A repeated or out-of-order heartbeat
        changes nothing more. Without the list, every lease it holds is extended.
        """
        held = None if running is None else [(ref.task_id, ref.attempt) for ref in running]
        async with self._store.database.connection() as conn:
            if not await workers.heartbeat(conn, worker_id):
                raise WorkerNotFound(f"Worker not found: {worker_id!r} is not registered; register again")
            await tasks.extend_leases(conn, worker_id, self._lease, held)
            cancelled = await tasks.cancelled_of_worker(conn, worker_id)
        return HeartbeatAnswer(cancel_task_ids=[str(TaskRef(task, attempt)) for task, attempt in cancelled])

    async def next_task(
        self,
        worker_id: str,
        task_types: list[str],
        wait_seconds: float,
        *,
        gone: asyncio.Event | None = None,
    ) -> TaskMessage | None:
        """Lease the best queued task of ``task_types``, waiting up to ``wait_seconds`` for one.

        The wait ends as soon as a task is queued: the LISTEN connection of this
        instance fires the tasks signal, which wakes every waiting poll at once.
        ``gone`` is set when the worker hung up: a poll of a dead worker must not
        take a task that would then wait out a whole lease.
        """
        taken = await self.next_tasks(worker_id, task_types, wait_seconds, limit=1, gone=gone)
        return taken[0] if taken else None

    async def next_tasks(
        self,
        worker_id: str,
        task_types: list[str],
        wait_seconds: float,
        *,
        limit: int,
        gone: asyncio.Event | None = None,
    ) -> list[TaskMessage]:
        """Lease up to ``limit`` queued tasks of ``task_types`` in one statement, as ``next_task`` waits.

        The answer comes as soon as there is at least one: a worker with free slots
        is never kept waiting for a full batch.
        """
        if not task_types:
            return []
        gone = gone or asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(wait_seconds, self._max_poll))
        while not gone.is_set() and not self._closing.is_set():
            woken = self._signal.current()
            async with self._store.database.connection() as conn:
                claimed = await tasks.claim(
                    conn, worker_id=worker_id, task_types=task_types, limit=limit, lease_seconds=self._lease
                )
            if claimed:
                return [_task_message(task) for task in claimed]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await wait_any((woken, gone, self._closing), seconds=min(remaining, _RECHECK_SECONDS))
        return []

    async def submit_result(self, result: ReportedResult) -> ResultAnswer:
        """Settle a worker's result; repeats and late results are answered ``ignored``.

        Raises ``TaskNotFound`` for a task this orchestrator never dispatched and
        ``TaskNotHeld`` for one this worker never held.
        """
        ref = result.ref

        async def settle(tries: int) -> ResultAnswer:
            async with self._store.database.connection() as conn:
                held = await tasks.find(conn, ref.task_id)
                if tries == 0 and not (held is not None and held.fan_out):
                    return await self._settle(conn, held, result)
                # Results of one fan-out arrive together, and another writer moved the job
                # first: queue behind the others on the job's row instead of racing again.
                # The wait must not cost the attempt its lease (its worker no longer renews it),
                # so the lease is extended first, outside the transaction that waits.
                await tasks.extend_leases(conn, result.worker_id, self._lease, [(ref.task_id, ref.attempt)])
                async with savepoint(conn):  # conn is in no transaction: this one is its own
                    held = await tasks.find(conn, ref.task_id, lock=True)
                    return await self._settle(conn, held, result)

        return await retry_on_conflict(settle, what=f"the job of task {ref}")

    async def _settle(
        self, conn: Connection, held: tasks.HeldTask | None, result: ReportedResult
    ) -> ResultAnswer:
        ref, worker_id = result.ref, result.worker_id
        job_id = held.job_id if held is not None else await tasks.find_dispatching_job(conn, ref.task_id)
        if job_id is None:
            raise TaskNotFound(f"no task has the id {ref.task_id}")
        if held is not None and (held.attempt, held.worker_id) == (ref.attempt, worker_id):
            if held.status == "cancelled":
                # The watcher removes the row when its lease runs out; repeats meet it until then.
                return _CANCELLED
            if held.status == "leased" and held.job is not None:
                await self._decide(conn, held.job, result, held)
                return ResultAnswer(status="accepted")
        answered, lost = await tasks.attempt_history(conn, job_id, ref.task_id, ref.attempt, worker_id)
        if answered:
            return ResultAnswer(status="ignored", reason="duplicate", message="this result was already taken")
        if not lost:
            raise TaskNotHeld(f"task {ref.task_id} attempt {ref.attempt} is not held by worker {worker_id!r}")
        # A late result of an attempt this worker lost: recorded while the job lives, never applied.
        state = await self._store.load(job_id, conn=conn)
        if state is not None:
            await self._decide(conn, state, result, None)
        return ResultAnswer(
            status="ignored", reason="stale_task", message="a later attempt superseded this one"
        )

    async def submit_results(self, results: Sequence[ReportedResult]) -> list[ResultAnswer | ChronikError]:
        """Settle a batch of results; each gets the answer ``submit_result`` would give, or its error.

        Results of one job (the branches of a fan-out, typically) settle together: one
        transaction locks the job, decides each in turn on the state the previous one
        left, and appends all their events at once, instead of queueing one by one on
        the job's row. Any other result, and any the batch cannot settle that way (a
        repeat, a late or foreign one), settles as ``submit_result`` settles it.
        """
        answers: list[ResultAnswer | ChronikError | None] = [None] * len(results)
        async with self._store.database.connection() as conn:
            rows = await tasks.find_many(conn, sorted({result.ref.task_id for result in results}))
        job_of = {row.task_id: row.job_id for row in rows}
        by_job: dict[UUID, list[int]] = {}
        for index, result in enumerate(results):
            job_id = job_of.get(result.ref.task_id)
            if job_id is not None:
                by_job.setdefault(job_id, []).append(index)
        # Different jobs settle side by side, a few at a time: one batch must not take the pool.
        at_once = asyncio.Semaphore(_SETTLING_AT_ONCE)

        async def together(job_id: UUID, indexes: list[int]) -> None:
            async with at_once:
                try:
                    settled = await self._settle_together(job_id, [results[i] for i in indexes])
                except ChronikError:
                    # One bad entry (a value PostgreSQL refuses, a job that kept moving) must not
                    # cost the others: each is settled alone, and only the bad one is refused.
                    return
            for index, answer in zip(indexes, settled, strict=True):
                answers[index] = answer

        async def alone(index: int) -> None:
            async with at_once:
                try:
                    answers[index] = await self.submit_result(results[index])
                except ChronikError as exc:
                    answers[index] = exc

        await asyncio.gather(*(together(job, indexes) for job, indexes in by_job.items() if len(indexes) > 1))
        await asyncio.gather(*(alone(index) for index, answer in enumerate(answers) if answer is None))
        return [answer for answer in answers if answer is not None]

    async def _settle_together(
        self, job_id: UUID, results: list[ReportedResult]
    ) -> list[ResultAnswer | ChronikError | None]:
        """Settle results of one job in one transaction; ``None`` for those to settle alone."""

        async def settle(_tries: int) -> list[ResultAnswer | ChronikError | None]:
            async with self._store.database.connection() as conn:
                # As for a single fan-out result: the lock may be waited for, and the wait must
                # not cost the attempts their leases, so they are extended first, outside it.
                for worker_id in {result.worker_id for result in results}:
                    running = [(r.ref.task_id, r.ref.attempt) for r in results if r.worker_id == worker_id]
                    await tasks.extend_leases(conn, worker_id, self._lease, running)
                async with savepoint(conn):  # conn is in no transaction: this one is its own
                    before = await tasks.lock_job(conn, job_id)
                    rows = {
                        row.task_id: row
                        for row in await tasks.find_many(conn, [r.ref.task_id for r in results])
                    }
                    answers: list[ResultAnswer | ChronikError | None] = []
                    events: list[AnyEvent] = []
                    state = before
                    for result in results:
                        held = rows.get(result.ref.task_id)
                        if (
                            state is None
                            or held is None
                            or held.job_id != job_id
                            or ((held.attempt, held.worker_id) != (result.ref.attempt, result.worker_id))
                        ):
                            answers.append(None)  # not (or no longer) this worker's attempt: alone
                        elif held.status == "cancelled":
                            answers.append(_CANCELLED)
                        elif held.status != "leased":
                            answers.append(None)
                        else:
                            del rows[result.ref.task_id]  # a copy later in the batch is a duplicate
                            try:
                                with self._span(state, result):
                                    decided = self._decided(state, result, held)
                            except ChronikError as exc:
                                answers.append(exc)
                                continue
                            state = fold(decided, state) if decided else state
                            events.extend(decided)
                            answers.append(ResultAnswer(status="accepted"))
                    if events and before is not None:
                        # The job's row is locked: no other writer can come between.
                        await self._store.commit(
                            before, events, meta={"instance": self._instance}, conn=conn, savepoint=False
                        )
                    return answers

        return await retry_on_conflict(settle, what=f"the job {job_id}")

    async def _decide(
        self, conn: Connection, state: JobState, result: ReportedResult, held: tasks.HeldTask | None
    ) -> None:
        with self._span(state, result):
            events = self._decided(state, result, held)
            if events:
                # One statement, outside any transaction: a conflict is retried by submit_result.
                await self._store.commit(
                    state, events, meta={"instance": self._instance}, conn=conn, savepoint=False
                )

    def _span(self, state: JobState, result: ReportedResult) -> AbstractContextManager[Any]:
        """The result's span, in the job's trace."""
        attributes = {
            "chronik.job_id": str(state.job_id),
            "chronik.task_id": str(result.ref.task_id),
            "chronik.attempt": result.ref.attempt,
            "chronik.worker_id": result.worker_id,
            "chronik.status": result.status,
        }
        return job_span("chronik.task.result", state.traceparent, attributes)

    def _decided(
        self, state: JobState, result: ReportedResult, held: tasks.HeldTask | None
    ) -> tuple[AnyEvent, ...]:
        """The events ``result`` leads to on ``state``; ``InvalidInput`` for files outside the job."""
        ref = result.ref
        decided = TaskResult(
            task_id=ref.task_id,
            attempt=ref.attempt,
            worker_id=result.worker_id,
            status=result.status,
            data=result.data,
            error=result.error,
            claimed_at=held.claimed_at if held is not None else None,
        )
        events = decide_task_result(state, decided, self._clock(), policy=self._policy, rand=self._rand())
        prefix = f"jobs/{state.job_id}/"
        foreign = [key for key in result.files if not key.startswith(prefix)]
        if foreign:
            # Checked against the task's own job, whatever job_id the worker's message names.
            raise InvalidInput(f"files {foreign[:3]!r} are not in the job's folder {prefix!r}")
        if result.files and any(isinstance(event, TaskCompleted | TaskFailed) for event in events):
            # What the worker stored in the job's folder is recorded with its result.
            events = (FilesStored(at=events[0].at, keys=result.files, by=result.worker_id), *events)
        return events

    async def report_progress(self, report: ProgressReport) -> EventAnswer:
        """Record progress of an attempt the worker holds (extending its lease); answer attempts to stop."""
        ref, worker_id = report.ref, report.worker_id
        async with self._store.database.connection() as conn:
            status = await tasks.record_progress(
                conn,
                ref.task_id,
                ref.attempt,
                worker_id,
                progress=report.progress,
                message=report.message,
                lease_seconds=self._lease,
            )
        if status is None:
            raise TaskNotHeld(f"task {ref.task_id} attempt {ref.attempt} is not held by worker {worker_id!r}")
        return EventAnswer(cancel_task_ids=[str(ref)] if status == "cancelled" else [])


def _task_message(task: tasks.ClaimedTask) -> TaskMessage:
    # Types matter to Avtomatika's worker: ids are strings, times are integer unix seconds.
    return TaskMessage(
        job_id=str(task.job_id),
        task_id=str(TaskRef(task.task_id, task.attempt)),
        type=task.task_type,
        params=task.params,
        priority=int(task.priority),
        timestamp=int(time.time()),
        metadata=TaskMetadata(attempt=task.attempt, traceparent=task.traceparent or UNSET),
        deadline=UNSET if task.deadline_at is None else int(task.deadline_at.timestamp()),
    )
