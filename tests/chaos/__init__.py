"""Fault tests: chronik under broken databases, networks and processes (issue 16)."""
