"""One job, one trace: the orchestrator's spans and the worker's join under one trace id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chronik import Worker
from tests.conftest import wait_for
from tests.e2e.conftest import WORKER_TOKEN, work_blueprint

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter behind the process's tracer provider (it can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def test_a_jobs_spans_share_one_trace_across_orchestrator_and_worker(
    start_orchestrator: Any, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    orchestrator = await start_orchestrator(work_blueprint())
    worker = Worker(url=orchestrator.url, token=WORKER_TOKEN, worker_id="traced", heartbeat_interval=0.5)

    @worker.task("work")
    async def work(params: dict[str, Any]) -> dict[str, Any]:
        return {"answer": params["n"] * 2}

    running = asyncio.create_task(worker.serve())
    try:
        job = await orchestrator.engine.create_job("work", {"n": 21})

        async def ended() -> bool:
            return (await orchestrator.engine.get_job(job.job_id)).is_terminal

        await wait_for(ended, within=20)
    finally:
        worker.stop()
        await asyncio.wait_for(running, timeout=20)
    mine = [s for s in spans.get_finished_spans() if s.attributes.get("chronik.job_id") == str(job.job_id)]
    names = {span.name for span in mine}
    assert {"chronik.job.create", "chronik.job.step", "chronik.task work", "chronik.task.result"} <= names
    assert len({span.context.trace_id for span in mine}) == 1  # one trace, from creation to result
    root = next(span for span in mine if span.name == "chronik.job.create")
    worker_span = next(span for span in mine if span.name == "chronik.task work")
    assert worker_span.parent is not None and worker_span.parent.span_id == root.context.span_id
    assert worker_span.attributes["chronik.worker_id"] == "traced"
