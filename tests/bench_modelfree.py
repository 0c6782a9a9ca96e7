"""One CQL / EDAC update (critic + actor + temperature) at batch 256 with the paper-scale networks
(pytest-benchmark).

Run: ``python -m pytest tests/bench_modelfree.py -m benchmark`` (also marked ``slow``, so a
``-m "not slow"`` run skips it). CQL: 2 critics of 3x256, 10 sampled actions per proposal, so every
update evaluates 2 x (256 + 3 x 10 x 256) state-actions in one batched critic call. EDAC: 3x256 critics,
N = 10 (CORL's halfcheetah/walker2d setting) and N = 50 (hopper), eta = 1. Hopper dimensions (11, 3).
Pass ``--benchmark-json`` to keep the numbers; ``BENCH_DEVICE=cuda`` times on a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

from baselines.cql import CQLConfig, CQLLearner
from baselines.edac import EDACConfig, EDACLearner

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

OBS, ACT, BATCH = 11, 3, 256
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")


def _batch():
    g = torch.Generator().manual_seed(0)
    b = {
        "obs": torch.randn(BATCH, OBS, generator=g),
        "act": torch.rand(BATCH, ACT, generator=g) * 2 - 1,
        "rew": torch.randn(BATCH, 1, generator=g),
        "next_obs": torch.randn(BATCH, OBS, generator=g),
        "done": torch.zeros(BATCH, 1),
    }
    return {k: v.to(DEVICE) for k, v in b.items()}


def _timed_update(learner, batch):
    def step():
        learner.update(batch)
        if DEVICE.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def test_bench_cql_update(benchmark):
    torch.manual_seed(0)
    learner = CQLLearner(OBS, ACT, CQLConfig(), act_scale=1.0, device=DEVICE)
    step = _timed_update(learner, _batch())
    step()  # warm-up (allocations, first Adam step)
    benchmark.extra_info.update(
        device=DEVICE, batch=BATCH, critics=2, sampled_actions=10, threads=torch.get_num_threads()
    )
    benchmark.pedantic(step, rounds=5, iterations=1)


@pytest.mark.parametrize("num_critics", [10, 50])
def test_bench_edac_update(benchmark, num_critics):
    torch.manual_seed(0)
    cfg = EDACConfig(num_critics=num_critics, eta=1.0)
    learner = EDACLearner(OBS, ACT, cfg, act_scale=1.0, device=DEVICE)
    step = _timed_update(learner, _batch())
    step()
    benchmark.extra_info.update(
        device=DEVICE, batch=BATCH, critics=num_critics, threads=torch.get_num_threads()
    )
    benchmark.pedantic(step, rounds=5 if num_critics <= 10 else 2, iterations=1)
