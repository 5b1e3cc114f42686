"""The cookbook of docs/blueprints.md: one module per recipe, and the worker that runs their tasks.

Serve every recipe, with the worker as a separate process::

    chronik dev docs.examples.cookbook:blueprints --worker docs.examples.cookbook.worker:worker

tests/e2e/test_cookbook.py runs each recipe over HTTP and checks that the
documentation shows these files as they are.
"""

from __future__ import annotations

from . import (
    approval,
    cancellation,
    child_jobs,
    conditions,
    data_stores,
    fan_out,
    input_schema,
    timeouts,
    timers,
)

__all__ = ["blueprints"]

blueprints = [
    conditions.bp,
    fan_out.bp,
    approval.bp,
    *child_jobs.blueprints,
    timers.bp,
    timeouts.bp,
    *cancellation.blueprints,
    data_stores.bp,
    input_schema.bp,
]
"""Every blueprint of the cookbook."""
