"""The speed changes of issue 19 keep the math: each fast path against the plain one it replaced."""

import copy

import pytest
import torch
from helpers import standing_hopper_context

import baselines.mobile as mobile_module
from baselines.mobile import MOBILE, MOBILEConfig
from benchmark.rl.nets import EnsembleMLP


def test_ensemble_member_slice_equals_the_full_pass():
    torch.manual_seed(0)
    net = EnsembleMLP(2, 14, 1, (256, 256))
    x = torch.randn(256, 14)
    full = net(x)
    q1 = net(x, members=slice(0, 1))
    q2 = net(x, members=slice(1, 2))
    assert q1.shape == (1, 256, 1)
    # one batched matmul of 1 vs 2 members may round differently in the last bit, never more
    torch.testing.assert_close(q1[0], full[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(q2[0], full[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rows", [1024, 4096])
def test_mobile_penalty_in_row_blocks_equals_one_pass(monkeypatch, rows):
    """The cache-sized row blocks of MOBILE's penalty reproduce the one-pass penalty exactly, with the
    same global random stream (the actor's draws)."""
    ctx = standing_hopper_context(2000)
    torch.manual_seed(0)
    algo = MOBILE(MOBILEConfig(rollout_batch_size=200, rollout_length=1), ctx)
    obs = torch.as_tensor(ctx.dataset.observations[:244])
    act = torch.as_tensor(ctx.dataset.actions[:244])

    def penalty(rows_per_pass):
        monkeypatch.setattr(mobile_module, "PENALTY_ROWS_PER_PASS", rows_per_pass)
        torch.manual_seed(7)
        gen = copy.deepcopy(algo.dynamics)  # same model, fresh copy of any internal state
        return algo.sac.model_uncertainty(gen, obs, act, num_samples=10)

    one_pass = penalty(10**9)
    blocks = penalty(rows)
    assert one_pass.shape == (244, 1)
    assert torch.equal(blocks, one_pass)
    assert float(one_pass.abs().sum()) > 0.0  # the untrained model still gives a spread
