"""Checkpoint size and write time at paper sizes, worst case (every buffer of the algorithm full).

    python scripts/bench_checkpoint.py [ALGO:TASK ...] [--out results/bench/checkpoint.json]

Builds each algorithm with its `paper` config for the task (no training: the networks have their paper
sizes from the start), fills every transition buffer it holds to capacity with random rows (an online
replay buffer to what a paper run collects, warm-up + env steps), then times `Checkpointer.save`
(torch.save + fsync + rename) three times and reports the file size. Offline algorithms leave their
dataset copy out of checkpoints, so only the model buffer counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmark.results import cpu_model
from benchmark.rl.buffers import TransitionBuffer
from benchmark.rl.checkpoint import Checkpointer, reachable
from benchmark.runner import RunSpec, _inputs, prepare

DEFAULT = ["admpo-off:local/hopper-medium-replay", "mopo:local/hopper-medium-replay",
           "admpo-on:mujoco/Hopper", "mbpo:mujoco/Hopper", "sac:mujoco/Hopper"]


def measure(algo_name: str, task_id: str) -> dict:
    from benchmark.rl.algorithm import Context

    spec, task, cfg, *_ = prepare(RunSpec(algo_name, task_id, 0, "paper"))
    common, dataset = _inputs(spec, task, cfg, False)
    ctx = Context(dataset, **common)
    algo = spec.factory(cfg, ctx)
    skip = {id(getattr(algo, "real", None))} if dataset is not None else set()
    if getattr(algo, "fake", None) is None and hasattr(algo, "model_buffer_capacity"):  # online: 1st rollout
        cap = algo.model_buffer_capacity(cfg.env_steps - 1)
        algo.fake = TransitionBuffer(cap, common["obs_dim"], common["act_dim"])
    replay = getattr(getattr(algo, "real", None), "buffer", None)  # online: EnvReplay.buffer
    filled = {}
    for buf in reachable(algo, TransitionBuffer):
        if id(buf) in skip:
            continue
        rows = buf.capacity
        if buf is replay:
            rows = min(buf.capacity, cfg.start_learning + cfg.env_steps)
        for v in buf.data.values():
            v[:rows].normal_()
        buf.size, buf.ptr = rows, rows % buf.capacity
        filled[f"{'replay' if buf is replay else 'model buffer'} #{len(filled)}"] = rows
    times, size = [], 0
    with tempfile.TemporaryDirectory() as d:
        ckpt = Checkpointer(Path(d), "bench", every=1)
        for i in range(3):
            t0 = time.perf_counter()
            path = ckpt.save(i, {"algo": algo})
            times.append(time.perf_counter() - t0)
            size = path.stat().st_size
    return {"algo": algo_name, "task": task_id, "budget": "paper", "checkpoint_every": cfg.checkpoint_every,
            "buffers_filled": filled, "bytes": size, "write_s": sorted(times)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=DEFAULT)
    p.add_argument("--out", default="results/bench/checkpoint.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for case in args.cases:
        algo, task = case.split(":", 1)
        row = measure(algo, task)
        print(f"{algo:10s} {task:28s} {row['bytes'] / 2**20:8.1f} MiB  write {row['write_s'][1]:.2f} s "
              f"(median of 3)  every {row['checkpoint_every']}", flush=True)
        rows.append(row)
    out = {"machine": {"cpu": cpu_model(), "platform": platform.platform(), "python": sys.version.split()[0],
                       "torch": torch.__version__}, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
