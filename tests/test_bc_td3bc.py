"""BC and TD3+BC: losses against hand-computed cases, and mechanics on a tiny dataset."""

import numpy as np
import pytest
import torch

from baselines.bc import BC, BCConfig, bc_loss
from baselines.td3bc import TD3BC, TD3BCConfig, td3bc_actor_loss
from benchmark.data.local import build_local_dataset
from benchmark.rl.algorithm import Context


def test_bc_loss_hand_case():
    pred = torch.tensor([[0.5, -0.5], [1.0, 0.0]])
    data = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    # squared errors 0.25, 0.25, 1, 1 -> mean 0.625
    assert bc_loss(pred, data).item() == pytest.approx(0.625)


def test_td3bc_actor_loss_hand_case():
    q = torch.tensor([[2.0], [-4.0]])
    pi = torch.tensor([[0.5], [0.0]])
    a = torch.tensor([[0.0], [1.0]])
    loss, lmbda = td3bc_actor_loss(q, pi, a, alpha=2.5)
    # lambda = 2.5 / mean|Q| = 2.5 / 3; loss = -lambda * mean Q + mean (pi - a)^2 = -(2.5/3)(-1) + 0.625
    assert lmbda.item() == pytest.approx(2.5 / 3)
    assert loss.item() == pytest.approx(2.5 / 3 + 0.625)


@pytest.fixture(scope="module")
def ctx():
    ds = build_local_dataset("hopper", "random", size=1500, seed=0)
    return Context(ds, "hopper", ds.obs_dim, ds.act_dim, 1.0, torch.device("cpu"), seed=0)


def test_bc_fits_dataset_actions(ctx):
    torch.manual_seed(0)
    algo = BC(BCConfig(hidden=(64, 64), lr=1e-3), ctx)
    first = algo.learn(algo.next_batch(0))["bc_loss"]
    for step in range(300):
        last = algo.learn(algo.next_batch(step))["bc_loss"]
    # uniform actions on [-1, 1]^3 have variance 1/3: the best constant policy reaches ~0.33
    assert last < first and last < 0.4
    act = algo.act(ctx.dataset.observations[:4])
    assert act.shape == (4, 3) and np.all(np.abs(act) <= 1.0)


def test_td3bc_delays_actor_and_moves_targets(ctx):
    torch.manual_seed(0)
    algo = TD3BC(TD3BCConfig(hidden=(32, 32)), ctx)
    target_before = [p.clone() for p in algo.actor_target.parameters()]
    info1 = algo.learn(algo.next_batch(0))
    assert "actor_loss" not in info1  # policy_freq = 2: no actor update on the first step
    info2 = algo.learn(algo.next_batch(1))
    assert "actor_loss" in info2 and info2["lmbda"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(target_before, algo.actor_target.parameters()))


RANDOM_HOPPER_SCORE = 1.0  # a uniform-random policy scores ~0.6-1 on hopper (D4RL random reference -20.3)


def _train_and_score(algo, steps: int, episodes: int = 3) -> float:
    from benchmark import scores
    from benchmark.envs import make_env
    from benchmark.rl.trainers import evaluate

    for step in range(steps):
        algo.learn(algo.next_batch(step))
    mean, _, _ = evaluate(lambda o: algo.act(o), lambda: make_env("hopper"), episodes, seed=0)
    return scores.normalize_return("hopper", mean)


@pytest.fixture(scope="module")
def medium_ctx():
    ds = build_local_dataset("hopper", "medium", size=5000, seed=0)
    return Context(ds, "hopper", ds.obs_dim, ds.act_dim, 1.0, torch.device("cpu"), seed=0)


def test_bc_learns_on_local_medium(medium_ctx):
    """Seeded: 1500 BC steps on 5k transitions of local/hopper-medium beat a random policy by >= 10 points."""
    torch.manual_seed(0)
    score = _train_and_score(BC(BCConfig(seed=0), medium_ctx), 1500)
    assert score > RANDOM_HOPPER_SCORE + 10, score


@pytest.mark.slow
def test_td3bc_learns_on_local_medium(medium_ctx):
    """Seeded: 3000 TD3+BC steps on local/hopper-medium beat a random policy by >= 10 points."""
    torch.manual_seed(0)
    score = _train_and_score(TD3BC(TD3BCConfig(seed=0), medium_ctx), 3000)
    assert score > RANDOM_HOPPER_SCORE + 10, score
