"""OpenTelemetry traces: one trace per job, a span per handler run and per task attempt.

A job's trace starts when it is created; its W3C ``traceparent`` is recorded in
``JobCreated`` and handed to workers with each task (``metadata.traceparent``),
so the orchestrator's spans and the workers' join one trace, across processes
and across restarts. Without a tracer provider (the default) the spans cost
next to nothing and nothing is recorded.

``configure_tracing()`` sets a provider from the standard ``OTEL_`` variables:
``OTEL_TRACES_EXPORTER`` (``otlp`` needs ``opentelemetry-exporter-otlp``,
``console``, or ``none``), ``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_ENDPOINT``...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

from chronik.core.errors import ConfigError

__all__ = ["configure_tracing", "job_span", "new_traceparent", "tracer"]

tracer = trace.get_tracer("chronik")


def new_traceparent(name: str, attributes: dict[str, Any]) -> str | None:
    """Start a job's trace with a span ``name``; its ``traceparent``, or None when nothing traces."""
    with tracer.start_as_current_span(name, attributes=attributes):
        carrier: dict[str, str] = {}
        inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def job_span(name: str, traceparent: str | None, attributes: dict[str, Any]) -> Iterator[trace.Span]:
    """A span in a job's trace (a new trace when the job has none)."""
    parent = extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    with tracer.start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span


def configure_tracing() -> None:
    """Install a tracer provider when ``OTEL_TRACES_EXPORTER`` asks for one."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if exporter_name in ("", "none"):
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError(
                "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install opentelemetry-exporter-otlp"
            ) from None
        exporter = OTLPSpanExporter()
    else:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter_name!r} must be otlp, console or none")
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
