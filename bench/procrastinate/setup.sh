#!/usr/bin/env bash
# Set up the Procrastinate side of the benchmark (idempotent).
#
# Creates one virtualenv and installs the pinned release from PyPI:
#   bench/.venvs/procrastinate   procrastinate==3.10.0 (+ psycopg[binary], uvloop)
#
# psycopg[binary] is psycopg's compiled build (chronik's side uses it too); without it
# psycopg falls back to its pure-Python build on the system libpq. uvloop runs the
# worker's event loop, as on the other two sides. Neither changes what Procrastinate does.
# PostgreSQL itself is not set up here: bench/run.py starts one embedded server
# for chronik and Procrastinate and gives each a database of its own.
#
# Env: PYTHON     interpreter for the venv (default: python3, must be >= 3.11)
#      VENVS_DIR  where the venv goes (default: <repo>/bench/.venvs)
# Exit code: 0 ok, 1 install failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS_DIR="${VENVS_DIR:-$(cd "$HERE/.." && pwd)/.venvs}"
PYTHON="${PYTHON:-python3}"
VENV="$VENVS_DIR/procrastinate"

REQS=("procrastinate==3.10.0" "psycopg[binary]>=3.2,<4" "uvloop>=0.19")
CHECK='
from importlib.metadata import version
assert version("procrastinate") == "3.10.0", version("procrastinate")
import procrastinate, psycopg, psycopg_pool, uvloop
assert psycopg.pq.__impl__ == "binary", psycopg.pq.__impl__
'

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "setup.sh: $PYTHON is missing or older than 3.11; set PYTHON=..." >&2
    exit 1
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$CHECK" >/dev/null 2>&1; then
    echo "setup.sh: $VENV is ready"
else
    echo "setup.sh: installing into $VENV: ${REQS[*]}"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQS[@]}"
    "$VENV/bin/python" -c "$CHECK"
fi
echo "PROCRASTINATE_PYTHON=$VENV/bin/python"
