"""The step executor: claim due steps, run their handlers, append the outcomes.

The loop wakes on a notification, on a free slot, on its jittered poll, or on
stop, then drains what is due up to its free slots. No transaction is open
while a handler runs: the claim is a lease on the step row, committed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from uuid import UUID

import structlog

from chronik.adapters.postgres.listener import Signal
from chronik.adapters.postgres.steps import ClaimedStep
from chronik.adapters.s3 import TaskFiles
from chronik.adapters.telemetry.tracing import job_span
from chronik.core.actions import RunBlueprint
from chronik.core.blueprint import Blueprint
from chronik.core.deadlines import decide_due, needs_step, wakes_at
from chronik.core.decide import (
    HandlerOutcome,
    decide_child_ended,
    decide_create,
    decide_step,
    decide_transition_cap,
)
from chronik.core.errors import InvalidInput, VersionConflict
from chronik.core.events import AnyEvent, ChildStarted, ErrorInfo, FilesStored
from chronik.core.forks import only_recorded_since
from chronik.core.state import JobState, JobStatus

from .commands import MAX_ATTEMPTS
from .handlers import run_handler
from .input_check import check_child_input
from .loops import BUSY, log_failure, run_loop
from .store import JobStore

__all__ = ["StepExecutor"]

log = structlog.get_logger("chronik.executor")


class StepExecutor:
    """Runs handlers of due steps, at most ``max_concurrent`` at once in this instance."""

    def __init__(
        self,
        store: JobStore,
        blueprints: Mapping[str, Blueprint],
        *,
        wake: Signal,
        instance: str,
        max_concurrent: int,
        poll_interval: float,
        lease_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe_step: Callable[[str, float], None] | None = None,
        files: Callable[[str], TaskFiles] | None = None,
    ) -> None:
        self._observe_step = observe_step
        self._files = files
        self._store = store
        self._blueprints = blueprints
        self._wake = wake
        self._instance = instance
        self._max_concurrent = max_concurrent
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._running: dict[asyncio.Task[None], UUID] = {}
        self._slot_freed = asyncio.Event()
        self._timers_read: tuple[asyncio.Event | None, float | None] = (None, None)
        """The wake signal's event when the next timer was last read, and when that timer is due."""
        self._reserved = 0
        """Slots promised to commits that are taking a step for this instance (``reserve``)."""
        self._accepting = False

    @property
    def instance(self) -> str:
        """This instance's name: the holder of the steps it leases."""
        return self._instance

    @property
    def lease_seconds(self) -> float:
        """How long a step is this instance's before another may run it."""
        return self._lease_seconds

    def reserve(self) -> bool:
        """Promise a slot to a commit that takes its step here; ``False`` when all are taken."""
        if not self._accepting or len(self._running) + self._reserved >= self._max_concurrent:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a promised slot: the commit took no step."""
        self._reserved -= 1
        self._slot_freed.set()

    def run_held(self, step: ClaimedStep) -> None:
        """Run the handler of a step a commit took for this instance, in its promised slot."""
        self._reserved -= 1
        self._spawn(step)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run steps until ``stop`` is set, then let running handlers finish."""
        # A long handler must not lose its step to another instance: a third of the lease on,
        # every step still running here gets a fresh lease, in one statement.
        renewed = asyncio.Event()
        renewing = asyncio.create_task(
            run_loop("step-leases", self._renew_leases, renewed, interval=self._lease_seconds / 3),
            name="chronik-step-leases",
        )
        self._accepting = True
        try:
            await run_loop(
                "executor",
                self._claim,
                stop,
                interval=self._poll_interval,
                wake=(self._wake, self._slot_freed),
            )
            self._accepting = False
            await self.drain()
        finally:
            self._accepting = False
            renewed.set()
            await renewing

    async def _renew_leases(self) -> None:
        if self._running:
            await self._store.renew_step_leases(
                list(self._running.values()), lease_seconds=self._lease_seconds, instance=self._instance
            )

    async def _claim(self) -> float | None:
        """Claim due steps up to the free slots; at once again when every slot was filled, else when
        the next timer is due (or at the poll)."""
        # Cleared whatever the slots: a freed slot that a commit took meanwhile (``reserve``) must
        # not leave the event set, or the loop would wake at once, again and again.
        self._slot_freed.clear()
        free = self._max_concurrent - len(self._running) - self._reserved
        if free > 0:
            # The claim's slots are spoken for while it runs, so that a commit taking its own
            # step meanwhile (``reserve``) cannot push this instance past ``max_concurrent``.
            self._reserved += free
            try:
                claimed = await self._store.claim_steps(
                    limit=free, lease_seconds=self._lease_seconds, instance=self._instance
                )
            finally:
                self._reserved -= free
            for step in claimed:
                self._spawn(step)
            if claimed and len(claimed) == free:
                return BUSY
        return await self._seconds_to_next_step()

    async def drain(self, grace_seconds: float = 30.0) -> None:
        """Wait for running handlers; cancel those still running after ``grace_seconds``.

        A cancelled step keeps its lease, which runs out, and another instance runs it again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        # Looped: a commit that took its step just before the stop spawns its handler late.
        while (self._running or self._reserved) and (left := deadline - loop.time()) > 0:
            if not self._running:  # a commit holding a slot is still in flight: its step comes
                await asyncio.sleep(min(0.05, left))
                continue
            await asyncio.wait(set(self._running), timeout=left)
        pending = set(self._running)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, step: ClaimedStep) -> None:
        task = asyncio.create_task(self._run_step(step), name=f"chronik-step-{step.job_id}")
        self._running[task] = step.job_id
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._slot_freed.set()

    async def _seconds_to_next_step(self) -> float | None:
        # A timer only appears or moves with a step row inserted or updated unleased, which
        # notifies every instance (and the listener wakes everyone after a reconnect). So while
        # no notification came since the last read, and the timer it found has not come, that
        # read still holds: an idle poll costs the claim alone, not this query too.
        now = asyncio.get_running_loop().time()
        read, due = self._timers_read
        if read is not None and not read.is_set() and (due is None or due > now):
            return None if due is None else due - now
        notified = self._wake.current()
        try:
            seconds = await self._store.seconds_to_next_step()
        except Exception as exc:
            log_failure(exc, "next_step_failed")
            self._timers_read = (None, None)
            return None
        self._timers_read = (notified, None if seconds is None else now + seconds)
        return seconds

    async def _run_step(self, step: ClaimedStep) -> None:
        bound = log.bind(job_id=str(step.job_id), attempt=step.attempts)
        try:
            await self._step(step, bound)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Our own failure (the database went away or is busy, say), not the handler's: try again
            # later. ``attempts`` counts every claim of the job's step (the claim's token, never reset).
            delay = min(60.0, 2.0 ** min(step.attempts, 6))
            log_failure(exc, "step_failed", job_id=str(step.job_id), attempt=step.attempts, retry_in=delay)
            with contextlib.suppress(Exception):
                await self._store.retry_step(step, delay_seconds=delay, instance=self._instance)

    async def _step(self, step: ClaimedStep, bound: structlog.typing.FilteringBoundLogger) -> None:
        state = step.job
        if state is None or state.is_terminal:
            await self._store.reschedule_claimed_step(step, instance=self._instance, due=None)
            return
        due = wakes_at(state)
        if due is not None and due <= step.claimed_at:
            # A deadline or timer has come, by the database's clock (the one that made the step due).
            await self._commit_or_reschedule(step, state, decide_due(state, step.claimed_at, self._clock()))
            return
        if state.status == JobStatus.WAITING_FOR_CHILD and state.child is not None:
            child = await self._store.load(state.child.job_id)
            ended = () if child is None else decide_child_ended(state, child, self._clock())
            await self._commit_or_reschedule(step, state, ended)
            return
        if not needs_step(state):
            await self._store.reschedule_claimed_step(step, instance=self._instance, due=due)
            return
        blueprint = self._blueprints.get(state.blueprint)
        if blueprint is None:
            # Another instance may have this blueprint (a rolling deploy); leave the step to it.
            bound.warning("unknown_blueprint", blueprint=state.blueprint)
            await self._store.retry_step(step, delay_seconds=30.0, instance=self._instance)
            return
        if capped := decide_transition_cap(state, self._clock()):
            await self._commit_or_reschedule(step, state, capped)
            return
        started = time.perf_counter()
        attributes = {"chronik.job_id": str(state.job_id), "chronik.blueprint": state.blueprint,
                      "chronik.state": state.current_state}  # fmt: skip
        task_files = self._files(str(state.job_id)) if self._files is not None else None
        with job_span("chronik.job.step", state.traceparent, attributes) as span:
            outcome = await run_handler(blueprint, state, task_files=task_files)
            outcome = check_child_input(outcome, self._blueprints)  # a child's input, before it exists
            if outcome.error is not None:
                span.set_attribute("chronik.error_code", outcome.error.code)
        if self._observe_step is not None:
            self._observe_step(state.blueprint, time.perf_counter() - started)
        at = self._clock()
        events = decide_step(state, blueprint, outcome, at, blueprints=self._blueprints)
        if task_files is not None and task_files.stored and events:
            # What the handler stored is history too: recorded with its outcome, in one append.
            stored = FilesStored(at=at, keys=tuple(task_files.stored), by=f"handler:{state.current_state}")
            events = (stored, *events)
        try:
            committed = await self._commit(state, events, linked=self._children(state, outcome, events))
        except InvalidInput as exc:
            # The outcome holds a value PostgreSQL cannot store (a NUL character, say): the
            # handler failed, and the job records that instead of retrying it forever.
            error = ErrorInfo(code="HANDLER_ERROR", type="InvalidInput", message=exc.message)
            failed = decide_step(
                state, blueprint, HandlerOutcome(state=outcome.state, error=error), self._clock()
            )
            await self._commit(state, failed)  # if the job moved meanwhile: nothing to record
            return
        if not committed:
            # Another writer moved the job while the handler ran: a client cancelled it, or another
            # instance ran this step after our lease ran out. The outcome belongs to a state that
            # is gone, so it is dropped, never re-applied to the new one.
            bound.info("outcome_dropped", state=outcome.state)
            return
        bound.debug("step_done", state=outcome.state, events=[type(e).__name__ for e in events])

    async def _commit(
        self,
        state: JobState,
        events: tuple[AnyEvent, ...],
        *,
        linked: list[tuple[AnyEvent, ...]] | None = None,
    ) -> bool:
        """Commit what was decided on ``state``; False when the job moved on meanwhile (a conflict).

        Records alone (``JobForked``: a fork taken of the job) leave its state as it was, so what
        was decided on it still holds: it is committed after them. Dropped instead, the outcome
        would leave the step leased here until the lease ran out, and the job waiting that long.
        """
        for _ in range(MAX_ATTEMPTS):
            try:
                await self._store.commit(
                    state, events, meta={"instance": self._instance}, linked=linked or ()
                )
                return True
            except VersionConflict:
                moved = await self._store.load(state.job_id)
                if moved is None or not only_recorded_since(state, moved):
                    return False
                state = moved
        return False

    def _children(
        self, state: JobState, outcome: HandlerOutcome, events: tuple[AnyEvent, ...]
    ) -> list[tuple[AnyEvent, ...]]:
        """The creating events of the child job a ``run_blueprint`` starts, committed with the parent's."""
        started = next((event for event in events if isinstance(event, ChildStarted)), None)
        if started is None or not isinstance(outcome.action, RunBlueprint):
            return []
        child_blueprint = self._blueprints[started.blueprint]
        return [
            decide_create(
                started.child_job_id,
                child_blueprint,
                outcome.action.initial_data,
                started.at,
                parent_job_id=state.job_id,
                # A child is its root's: the same client owns it, under the same cap.
                client=state.client,
                metadata=state.metadata,
                max_transitions=state.max_transitions,
            )
        ]

    async def _commit_or_reschedule(
        self, step: ClaimedStep, state: JobState, events: tuple[AnyEvent, ...]
    ) -> None:
        """Append what the job's wake-up decided; with nothing decided, the step waits for its next time."""
        if not events:
            await self._store.reschedule_claimed_step(step, instance=self._instance, due=wakes_at(state))
            return
        await self._commit(state, events)  # if the job moved meanwhile: its new state decides
