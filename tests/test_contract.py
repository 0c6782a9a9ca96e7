"""The algorithm contract, for every registered algorithm at smoke size (d3rlpy's ``algo_tester``, over the
whole registry): built from its config and a context, ``setup`` runs, ``learn`` returns finite scalars,
``act`` returns actions of the right shape inside the action box, and the same seed gives the same first
loss. Plus the budget contract: budgets only name declared fields of the config class."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from helpers import smoke_algorithm, smoke_sizes

from benchmark import registry
from benchmark.config import budget_overrides
from benchmark.rl.buffers import MixedBatch, TransitionBuffer, mix


def _first_step(algo_name: str, tiny_data) -> tuple[dict, np.ndarray, float, int]:
    """Build, set up, take one gradient step and act: (learn info, actions, act_scale, act_dim)."""
    algo, obs, act_scale, act_dim = smoke_algorithm(algo_name, smoke_sizes(algo_name))
    info = algo.learn(algo.next_batch(0))
    actions = np.stack([algo.act(x, deterministic=d) for x in obs for d in (True, False)])
    return info, actions, act_scale, act_dim


@pytest.mark.parametrize("algo_name", sorted(registry.algorithms()))
def test_every_algorithm_fulfils_the_contract(algo_name, tiny_data):
    info, actions, scale, act_dim = _first_step(algo_name, tiny_data)
    assert isinstance(info, dict) and info, "learn returns its diagnostics"
    for key, value in info.items():
        # numbers, or scalar tensors left on the device (the loops read a window of them at once)
        if isinstance(value, torch.Tensor):
            assert value.numel() == 1 and not value.requires_grad, (key, value)
            value = float(value)
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert math.isfinite(value), (key, value)
    assert actions.shape == (14, act_dim) and np.isfinite(actions).all()
    assert (np.abs(actions) <= scale + 1e-6).all()
    again, _, _, _ = _first_step(algo_name, tiny_data)
    loss = sorted(k for k in info if "loss" in k) or sorted(info)
    assert float(again[loss[0]]) == float(info[loss[0]]), "the same seed gives the same first loss"


@pytest.mark.parametrize("algo_name", sorted(registry.algorithms()))
def test_budgets_name_declared_fields_only(algo_name):
    config_cls = registry.get(algo_name).config_cls
    declared = {f.name for f in dataclasses.fields(config_cls)}
    for budget in ("smoke", "short", "paper"):
        unknown = set(budget_overrides(config_cls, budget)) - declared
        assert not unknown, f"{config_cls.__name__} budget {budget} sets undeclared fields {sorted(unknown)}"


def test_mix_labels_real_and_model_rows_and_draws_as_before():
    real, model = TransitionBuffer(50, 2, 1), TransitionBuffer(50, 2, 1)
    for buf, sign in ((real, 1.0), (model, -1.0)):
        n = 40
        buf.add(obs=sign * np.ones((n, 2), np.float32), act=np.zeros((n, 1), np.float32),
                rew=np.zeros((n, 1), np.float32), next_obs=np.zeros((n, 2), np.float32),
                done=np.zeros((n, 1), np.float32))
    batch = mix(real, model, 10, 0.3, torch.Generator().manual_seed(0))
    assert isinstance(batch, MixedBatch) and (batch.n_real, batch.n_model) == (3, 7)
    assert (batch["obs"][batch.real_rows] == 1).all() and (batch["obs"][batch.model_rows] == -1).all()
    # the same draws as sampling the real part, then the model part, from one generator
    g = torch.Generator().manual_seed(0)
    r, m = real.sample(3, g), model.sample(7, g)
    assert torch.equal(batch["obs"], torch.cat([r["obs"], m["obs"]]))
    empty = TransitionBuffer(5, 2, 1)
    only_real = mix(real, empty, 10, 0.3, torch.Generator().manual_seed(0))
    assert (only_real.n_real, only_real.n_model) == (10, 0)
