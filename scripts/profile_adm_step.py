"""Where an ADM training step spends its time on this CPU (one thread), by phase of the step.

Why: ADM training is most of the evidence sweeps' cost (ADMPO-ON retrains its model every 250 env steps;
Figure 2 fits ADM and BootRNN, the same network, to early stopping). This says whether that cost can be
cut without changing the numbers (data handling, optimiser, Python overhead) or is the GRU's arithmetic.

Data: synthetic Hopper-shaped transitions (:func:`benchmark.rl.dataset.standing_hopper_data`: 11-d obs,
3-d actions, 1000-step episodes), ``--transitions`` of them (18,500: ADMPO-ON's training set near the end
of a 15k-step Figure 3 run); ADMPO-ON's model settings (m = 5, batch 256, holdout 500). One warm-up epoch,
then ``--epochs`` timed with torch.profiler.

    python scripts/profile_adm_step.py --out results/bench/adm-step-profile.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from adm.training import ADMTrainConfig, train_adm
from benchmark.rl.dataset import standing_hopper_data

# self CPU time of these profiler events = the step's matrix products (GRU gates and head, forward and
# backward): the arithmetic itself, which no rewrite that keeps the numbers removes
MATMUL_EVENTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", type=int, default=18_500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = standing_hopper_data(args.transitions)
    cfg = ADMTrainConfig(max_step=5, max_holdout=500, max_epochs=args.epochs)
    train_adm(data, dataclasses.replace(cfg, max_epochs=1))  # warm-up
    cpu0 = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _, info = train_adm(data, cfg)
    total = time.process_time() - cpu0
    events = prof.key_averages()
    self_s = {e.key: e.self_cpu_time_total / 1e6 for e in events}
    profiled = sum(self_s.values())
    matmul = sum(self_s.get(k, 0.0) for k in MATMUL_EVENTS)
    adam = sum(e.cpu_time_total / 1e6 for e in events if e.key.startswith("Optimizer.step"))
    phases = {"matrix products": matmul, "optimizer (Adam), total": adam,
              "everything else (elementwise, dropout, data, Python)": profiled - matmul - adam}
    steps = info["steps"]
    out = {
        "what": ("CPU seconds by phase of ADM training steps, one thread: torch.profiler self time, whose "
                 "per-op overhead inflates the many small elementwise ops; ms_per_step includes it"),
        "command": " ".join(["python scripts/profile_adm_step.py", *sys.argv[1:]]),
        "host": {"machine": platform.machine(), "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "transitions": args.transitions, "steps": steps,
        "cpu_s_total": round(total, 3), "ms_per_step": round(1000 * total / steps, 2),
        "phases_s": {k: round(v, 3) for k, v in phases.items()},
        "phases_share": {k: round(v / profiled, 3) for k, v in phases.items()},
        "top_self_cpu": [[e.key, round(e.self_cpu_time_total / 1e6, 3)]
                         for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]],
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
