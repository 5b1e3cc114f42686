"""The pure domain of chronik: events, the job fold, blueprints and decisions.

Nothing in this package performs I/O or imports a driver or a web framework;
everything here is deterministic given its inputs, which is what lets the same
code serve the live engine, a rebuild and a replay.
"""
