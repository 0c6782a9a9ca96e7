"""pytest-benchmark timings for the any-step model (run: ``python -m pytest tests/bench_adm.py``).

* one ADM training step (hopper sizes, hidden 200, batch 256, k ~ U{1..5});
* all-k prediction (k = 1..5) from a 5-step history: carried GRU vs one GRU pass per k;
* one ADMPO-OFF rollout (starts x H=5, m=5, penalty on, dropout on): carried (fast) vs the official
  per-k loop, same math (tests/test_adm_rollout.py checks they agree);
* one ADMPO-OFF epoch at smoke size (rollout + 25 SAC updates + 2 evaluation episodes).

Batch sizes default to 10,000 rollout starts so the file runs in minutes on 2 shared CPU cores; set
``ADM_BENCH_BATCH=50000`` for the official rollout batch size. Speedups are in ``extra_info``.
"""

import os

import pytest
import torch

from adm.admpo_off import ADMPOOff, ADMPOOffConfig
from adm.model import AnyStepDynamics
from adm.rollout import RolloutConfig, rollout
from adm.training import adm_nll_loss
from benchmark.config import resolve_config
from benchmark.data.local import build_local_dataset
from benchmark.envs import make_env
from benchmark.rl.algorithm import Context
from benchmark.rl.trainers import train_offline
from benchmark.scores import normalize_return

pytestmark = pytest.mark.benchmark
BATCH = int(os.environ.get("ADM_BENCH_BATCH", "10000"))
OBS, ACT, M, H = 11, 3, 5, 5
ROUNDS = int(os.environ.get("ADM_BENCH_ROUNDS", "3"))
_times: dict[str, float] = {}


def hopper_model():
    torch.manual_seed(0)
    return AnyStepDynamics(OBS, ACT)


def test_adm_train_step(benchmark):
    model = hopper_model()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    g = torch.Generator().manual_seed(0)

    def step():
        k = int(torch.randint(1, M + 1, (1,), generator=g))
        s, a, y = torch.randn(256, OBS), torch.randn(256, k, ACT), torch.randn(256, OBS + 1)
        mean, logvar = model(s, a)
        loss = adm_nll_loss(mean, logvar, y, model.max_logvar, model.min_logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("impl", ["carry", "per_k"])
def test_all_k_prediction(benchmark, impl):
    model = hopper_model().eval()
    obs, act = torch.randn(BATCH, M, OBS), torch.randn(BATCH, M, ACT)

    @torch.no_grad()
    def carry():
        return model.predict_all_k(obs, act)

    @torch.no_grad()
    def per_k():
        return [model(obs[:, -k], act[:, -k:]) for k in range(1, M + 1)]

    benchmark.pedantic(carry if impl == "carry" else per_k, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, f"all_k_{impl}", "all_k_carry", "all_k_per_k")


@pytest.mark.parametrize("impl", ["numpy_sfc64", "torch_uniform"])
def test_dropout_mask_draw(benchmark, impl):
    """One rollout step's keep flags for a chunk of 1000 (4 blocks x (1 + m) x 1000 x 200): the rollout's
    numpy SFC64 streams (CPU) against torch's ``uniform_ < 1 - p`` (used on other devices)."""
    from adm.rollout import _Randomness

    model = hopper_model()
    rand = _Randomness(model, RolloutConfig(max_step=M, length=H), torch.Generator().manual_seed(0))
    if impl == "torch_uniform":
        rand.mask_gens = [torch.Generator().manual_seed(i) for i in range(rand.MASK_STREAMS)]
    benchmark.pedantic(lambda: rand.masks(1 + M, 1000), rounds=20, iterations=1, warmup_rounds=2)
    _record(benchmark, f"masks_{impl}", "masks_numpy_sfc64", "masks_torch_uniform")


@pytest.mark.parametrize("impl", ["carry", "loop"])
def test_rollout_fast_vs_per_k_loop(benchmark, impl):
    model = hopper_model()
    g = torch.Generator().manual_seed(0)
    hist_obs = torch.randn(BATCH, M - 1, OBS, generator=g)
    hist_act = torch.rand(BATCH, M - 1, ACT, generator=g)
    start = torch.randn(BATCH, OBS, generator=g)
    cfg = RolloutConfig(max_step=M, length=H, penalty_coef=1.0, impl=impl, chunk_size=1000)
    never = lambda o, a, n: torch.zeros(o.shape[0], dtype=torch.bool)  # every rollout runs H steps
    policy = lambda o: torch.tanh(torch.randn(o.shape[0], ACT))

    def run():
        return rollout(model, policy, hist_obs, hist_act, start, cfg, never, torch.Generator().manual_seed(1))

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    _record(benchmark, f"rollout_{impl}", "rollout_carry", "rollout_loop")


def test_admpo_off_epoch_smoke(benchmark):
    ds = build_local_dataset("hopper", "random", size=3000)
    cfg, _ = resolve_config(ADMPOOffConfig, None, (), "smoke", {"epochs": 1})
    ctx = Context(ds, "hopper", OBS, ACT, 1.0, torch.device("cpu"), 0)
    algo = ADMPOOff(cfg, ctx)
    algo.setup = lambda: {}  # time the epoch, not model training
    algo.dynamics = hopper_model()
    algo.dynamics.set_normalizer(ds.observations, ds.actions)

    def epoch():
        return train_offline(algo, cfg, lambda: make_env("hopper"), lambda r: normalize_return("hopper", r),
                             progress=False)

    benchmark.pedantic(epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)


def _record(benchmark, name, fast, slow):
    _times[name] = benchmark.stats.stats.mean
    if fast in _times and slow in _times:
        benchmark.extra_info["speedup_vs_per_k"] = round(_times[slow] / _times[fast], 2)
        ratio = _times[slow] / _times[fast]
        print(f"\n{fast} {_times[fast]:.3f}s  {slow} {_times[slow]:.3f}s  speedup {ratio:.2f}x")
