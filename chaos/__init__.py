"""chronik's fault harness: a steady load against PostgreSQL, instances and workers that it breaks.

Run by hand as ``python -m chaos --scenario NAME`` or ``python -m chaos --all``; the
test suite runs a short form (tests/chaos/test_faults.py). docs/reliability.md has
what chronik promises and the figures of one run.
"""
