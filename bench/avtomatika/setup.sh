#!/usr/bin/env bash
# Set up the Avtomatika reference stack for the benchmark (idempotent).
#
# Creates two virtualenvs and installs the pinned releases from PyPI:
#   bench/.venvs/avtomatika         avtomatika[redis]==1.0b30 (+ hiredis, uvloop)
#   bench/.venvs/avtomatika-worker  avtomatika-worker==1.0b20
#
# Two venvs, not one: the two releases cannot share an environment.
# avtomatika 1.0b30 requires orjson~=3.12.0 and avtomatika-worker 1.0b20
# requires orjson~=3.11.9, so pip reports ResolutionImpossible. In a real
# deployment they are separate services anyway.
#
# hiredis is redis-py's optional C reply parser ("redis[hiredis]"); redis-py
# uses it automatically when it is installed. uvloop is only used when
# orchestrator.py runs with AVT_UVLOOP=1. Both are usual throughput options
# and neither changes what Avtomatika does.
#
# Env: PYTHON       interpreter for the venvs (default: python3, must be >= 3.11)
#      VENVS_DIR    where the venvs go (default: <repo>/bench/.venvs)
#      SKIP_REDIS_CHECK=1  skip the "redis-cli ping" check
# Exit code: 0 ok, 1 install failure, 2 Redis not reachable.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS_DIR="${VENVS_DIR:-$(cd "$HERE/.." && pwd)/.venvs}"
PYTHON="${PYTHON:-python3}"
ORCH_VENV="$VENVS_DIR/avtomatika"
WORKER_VENV="$VENVS_DIR/avtomatika-worker"

ORCH_REQS=("avtomatika[redis]==1.0b30" "hiredis>=3,<4" "uvloop>=0.19")
WORKER_REQS=("avtomatika-worker==1.0b20")

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "setup.sh: $PYTHON is missing or older than 3.11 (Avtomatika needs 3.11+); set PYTHON=..." >&2
    exit 1
fi

# ensure_venv DIR CHECK_SNIPPET REQ...
ensure_venv() {
    local dir="$1" check="$2"; shift 2
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "setup.sh: $dir is ready"
        return 0
    fi
    echo "setup.sh: installing into $dir: $*"
    [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$dir/bin/python" -c "$check"
}

ensure_venv "$ORCH_VENV" '
from importlib.metadata import version
assert version("avtomatika") == "1.0b30", version("avtomatika")
import avtomatika, redis, hiredis, uvloop
from avtomatika.storage.redis import RedisStorage
' "${ORCH_REQS[@]}"

ensure_venv "$WORKER_VENV" '
from importlib.metadata import version
assert version("avtomatika-worker") == "1.0b20", version("avtomatika-worker")
import avtomatika_worker
' "${WORKER_REQS[@]}"

if [ "${SKIP_REDIS_CHECK:-0}" != "1" ]; then
    RHOST="${REDIS_HOST:-127.0.0.1}"; RPORT="${REDIS_PORT:-6379}"
    if ! command -v redis-cli >/dev/null 2>&1; then
        echo "setup.sh: WARNING: redis-cli not found; cannot check Redis at $RHOST:$RPORT" >&2
    elif [ "$(redis-cli -h "$RHOST" -p "$RPORT" ping 2>/dev/null)" != "PONG" ]; then
        cat >&2 <<MSG
setup.sh: ERROR: Redis is not answering at $RHOST:$RPORT (redis-cli ping).
Avtomatika needs Redis. On this machine start it with:
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
MSG
        exit 2
    else
        echo "setup.sh: Redis at $RHOST:$RPORT answers PONG"
    fi
fi

echo "ORCH_PYTHON=$ORCH_VENV/bin/python"
echo "WORKER_PYTHON=$WORKER_VENV/bin/python"
