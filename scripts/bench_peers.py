"""Our CPU hot paths against their peers, timed side by side in ONE process, interleaved block by block.

    OFFLINERL_KIT=<OfflineRL-Kit checkout> CORL=<CORL checkout> OFFICIAL=<HxLyn3/ADMPO checkout> \
    OFFLINERL_KIT_COMMIT=e3ce697 CORL_COMMIT=eeeeef2 OFFICIAL_COMMIT=68c28b9 \
    PEER_ANCHOR=<path of shared/tools/peer_anchor.py> python scripts/bench_peers.py [--threads 2] \
        [--rounds 7] [--out results/bench/cpu-peers.json] [--only mobile,td3bc,...]

The peers' updates are built by the project's anchor script (``PEER_ANCHOR``: it wires OfflineRL-Kit and
CORL exactly as their own run scripts do; we load it as a module and collect its closures instead of
letting it time them) and, for the official ADMPO code, by the same few lines as
``shared/tools/official_anchor.py`` (its ``adm_step``). Nothing of theirs is copied: their modules are
imported from the given checkouts at run time. Ours are built on the same synthetic Hopper-shaped data
(the anchor's ``make_data``: 200k transitions, standard-normal states).

Why one process and interleaving: the hosts here are shared and their speed drifts by 10-30% within
minutes, so two separate runs compare two different machines. Each round times one block of every op,
ours then theirs, and the ratio is taken per round (median over rounds), as ``farm-bench`` does for
whole commands. A pair whose peer cannot be built (checkout missing) is reported with ``error``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBS, ACT = 11, 3


# ----------------------------------------------------------------------------------------- peers
def load_anchor():
    """The shared anchor script as a module whose ``bench`` collects ``(repo, op) -> fn``."""
    path = os.environ.get("PEER_ANCHOR") or str(ROOT.parent / "shared" / "tools" / "peer_anchor.py")
    spec = importlib.util.spec_from_file_location("peer_anchor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    collected: dict[str, object] = {}

    def collect(repo, op, fn, calls, repeats, warmup=3, setup=None, **meta):
        # freeze the closure's variables as they are now: the anchor reuses names (``trainer``, ``buf``)
        # for the next op, which is harmless when it times at once but not when the call comes later
        cells = tuple(types.CellType(c.cell_contents) for c in fn.__closure__ or ())
        collected[f"{repo}: {op}"] = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__,
                                                        fn.__defaults__, cells or None)

    mod.bench = collect
    mod.ARGS = argparse.Namespace(repeats=1, rollout_repeats=0, epoch_repeats=0, rollout_batch=50_000,
                                  rollout_len=5, tag="", threads=torch.get_num_threads())
    mod.install_stubs()
    return mod, collected


def official_adm_step(data, m: int = 5):
    """The official ADM training step (as shared/tools/official_anchor.py times it: buffer.sample_nstep,
    the GRU model, the Gaussian NLL, one Adam step), built from the OFFICIAL checkout."""
    root = os.environ["OFFICIAL"]
    sys.path.insert(0, root)
    import agent.admpo as admpo_module  # noqa: E402
    import gymnasium as gym
    from agent import AGENT
    from buffer import BUFFER
    from components.static_fns import STATICFUNC

    # Modern torch rejects numpy ints as layer sizes; the official code passes np.prod(...) (np.int64).
    admpo_module.np = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    admpo_module.np.prod = lambda x: int(np.prod(x))
    n = len(data["observations"])
    buf = BUFFER["seq-sample"](n, (OBS,), ACT)
    for i in range(n):  # store() maintains dist_from_end, as the official loader does
        buf.store(data["observations"][i], data["actions"][i], data["rewards"][i],
                  data["next_observations"][i], 0, bool(data["timeouts"][i]))
    agent = AGENT["admpo"](obs_shape=(OBS,), hidden_dims=[256, 256], action_dim=ACT,
                           action_space=gym.spaces.Box(-1, 1, (ACT,)), static_fn=STATICFUNC["hopper"],
                           max_arm_step=m, arm_hidden_dim=200, actor_freq=1, actor_lr=1e-4, critic_lr=3e-4,
                           model_lr=3e-4, alpha=0.05, auto_alpha=False, penalty_coef=1.0, device="cpu")
    agent.dynamics.set_mu_std(*buf.cal_mu_std())

    def step():
        k = np.random.randint(m) + 1
        seq = buf.sample_nstep(256, k)
        s0 = torch.as_tensor(seq["s"][:, 0])
        target = torch.as_tensor(np.concatenate((seq["s_"][:, -1] - seq["s"][:, 0], seq["r"][:, -1]), -1))
        mean, logvar = agent.dynamics(s0, torch.as_tensor(seq["a"]))
        loss = (((mean - target) ** 2) * torch.exp(-logvar)).mean() + logvar.mean()
        agent.dyna_optim.zero_grad()
        loss.backward()
        agent.dyna_optim.step()

    return step


# ----------------------------------------------------------------------------------------- ours
def our_ops(data) -> dict[str, object]:
    from adm.model import AnyStepDynamics
    from adm.training import WindowBatcher, adm_nll_loss
    from baselines.cql import CQL, CQLConfig
    from baselines.mobile import MOBILE, MOBILEConfig
    from baselines.mopo import MOPO, MOPOConfig
    from baselines.td3bc import TD3BC, TD3BCConfig
    from benchmark.rl.algorithm import Context
    from benchmark.rl.buffers import TransitionBuffer, WindowSampler
    from benchmark.rl.dataset import OfflineDataset
    from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig
    from benchmark.rl.sac import SAC, SACConfig

    ds = OfflineDataset(observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
                        next_observations=data["next_observations"], terminals=data["terminals"] > 0,
                        timeouts=data["timeouts"] > 0, env_key="hopper")
    ctx = Context(ds, "hopper", OBS, ACT, 1.0, torch.device("cpu"), seed=0)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ops = {}

    real = TransitionBuffer.from_dataset(ds)
    sac = SAC(OBS, ACT, SACConfig(auto_alpha=True))
    ops["sac"] = lambda: sac.update(real.sample(256, gen))

    def stepping(algo):
        state = {"step": 1}

        def step():
            algo.learn(algo.next_batch(state["step"]))
            state["step"] += 1
        return step

    def model_based(cls, cfg_cls):
        # rollouts never come due inside the timing (rollout_freq); the model buffer holds 250k random rows
        # as the anchor's fake buffer does
        algo = cls(cfg_cls(rollout_freq=10**9, rollout_batch_size=1000, rollout_length=5), ctx)
        rng = np.random.default_rng(1)
        nf = 250_000
        algo.fake.add(obs=rng.standard_normal((nf, OBS)), next_obs=rng.standard_normal((nf, OBS)),
                      act=rng.uniform(-1, 1, (nf, ACT)), rew=rng.standard_normal((nf, 1)),
                      done=np.zeros((nf, 1)))
        return stepping(algo)

    ops["mopo"] = model_based(MOPO, MOPOConfig)
    ops["mobile"] = model_based(MOBILE, MOBILEConfig)
    ops["td3bc"] = stepping(TD3BC(TD3BCConfig(), ctx))
    # CORL's hopper-medium-v2 CQL: 2x256 Q nets (q_n_hidden_layers 2 there? see the anchor's note), 10 actions
    ops["cql"] = stepping(CQL(CQLConfig(), ctx))

    model = EnsembleDynamics(OBS, ACT, EnsembleDynamicsConfig(), "hopper")
    obs, act = torch.as_tensor(ds.observations), torch.as_tensor(ds.actions)
    delta = torch.as_tensor(ds.next_observations) - obs
    target = torch.cat([delta, torch.as_tensor(ds.rewards)[:, None]], -1)

    def ensemble_step():
        idx = torch.randint(len(obs), (7, 256), generator=gen)
        model.train_step(obs[idx], act[idx], target[idx])
    ops["ensemble"] = ensemble_step

    m = 5
    adm = AnyStepDynamics(OBS, ACT)
    adm.set_normalizer(ds.observations, ds.actions)
    adm.train()
    batcher = WindowBatcher(WindowSampler(ds, "cpu"), len(ds) - 1000, torch.device("cpu"))
    adm_optim = torch.optim.Adam([p for p in adm.parameters() if p.requires_grad], lr=3e-4)

    def adm_step():  # the body of adm.training.train_adm's step (one k per minibatch, the code's rule)
        k = int(torch.randint(1, m + 1, (1,), generator=gen))
        s0, acts, _, tgt = batcher.train_batch(256, k, gen)
        mean, logvar = adm(s0, acts)
        loss = adm_nll_loss(mean, logvar, tgt, adm.max_logvar, adm.min_logvar)
        adm_optim.zero_grad(set_to_none=True)
        loss.backward()
        adm_optim.step()
    ops["adm"] = adm_step
    return ops


# ----------------------------------------------------------------------------------------- pairs
PAIRS = {  # our op -> the peer's op (the anchor's label) and calls per timed block
    "sac": ("OfflineRL-Kit: SACPolicy.learn (batch 256, incl. buffer.sample)", 50),
    "mopo": ("OfflineRL-Kit: MOPOPolicy.learn (12 real + 244 fake, incl. sampling)", 50),
    "mobile": ("OfflineRL-Kit: MOBILEPolicy.learn (12 real + 244 fake, incl. sampling)", 10),
    "ensemble": ("OfflineRL-Kit: EnsembleDynamics.learn one minibatch (7x[4x200], batch 256)", 50),
    "td3bc": ("CORL: TD3_BC.train (batch 256, incl. buffer.sample)", 50),
    "cql": ("CORL: ContinuousCQL.train (batch 256, incl. buffer.sample)", 10),
    "adm": ("official ADMPO: ADM train step (k ~ U{1..5}, batch 256, incl. sample_nstep)", 20),
}


def block_ms(fn, calls: int, clock) -> float:
    t = clock()
    for _ in range(calls):
        fn()
    return 1e3 * (clock() - t) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(PAIRS))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "cpu-peers.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # one thread: the thread's CPU time, which a loaded host hardly moves; more threads: wall time (the
    # CPU time of several threads counts their spin-waits)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    wanted = [k for k in PAIRS if not args.only or k in args.only.split(",")]

    anchor, theirs = load_anchor()
    data = anchor.make_data()
    errors = {}
    for section, build in (("kit", anchor.bench_kit), ("corl", anchor.bench_corl)):
        if any(PAIRS[k][0].startswith({"kit": "OfflineRL-Kit", "corl": "CORL"}[section]) for k in wanted):
            try:
                build(data)
            except Exception as e:  # a missing checkout: report the pair, time the rest
                errors[section] = f"{type(e).__name__}: {e}"
    if "adm" in wanted:
        try:
            theirs[PAIRS["adm"][0]] = official_adm_step(data)
        except Exception as e:
            errors["official"] = f"{type(e).__name__}: {e}"
    ours = our_ops(data)

    rows = {}
    for key in wanted:
        peer_op, calls = PAIRS[key]
        if peer_op not in theirs:
            rows[key] = {"peer": peer_op, "error": "; ".join(errors.values()) or "peer op not built"}
            continue
        fns = (ours[key], theirs[peer_op])
        for fn in fns:  # warm-up
            for _ in range(3):
                fn()
        ours_ms, peer_ms = [], []
        for _ in range(args.rounds):
            ours_ms.append(block_ms(fns[0], calls, clock))
            peer_ms.append(block_ms(fns[1], calls, clock))
        ratios = [a / b for a, b in zip(ours_ms, peer_ms)]
        rows[key] = {"peer": peer_op, "ours_ms_median": round(statistics.median(ours_ms), 3),
                     "peer_ms_median": round(statistics.median(peer_ms), 3),
                     "ratio_median": round(statistics.median(ratios), 3),
                     "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
                     "ours_ms": [round(x, 3) for x in ours_ms], "peer_ms": [round(x, 3) for x in peer_ms],
                     "calls_per_block": calls}
        r = rows[key]
        print(f"{key:9s} ours {r['ours_ms_median']:8.2f} ms  peer {r['peer_ms_median']:8.2f} ms  ratio "
              f"{r['ratio_median']:.3f} [{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]", flush=True)
    meta = {"threads": args.threads, "rounds": args.rounds, "clock": clock.__name__,
            "torch": torch.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "peers": {k: os.environ.get(k) for k in ("OFFLINERL_KIT", "CORL", "OFFICIAL")},
            # the checkouts are usually exports without .git: name their commits here
            "peer_commits": {k: os.environ.get(f"{k}_COMMIT") for k in ("OFFLINERL_KIT", "CORL", "OFFICIAL")},
            "command": " ".join(["python", *sys.argv]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "pairs": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
