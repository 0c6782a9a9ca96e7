"""The GPU benchmark of issue 19, one command: ``bash scripts/bench_gpu.sh`` (this file does the work).

    python scripts/bench_gpu.py [--device cuda] [--out results/bench/gpu-<name>.json] [--quick]
    OFFICIAL=<HxLyn3/ADMPO checkout> python scripts/bench_gpu.py ...   # adds the official code's figures

On one device it measures and writes as JSON:

1. the per-epoch parts of ADMPO-OFF, MOPO, MOBILE, CQL and TD3+BC at `paper` sizes on
   ``local/hopper-medium-replay`` (:func:`scripts.bench_epochs.bench_algo`: update incl. sampling, one
   model rollout, one model epoch, an evaluation), with ``device`` set and, for ADMPO-OFF, the rollout in
   one chunk of all starts (``rollout_chunk_size`` = ``rollout_batch_size``: the CPU default of 1000
   keeps matrices in a CPU cache and only slices a GPU's work);
2. the ADM train step (batch 256, k ~ U{1..5}) and one ADM rollout (50k starts x H=5, m=5, penalty and
   dropout on, one chunk);
3. with ``OFFICIAL`` set, the official ADMPO code's train step, SAC update and rollout on the same device
   (``scripts/official_anchor.py --device``);
4. runs per GPU: 1, 2, 4, 8 processes each doing the same number of SAC updates at once; throughput in
   updates/s over all of them and each run's slowdown against running alone (``--pack``);
5. the ``compile`` switch: SAC, TD3+BC and CQL update time at paper sizes, eager against each of
   ``--compile-modes`` (default: default and reduce-overhead, which adds CUDA graphs), interleaved round
   by round, with each mode's compile time (``--only compile`` runs this part alone, e.g. on a CPU).

It stops itself at ``--budget-s`` (default 540 s), leaving out what did not fit (listed in the output).
``--quick --device cpu`` runs the same code at toy sizes on a CPU (tests/test_bench_gpu_script.py).
No figure of this file has been measured on a GPU yet: see README "Performance".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402
from bench_epochs import bench_algo, sync  # noqa: E402  (scripts/ is on the path above)

from benchmark.rl import compile as compile_module  # noqa: E402

OBS, ACT, M, H = 11, 3, 5, 5
EPOCH_ALGOS = ("admpo-off", "mopo", "mobile", "cql", "td3bc")
SECTIONS = ("epochs", "adm", "official", "compile", "packing")


def clock_ms(fn, device: torch.device, calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return 1e3 * (time.perf_counter() - t) / calls


def adm_figures(device: torch.device, starts: int, steps: int) -> dict:
    from adm.model import AnyStepDynamics
    from adm.rollout import RolloutConfig, rollout
    from adm.training import adm_nll_loss

    torch.manual_seed(0)
    model = AnyStepDynamics(OBS, ACT).to(device)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    g = torch.Generator(device=device).manual_seed(0)

    def train_step():
        k = int(torch.randint(1, M + 1, (1,)))
        s = torch.randn(256, OBS, device=device, generator=g)
        a = torch.randn(256, k, ACT, device=device, generator=g)
        y = torch.randn(256, OBS + 1, device=device, generator=g)
        mean, logvar = model(s, a)
        loss = adm_nll_loss(mean, logvar, y, model.max_logvar, model.min_logvar)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    hist_obs = torch.randn(starts, M - 1, OBS, device=device, generator=g)
    hist_act = torch.rand(starts, M - 1, ACT, device=device, generator=g)
    start = torch.randn(starts, OBS, device=device, generator=g)
    cfg = RolloutConfig(max_step=M, length=H, penalty_coef=1.0, chunk_size=starts)

    def never(obs, act, next_obs):  # every rollout runs all H steps
        return torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)

    def policy(obs):
        return torch.tanh(torch.randn(obs.shape[0], ACT, device=obs.device))

    def one_rollout():
        rollout(model, policy, hist_obs, hist_act, start, cfg, never, torch.Generator().manual_seed(1))

    return {"adm_train_step_ms": round(clock_ms(train_step, device, steps), 3),
            "adm_rollout_s": round(clock_ms(one_rollout, device, 1, warmup=1) / 1e3, 3),
            "adm_rollout": f"{starts} starts x H={H}, m={M}, penalty + dropout on, one chunk"}


def official_figures(device: torch.device, quick: bool) -> dict:
    """The official code on the same device (``scripts/official_anchor.py --device``), if OFFICIAL is set."""
    if not os.environ.get("OFFICIAL"):
        return {"skipped": "OFFICIAL not set"}
    cmd = [sys.executable, str(ROOT / "scripts" / "official_anchor.py"), "--device", str(device),
           "--threads", str(torch.get_num_threads())]
    if quick:
        cmd += ["--n", "5000", "--rollout-batch", "500"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp", timeout=900)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def pack_worker(device: str, updates: int) -> None:
    """One packed run: ``updates`` SAC updates (batch 256, 2x256 nets) with data on the device; prints the
    seconds they took."""
    from benchmark.rl.buffers import TransitionBuffer
    from benchmark.rl.sac import SAC, SACConfig

    dev = torch.device(device)
    torch.manual_seed(0)
    sac = SAC(OBS, ACT, SACConfig(auto_alpha=True), device=dev)
    buf = TransitionBuffer(100_000, OBS, ACT, dev)
    n = 100_000
    buf.add(obs=torch.randn(n, OBS), act=torch.rand(n, ACT) * 2 - 1, rew=torch.randn(n, 1),
            next_obs=torch.randn(n, OBS), done=torch.zeros(n, 1))
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        sac.update(buf.sample(256, g))
    sync(dev)
    t = time.perf_counter()
    for _ in range(updates):
        sac.update(buf.sample(256, g))
    sync(dev)
    print(json.dumps({"seconds": time.perf_counter() - t}))


def packing(device: torch.device, counts: list[int], updates: int) -> dict:
    rows = {}
    for n in counts:
        cmd = [sys.executable, __file__, "--pack-worker", str(updates), "--device", str(device)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
        outs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t
        if any(p.returncode for p in procs):
            rows[str(n)] = {"error": f"a packed run exited with {[p.returncode for p in procs]}"}
            continue
        per_run = [json.loads(o.strip().splitlines()[-1])["seconds"] for o in outs]
        rows[str(n)] = {"updates_per_s_total": round(n * updates / max(per_run), 1),
                        "run_seconds_median": round(statistics.median(per_run), 3),
                        "wall_s_incl_start": round(wall, 2)}
    alone = rows.get("1", {}).get("run_seconds_median")
    for row in rows.values():
        if alone and "run_seconds_median" in row:
            row["slowdown_vs_alone"] = round(row["run_seconds_median"] / alone, 3)
    return rows


def compile_learners(device: torch.device, n: int = 100_000):
    """``{name: make(mode) -> one update}`` at paper sizes (batch 256; SAC and TD3+BC 2x256 nets, CQL its
    config's 3x256, 10 sampled actions per proposal) on synthetic Hopper-shaped data on ``device``."""
    from baselines.cql import CQL, CQLConfig
    from baselines.td3bc import TD3BC, TD3BCConfig
    from benchmark.rl.algorithm import Context
    from benchmark.rl.buffers import TransitionBuffer
    from benchmark.rl.dataset import standing_hopper_data
    from benchmark.rl.sac import SAC, SACConfig

    data = standing_hopper_data(n)
    ctx = Context(data, "hopper", OBS, ACT, 1.0, device)
    buf = TransitionBuffer.from_dataset(data, device)

    def sac(mode):
        learner, g = SAC(OBS, ACT, SACConfig(auto_alpha=True, compile=mode), device=device), torch.Generator()
        return lambda: learner.update(buf.sample(256, g))

    def offline(cls, cfg_cls):
        def make(mode):
            algo = cls(cfg_cls(compile=mode), ctx)
            return lambda: algo.learn(algo.next_batch(0))
        return make

    return {"sac": sac, "td3bc": offline(TD3BC, TD3BCConfig), "cql": offline(CQL, CQLConfig)}


def compile_figures(device: torch.device, modes: list[str], algos: list[str], calls: int,
                    rounds: int) -> dict:
    """Update ms of eager ("off") and each compile mode, ``rounds`` interleaved blocks of ``calls`` updates
    (median over rounds: a shared host's speed drifts), and each mode's first 3 calls (the compile). On a
    CPU also the calling thread's CPU time per update (``update_cpu_ms``; with one torch thread, inductor's
    kernels run on it too), which a loaded host does not inflate."""
    makers = compile_learners(device)
    out = {}
    for algo in algos:
        torch._dynamo.reset()
        steps, row = {}, {}
        for mode in ["off", *modes]:
            torch.manual_seed(0)
            steps[mode] = makers[algo](mode)
            sync(device)
            t = time.perf_counter()
            for _ in range(3):
                steps[mode]()
            sync(device)
            row[mode] = {"first_3_calls_s": round(time.perf_counter() - t, 2)}
        wall = {mode: [] for mode in steps}
        cpu = {mode: [] for mode in steps}
        for _ in range(rounds):
            for mode, step in steps.items():
                c = time.thread_time()
                wall[mode].append(clock_ms(step, device, calls, warmup=1))
                cpu[mode].append(1e3 * (time.thread_time() - c) / (calls + 1))  # the warm-up call included
        timings = {"": wall, "_cpu": cpu} if device.type == "cpu" else {"": wall}
        for suffix, per_round in timings.items():
            for mode, times in per_round.items():
                row[mode][f"update{suffix}_ms"] = round(statistics.median(times), 3)
                row[mode][f"speedup{suffix}_vs_eager"] = round(statistics.median(
                    a / b for a, b in zip(per_round["off"], times)), 3)
        out[algo] = row
        print("compile", algo, row, flush=True)
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.processor() or platform.machine()} x{os.cpu_count()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="toy sizes (a CPU self-test of this script)")
    ap.add_argument("--budget-s", type=float, default=540.0)
    ap.add_argument("--pack", default="1,2,4,8")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the CPU side of a GPU run)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}")
    ap.add_argument("--compile-modes", default="default,reduce-overhead",
                    help="compile modes timed against off")
    ap.add_argument("--compile-algos", default="sac,td3bc", help="updates timed by the compile section "
                    "(of sac, td3bc, cql)")
    ap.add_argument("--pack-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.pack_worker is not None:
        return pack_worker(args.device, args.pack_worker)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu: --device cuda but torch sees no CUDA device (torch "
                 f"{torch.__version__}; a CPU wheel has none)")
    t0 = time.perf_counter()
    name = device_name(device)
    out = {"meta": {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
                    "threads": args.threads, "quick": args.quick, "command": " ".join(["python", *sys.argv]),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
           "epochs": {}, "left_out": []}
    sections = set(args.only.split(","))

    def time_left() -> bool:
        return time.perf_counter() - t0 < args.budget_s

    algos = (("td3bc",) if args.quick else EPOCH_ALGOS) if "epochs" in sections else ()
    for algo in algos:
        if not time_left():
            out["left_out"].append(f"epoch {algo}")
            continue
        overrides = {"device": str(device)}
        if algo == "admpo-off" and device.type != "cpu":
            overrides["rollout_chunk_size"] = "50000"
        out["epochs"][algo] = bench_algo(algo, "local/hopper-medium-replay", 5 if args.quick else 100,
                                         overrides)
        print(algo, out["epochs"][algo], flush=True)

    def section(key: str, measure) -> None:
        if key not in sections:
            return
        if not time_left():
            out["left_out"].append(key)
            return
        out[key] = measure()
        print(key, out[key], flush=True)

    section("adm", lambda: adm_figures(device, 500 if args.quick else 50_000, 5 if args.quick else 50))
    section("official", lambda: official_figures(device, args.quick))
    if args.quick:  # the script's own test: dynamo + AOT autograd without code generation (seconds)
        compile_module.BACKEND = "aot_eager"
    section("compile", lambda: {
        "backend": compile_module.BACKEND,
        **compile_figures(device, args.compile_modes.split(","), args.compile_algos.split(","),
                          calls=5 if args.quick else 50, rounds=2 if args.quick else 5)})
    counts = [int(n) for n in args.pack.split(",") if n]
    if "packing" in sections:  # empty when out of time, as before
        out["packing"] = packing(device, counts, 50 if args.quick else 2000) if time_left() else {}
        print("packing", out["packing"], flush=True)
    out["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    safe = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = Path(args.out or ROOT / "results" / "bench" / f"gpu-{safe}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} in {out['meta']['seconds']} s")


if __name__ == "__main__":
    main()
