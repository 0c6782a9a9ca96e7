#!/usr/bin/env bash
# Side-by-side timing of our ADM rollout (carried, and the per-k loop), ADM train step and SAC update
# against the official ADMPO code, two threads each, alternating ours / official twice on a quiet machine.
#
#   OFFICIAL=/path/to/HxLyn3-ADMPO-checkout bash scripts/bench_side_by_side.sh [OUT_DIR]
#
# OFFICIAL: an export of github.com/HxLyn3/ADMPO (measured at 68c28b9), timed by
# scripts/official_anchor.py (override with ANCHOR=...). Writes ours_round{1,2}.json
# (pytest-benchmark) and official_round{1,2}.json into OUT_DIR (default results/bench/side-by-side-2threads).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OFFICIAL:?set OFFICIAL to a checkout of the official ADMPO code}"
ANCHOR=${ANCHOR:-$(pwd)/scripts/official_anchor.py}
OUT=$(realpath -m "${1:-results/bench/side-by-side-2threads}")
mkdir -p "$OUT"
export ADMBENCH_THREADS=2 ADM_BENCH_BATCH=50000 ADM_BENCH_ROUNDS=1
bench() {  # $1: round, $2: pytest -k expression
    python -m pytest tests/bench_adm.py tests/bench_core.py -m benchmark -p no:xdist --benchmark-only -q \
        -k "$2" --benchmark-json="$OUT/ours_round$1.json"
}
official() {  # the anchor imports the official code from OFFICIAL; run it outside this repo
    (cd /tmp && python "$ANCHOR" --threads 2 > "$OUT/official_round$1.json")
    cat "$OUT/official_round$1.json"
}
bench 1 "rollout or train_step or sac_update"
official 1
bench 2 "rollout and carry"
official 2
