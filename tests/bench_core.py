"""pytest-benchmark: the shared SAC update and the BC / TD3+BC updates at batch 256 (one torch thread).

Run with `tox -e bench` (or `pytest tests/bench_core.py --benchmark-only -p no:xdist`).
"""

import pytest
import torch

from baselines.bc import BC, BCConfig
from baselines.td3bc import TD3BC, TD3BCConfig
from benchmark.data.local import build_local_dataset
from benchmark.rl.algorithm import Context
from benchmark.rl.sac import SAC, SACConfig


@pytest.fixture(scope="module")
def ctx():
    ds = build_local_dataset("walker2d", "random", size=5000, seed=0)
    return Context(ds, "walker2d", ds.obs_dim, ds.act_dim, 1.0, torch.device("cpu"), seed=0)


def test_sac_update(benchmark, ctx):
    torch.manual_seed(0)
    sac = SAC(ctx.obs_dim, ctx.act_dim, SACConfig(auto_alpha=True))
    from benchmark.rl.buffers import TransitionBuffer

    buf = TransitionBuffer.from_dataset(ctx.dataset)
    gen = torch.Generator().manual_seed(0)
    benchmark(lambda: sac.update(buf.sample(256, gen)))


@pytest.mark.parametrize("algo_cls, cfg_cls", [(BC, BCConfig), (TD3BC, TD3BCConfig)], ids=["bc", "td3bc"])
def test_offline_update(benchmark, ctx, algo_cls, cfg_cls):
    torch.manual_seed(0)
    algo = algo_cls(cfg_cls(), ctx)
    state = {"step": 0}

    def step():
        algo.learn(algo.next_batch(state["step"]))
        state["step"] += 1

    benchmark(step)


@pytest.mark.parametrize("env_key", ["hopper", "walker2d", "halfcheetah"])
def test_env_step(benchmark, env_key):
    """Raw simulator throughput: one gymnasium MuJoCo v4 step with a uniform action (resets included)."""
    import numpy as np

    from benchmark.envs import make_env

    env = make_env(env_key, seed=0)
    rng = np.random.default_rng(0)
    high = env.action_space.high
    env.reset(seed=0)

    def step():
        _, _, term, trunc, _ = env.step(rng.uniform(-high, high))
        if term or trunc:
            env.reset()

    benchmark(step)
