"""The ``chronik`` command line (the ``chronik`` console script runs ``main``).

``parser`` declares the commands, ``commands`` runs them, ``render`` prints what
they found, and ``dev`` supervises ``chronik dev``'s worker process.
"""

from __future__ import annotations

from .commands import main
from .parser import build_parser

__all__ = ["build_parser", "main"]
