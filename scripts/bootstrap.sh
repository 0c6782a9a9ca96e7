#!/usr/bin/env bash
# One-stop setup for a fresh machine with python3 >= 3.11 and nothing else.
#   bash scripts/bootstrap.sh test              # set up, then lint + the test suite (what CI runs)
#   bash scripts/bootstrap.sh reproduce [SUITE] # set up, then run a suite (default: mini) and its report
#   bash scripts/bootstrap.sh admbench ARGS...  # set up, then any admbench command
# The virtual environment lives in .venv (override with ADMBENCH_VENV). torch comes from
# `pip install torch==2.13.0` FIRST: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ADMBENCH_VENV:-.venv}"
PY="${PYTHON:-python3}"

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"admbench needs python >= 3.11, found {sys.version.split()[0]}")
PYCHECK

stamp="$VENV/.admbench-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# reinstall when the project's dependency list changes
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"

cmd="${1:-test}"
shift || true
case "$cmd" in
  test)
    ruff check .
    # -m "not slow": the fast suite (< 10 min on 2 cores); `pytest -m slow` runs the long learning tests
    python -m pytest -m "not slow and not benchmark" -n 2 -q "$@"
    ;;
  reproduce)
    admbench reproduce "${1:-mini}" "${@:2}"
    ;;
  admbench)
    admbench "$@"
    ;;
  *)
    echo "usage: bash scripts/bootstrap.sh test|reproduce [SUITE]|admbench ARGS..." >&2
    exit 2
    ;;
esac
