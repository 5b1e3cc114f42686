"""``python -m chronik`` is the ``chronik`` command."""

from __future__ import annotations

from chronik.cli import main

main()
