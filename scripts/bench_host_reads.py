"""What reading the update diagnostics back costs: SAC, TD3+BC and CQL updates with the training loop's
per-step bookkeeping, timed in ONE process, interleaved block by block, two ways:

* ``window``: as the loops do now (:class:`benchmark.rl.trainers.StepMetrics`): ``learn()``'s tensors are
  kept, the block's values are read in one transfer at its end, then checked and averaged;
* ``per_step``: as the loops did before: every value ``.item()``-ed at once (on a GPU, one wait for the
  queue each), ``check_finite`` per step, lists, ``finite_mean``.

    python scripts/bench_host_reads.py [--device cpu|cuda] [--threads 1] [--rounds 9] [--out FILE.json]

A block is 50 updates (10 for CQL), about as many as the loops read at once are far more (an epoch, or an
evaluation interval). The ratio is taken per round (median over rounds): shared hosts drift within minutes.
Synthetic Hopper-shaped data (``benchmark.rl.dataset.standing_hopper_data``, 200k transitions).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(device: torch.device) -> dict:
    from baselines.cql import CQL, CQLConfig
    from baselines.td3bc import TD3BC, TD3BCConfig
    from benchmark.rl.algorithm import Context
    from benchmark.rl.buffers import TransitionBuffer
    from benchmark.rl.dataset import standing_hopper_data
    from benchmark.rl.sac import SAC, SACConfig

    data = standing_hopper_data(200_000)
    ctx = Context(data, "hopper", data.obs_dim, data.act_dim, 1.0, device, seed=0)
    torch.manual_seed(0)
    gen = torch.Generator(device=device).manual_seed(0)
    real = TransitionBuffer.from_dataset(ctx.dataset, device=device)
    sac = SAC(11, 3, SACConfig(auto_alpha=True), device=device)
    td3, cql = TD3BC(TD3BCConfig(), ctx), CQL(CQLConfig(), ctx)
    return {"sac": (lambda s: sac.update(real.sample(256, gen)), 50),
            "td3bc": (lambda s: td3.learn(td3.next_batch(s)), 50),
            "cql": (lambda s: cql.learn(cql.next_batch(s)), 10)}


def window(learn, n: int, start: int) -> None:
    from benchmark.rl.trainers import StepMetrics, finite_means

    metrics = StepMetrics()
    for step in range(start, start + n):
        metrics.add(learn(step), step + 1)
    finite_means(metrics.read())


def per_step(learn, n: int, start: int) -> None:
    from benchmark.rl.trainers import check_finite, finite_mean

    diag = defaultdict(list)
    for step in range(start, start + n):
        info = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in learn(step).items()}
        for k, v in check_finite(info, step + 1).items():
            diag[k].append(v)
    {k: finite_mean(v) for k, v in diag.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = {"device": str(device), "threads": args.threads, "rounds": args.rounds, "ops": {}}
    step = 0
    for name, (learn, n) in build(device).items():
        window(learn, 3, 0)
        per_step(learn, 3, 3)
        times = {"window": [], "per_step": []}
        for r in range(args.rounds):
            order = ("window", "per_step") if r % 2 == 0 else ("per_step", "window")
            for way in order:
                sync()
                t0 = time.perf_counter()
                (window if way == "window" else per_step)(learn, n, step)
                sync()
                times[way].append((time.perf_counter() - t0) / n * 1e3)
                step += n
        ratio = statistics.median(a / b for a, b in zip(times["window"], times["per_step"]))
        out["ops"][name] = {"window_ms": round(statistics.median(times["window"]), 3),
                            "per_step_ms": round(statistics.median(times["per_step"]), 3),
                            "ratio_median": round(ratio, 3)}
        print(name, out["ops"][name], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
