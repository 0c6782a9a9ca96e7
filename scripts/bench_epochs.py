"""Per-epoch cost of every offline algorithm at `paper` sizes, by part, on this machine.

    python scripts/bench_epochs.py [--task local/hopper-medium-replay] [--algos mopo,cql] [--threads 1]
        [--updates 30] [--out results/bench/epochs-cpu.json]

For each registered offline algorithm, with its `paper` config for the task (the YAML values, batch sizes,
rollout sizes, evaluation episodes):

* ``update_ms``: one ``learn(next_batch(step))`` (sampling included), median over ``--updates`` calls
  after the first rollout (no rollout falls inside the timed calls);
* ``rollout_s``: one model rollout at the config's ``rollout_batch_size`` x ``rollout_length``, and
  ``rollouts_per_epoch`` = ``steps_per_epoch / rollout_freq``;
* ``eval_s``: ``eval_episodes`` x 1000 env steps of the deterministic policy (env step + ``act``), the
  cost of an evaluation whose episodes all last the full 1000 steps (a trained policy's; an untrained one
  falls sooner), so an upper bound;
* ``model_epoch_s``: the setup (model training and what else ``setup()`` does) capped at ONE model epoch
  (``model_max_epochs`` / ``dynamics_max_epochs`` = 1); a paper-size run trains to early stopping, whose
  epoch count is known only from a finished run, so ``--plan`` multiplies this by the model epochs of
  finished records when there are some;
* ``pretrain_step_ms``: for an algorithm whose setup also pre-trains its policy for a fixed number of steps
  (CBOP: ``bc_steps`` behaviour-cloning then ``pe_steps`` policy-evaluation steps, 20k each at `paper`,
  about 40k steps that would dominate the benchmark), the setup above runs with those counts at 0 and
  ``pretrain()`` is then timed over ``PRETRAIN_STEPS_TIMED`` steps of each kind; ``pretrain_steps`` is the
  config's total, which ``--plan`` multiplies by ``pretrain_step_ms``.

``epoch_s`` = ``steps_per_epoch`` x update + rollouts + evaluation; ``run_h_without_model`` = ``epochs`` x
``epoch_s``. Writes one JSON file; ``admbench reproduce ... --plan`` reads it for `paper` runs that have no
record of their own (:mod:`benchmark.plan`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmark import registry  # noqa: E402
from benchmark.atomic import atomic_write_text  # noqa: E402
from benchmark.plan import PRETRAIN_STEP_FIELDS  # noqa: E402
from benchmark.rl.algorithm import Context  # noqa: E402
from benchmark.runner import RunSpec, prepare  # noqa: E402
from benchmark.seeding import seed_everything  # noqa: E402

MODEL_EPOCH_CAPS = ("model_max_epochs", "dynamics_max_epochs")  # the setup's model-epoch cap fields
PRETRAIN_STEPS_TIMED = 100  # of each pre-training kind
EVAL_STEPS_TIMED = 1000


def context(task, cfg, dataset) -> Context:
    env = task.make_env()
    high = float(np.max(env.action_space.high))
    ctx = Context(dataset, task.env_key, env.observation_space.shape[0], env.action_space.shape[0],
                         high, torch.device(cfg.device), seed=0)
    env.close()
    return ctx


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device):
    """The clock to time ``device`` work with: on a CPU with one torch thread, this thread's CPU time (all of
    the work runs in it, and it does not count the time other processes hold the core, so a shared host
    gives the same figures as an idle one); otherwise wall time (a GPU's work is not this thread's)."""
    return time.thread_time if device.type == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def timed(fn, device: torch.device) -> float:
    now = clock(device)
    sync(device)
    t = now()
    fn()
    sync(device)
    return now() - t


def eval_step_s(algo, task) -> float:
    """Seconds per evaluation env step (simulator step + deterministic action), resets included."""
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    now = clock(torch.device(algo.device))
    t = now()
    for _ in range(EVAL_STEPS_TIMED):
        obs, _, term, trunc, _ = env.step(algo.act(obs, deterministic=True))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return (now() - t) / EVAL_STEPS_TIMED


def bench_algo(name: str, task_id: str, updates: int, overrides: dict | None = None) -> dict:
    """The parts of one paper-size epoch of ``name``; ``overrides`` as ``--set`` (e.g. ``device``)."""
    spec = registry.get(name)
    overrides = dict(overrides or {})
    _, task, cfg, cfg_dict, _, _ = prepare(RunSpec(name, task_id, 0, "paper", overrides))
    caps = {k: 1 for k in MODEL_EPOCH_CAPS if k in cfg_dict}
    pretrain = {k: int(cfg_dict[k]) for k in PRETRAIN_STEP_FIELDS if k in cfg_dict}
    caps.update({k: 0 for k in pretrain})
    if caps:
        _, task, cfg, cfg_dict, _, _ = prepare(RunSpec(name, task_id, 0, "paper", {**overrides, **caps}))
    device = torch.device(cfg.device)
    dataset = task.load_dataset()
    seed_everything(0, threads=torch.get_num_threads())
    algo = spec.factory(cfg, context(task, cfg, dataset))
    out: dict = {"steps_per_epoch": cfg.steps_per_epoch, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                 "eval_episodes": cfg.eval_episodes}
    setup_s = timed(algo.setup, device)
    if caps:
        out["model_epoch_s"] = round(setup_s, 2)
        out["model_epoch_cap"] = caps
    else:
        out["setup_s"] = round(setup_s, 2)
    if pretrain:  # time PRETRAIN_STEPS_TIMED steps of each kind, then restore the capped config
        algo.cfg = dataclasses.replace(cfg, **{k: PRETRAIN_STEPS_TIMED for k in pretrain})
        pretrain_s = timed(algo.pretrain, device)
        algo.cfg = cfg
        out["pretrain_step_ms"] = round(1e3 * pretrain_s / (PRETRAIN_STEPS_TIMED * len(pretrain)), 3)
        out["pretrain_steps"] = sum(pretrain.values())
        for k in pretrain:  # only the model-epoch caps stay listed
            out["model_epoch_cap"].pop(k)
    model_based = hasattr(algo, "rollout") and "rollout_freq" in cfg_dict
    if model_based:
        out["rollout_batch_size"], out["rollout_length"] = cfg.rollout_batch_size, cfg.rollout_length
        out["rollout_s"] = round(timed(lambda: algo.next_batch(0), device), 3)  # the first rollout: alone
        out["rollouts_per_epoch"] = cfg.steps_per_epoch / cfg.rollout_freq
    times = []
    for step in range(1, updates + 1):
        times.append(timed(lambda s=step: algo.learn(algo.next_batch(s)), device))
    out["update_ms"] = round(1e3 * statistics.median(times[2:] or times), 3)
    out["eval_s"] = round(eval_step_s(algo, task) * 1000 * cfg.eval_episodes, 2)
    epoch = cfg.steps_per_epoch * out["update_ms"] / 1e3 + out["eval_s"]
    if model_based:
        epoch += out["rollout_s"] * out["rollouts_per_epoch"]
    out["epoch_s"] = round(epoch, 2)
    out["run_h_without_model"] = round(cfg.epochs * epoch / 3600, 2)
    return out


def markdown_rows(rows: dict) -> list[str]:
    """README "Performance" table rows of an epochs file's ``algorithms`` (tests/test_readme_facts.py checks
    that README shows exactly these)."""
    out = []
    for name, row in sorted(rows.items()):
        rollout = (f"{row['rollout_s']:.1f} s x {row['rollouts_per_epoch']:g}"
                   if row.get("rollout_length", 0) > 1 else "-")
        setup = f"{row['model_epoch_s']:.1f} s" if "model_epoch_s" in row else "-"
        if "pretrain_step_ms" in row:
            setup += f" + {row['pretrain_steps']} pre-training steps x {row['pretrain_step_ms']:.0f} ms"
        hours = row["run_h_without_model"]
        ms = row["update_ms"]
        update = f"{ms / 1e3:.1f} s" if ms >= 1e4 else f"{ms:.1f} ms"
        out.append(f"| {name} | {update} | {rollout} | {row['eval_s']:.1f} s | "
                   f"**{row['epoch_s']:.0f} s** | {setup} | {row['epochs']} | {hours:,.0f} h |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="local/hopper-medium-replay")
    ap.add_argument("--algos", default="", help="comma-separated; default: every offline algorithm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--updates", type=int, default=30)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every algorithm, e.g. device=cuda")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "epochs-cpu.json"))
    ap.add_argument("--table", action="store_true", help="print --out's rows as README's markdown table")
    args = ap.parse_args()
    if args.table:
        print("\n".join(markdown_rows(json.loads(Path(args.out).read_text())["algorithms"])))
        return
    torch.set_num_threads(args.threads)
    names = sorted(n for n, s in registry.algorithms().items() if s.kind == "offline")
    if args.algos:
        names = [n for n in names if n in args.algos.split(",")]
    overrides = dict(kv.split("=", 1) for kv in args.set)
    device = torch.device(overrides.get("device", "cpu"))
    out_path = Path(args.out)
    clock_name = "thread CPU time" if clock(device) is time.thread_time else "wall time"
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    old = previous.get("meta", {})
    # rows of another task or clock are not comparable (files before the clock was stated used wall time)
    kept = old.get("task") == args.task and old.get("clock", "wall time") == clock_name
    rows = dict(previous.get("algorithms", {})) if kept else {}
    command = " ".join(["python", *sys.argv])
    # every invocation whose rows the file holds (a row's own load and time are in the row)
    commands = [c for c in old.get("commands", [old.get("command")]) if c] if kept else []
    commands = [c for c in commands if c != command] + [command]

    def meta() -> dict:
        return {"task": args.task, "budget": "paper", "threads": args.threads, "set": args.set,
                "clock": clock_name,
                "torch": torch.__version__, "python": platform.python_version(),
                "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2), "commands": commands,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    for name in names:  # the file is rewritten after every algorithm: an interrupted run keeps what it did
        t0 = time.perf_counter()
        rows[name] = bench_algo(name, args.task, args.updates, overrides)
        row = rows[name]
        row["load_avg_1m"] = round(os.getloadavg()[0], 2)  # this host is shared: how busy it was
        row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rollout = f" + {row.get('rollouts_per_epoch', 0):g} x rollout {row.get('rollout_s', 0):.1f} s"
        print(f"{name:10s} epoch {row['epoch_s']:8.1f} s = {row['steps_per_epoch']} x "
              f"{row['update_ms']:.1f} ms" + rollout
              + f" + eval {row['eval_s']:.1f} s; model epoch {row.get('model_epoch_s', '-')} s "
              f"(bench {time.perf_counter() - t0:.0f} s)", flush=True)
        text = json.dumps({"meta": meta(), "algorithms": rows}, indent=1, sort_keys=True) + "\n"
        atomic_write_text(out_path, text)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
