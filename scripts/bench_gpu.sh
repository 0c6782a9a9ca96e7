#!/usr/bin/env bash
# The GPU benchmark of issue 19 in one command (about 10 minutes on one GPU; stops itself at 540 s of work):
#   bash scripts/bench_gpu.sh [OUT.json]            # OFFICIAL=<HxLyn3/ADMPO checkout> adds the official code
# Writes results/bench/gpu-<device name>.json (or OUT.json) and prints each figure as it comes; see
# scripts/bench_gpu.py for what is measured. Needs a CUDA build of torch and a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench_gpu.sh: no CUDA device visible to torch ' + torch.__version__)"
exec "$PY" scripts/bench_gpu.py --device cuda ${1:+--out "$1"}
