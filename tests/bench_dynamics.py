"""pytest-benchmark: the ensemble dynamics model and the model-based policy updates (one torch thread).

Run with ``python -m pytest tests/bench_dynamics.py --benchmark-only -p no:xdist``; set
``ADMBENCH_BENCH_DEVICE=cuda`` to time on a GPU. Hopper sizes (obs 11, act 3) on synthetic data (a
healthy hopper height so rollouts rarely terminate): timings do not depend on the values, and the
file then needs no MuJoCo. Reference numbers for OfflineRL-Kit on this machine class (from the task brief):
ensemble train step 28 ms, MOBILE policy update 124 ms, MOPO rollout of 50k starts x 5 steps 18.8 s.
"""

import os

import pytest
import torch
from helpers import standing_hopper_context

from baselines.mobile import MOBILE, MOBILEConfig
from baselines.mopo import MOPO, MOPOConfig
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig

pytestmark = pytest.mark.benchmark


DEVICE = torch.device(os.environ.get("ADMBENCH_BENCH_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def ctx():
    return standing_hopper_context(5000, DEVICE)


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def test_ensemble_train_step(benchmark, ctx):
    """One Adam step of the 7-member 4x200 ensemble on a batch of 256 per member."""
    ds = ctx.dataset
    model = EnsembleDynamics(ds.obs_dim, ds.act_dim, EnsembleDynamicsConfig(), "hopper")
    obs, act = torch.as_tensor(ds.observations), torch.as_tensor(ds.actions)
    target = torch.cat(
        [torch.as_tensor(ds.next_observations) - obs, torch.as_tensor(ds.rewards)[:, None]], -1
    )
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(len(obs), (7, 256), generator=gen)
        model.train_step(obs[idx], act[idx], target[idx])

    benchmark(step)


def test_ensemble_model_step_50k(benchmark, ctx):
    """One model step (all members, sampling, elite choice, termination) for 50,000 states."""
    ds = ctx.dataset
    model = EnsembleDynamics(ds.obs_dim, ds.act_dim, EnsembleDynamicsConfig(), "hopper", DEVICE)
    idx = torch.randint(len(ds), (50_000,), generator=torch.Generator().manual_seed(0))
    obs = torch.as_tensor(ds.observations)[idx].to(DEVICE)
    act = torch.as_tensor(ds.actions)[idx].to(DEVICE)

    def step():
        model.step(obs, act)
        _sync()

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)


def _model_based(algo_cls, cfg, ctx):
    torch.manual_seed(0)
    algo = algo_cls(cfg, ctx)  # untrained model: the timing does not depend on its weights
    algo.fake.add(**algo.rollout()[0])
    return algo


def test_mopo_rollout_50k_h5(benchmark, ctx):
    """A full MOPO rollout: 50,000 dataset starts x 5 model steps with the policy and the penalty."""
    cfg = MOPOConfig(rollout_batch_size=50_000, rollout_length=5)
    torch.manual_seed(0)
    algo = MOPO(cfg, ctx)
    benchmark.pedantic(algo.rollout, rounds=1, iterations=1, warmup_rounds=1)  # .item() syncs


@pytest.mark.parametrize(
    "algo_cls, cfg_cls", [(MOPO, MOPOConfig), (MOBILE, MOBILEConfig)], ids=["mopo", "mobile"]
)
def test_policy_update(benchmark, ctx, algo_cls, cfg_cls):
    """One policy update at batch 256 (5% real); MOBILE includes its 10-sample x 5-elite penalty."""
    algo = _model_based(algo_cls, cfg_cls(rollout_batch_size=2000, rollout_length=5), ctx)
    state = {"step": 1}

    def step():
        algo.learn(algo.next_batch(state["step"]))
        state["step"] += 1

    benchmark(step)
