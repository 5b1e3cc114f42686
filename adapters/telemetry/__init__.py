"""Telemetry: structlog set-up, OpenTelemetry traces and Prometheus metrics."""
