"""EDAC / SAC-N: the diversity term against hand-computed cases, the init, and a seeded learning test."""

import itertools

import numpy as np
import pytest
import torch
from helpers import random_batch, random_policy_score

from baselines.edac import EDAC, EDACConfig, EDACLearner, diversity_loss
from benchmark.data.local import build_local_dataset
from benchmark.rl.algorithm import Context
from benchmark.rl.trainers import train_offline
from benchmark.tasks import resolve_task

OBS, ACT = 3, 2


def test_diversity_loss_matches_pairwise_cosines():
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(4, 3, 2, generator=g)  # [N, B, A]
    expected = []
    for b in range(3):
        total = 0.0
        for i, j in itertools.permutations(range(4), 2):
            gi, gj = grads[i, b].numpy(), grads[j, b].numpy()
            total += np.dot(gi, gj) / (np.linalg.norm(gi) * np.linalg.norm(gj))
        expected.append(total / 3)
    assert diversity_loss(grads).item() == pytest.approx(np.mean(expected), rel=1e-5)


def test_diversity_loss_extremes():
    same = torch.ones(3, 2, 2)  # every critic has the same action-gradient: all cosines 1
    assert diversity_loss(same).item() == pytest.approx(3 * 2 / 2)
    opposite = torch.stack([torch.ones(1, 2), -torch.ones(1, 2)])  # two critics, cosine -1
    assert diversity_loss(opposite).item() == pytest.approx(-2.0)


def test_critic_loss_with_linear_critics_hand_computed(monkeypatch):
    """Linear critics Q_i = w_i . [s, a] + c_i have constant action-gradients w_i[a-part]: the loss is
    sum_i mean (Q_i - y)^2 + eta * sum_{i != j} cos(w_i^a, w_j^a) / (N - 1)."""
    n, eta = 3, 2.0
    learner = EDACLearner(OBS, ACT, EDACConfig(hidden=(), num_critics=n, eta=eta, edac_init=False))
    w = learner.critic.net.layers[0].weight.detach()[:, :, 0].numpy()  # [N, OBS + ACT]
    c = learner.critic.net.layers[0].bias.detach().view(-1).numpy()
    batch = random_batch(OBS, ACT, 5)
    target = torch.linspace(-1, 1, 5).view(5, 1)
    monkeypatch.setattr(learner, "critic_target_value", lambda bt: target)
    loss, info = learner.critic_loss(batch)
    x = torch.cat([batch["obs"], batch["act"]], -1).numpy()
    bellman = sum(np.mean((x @ w[i] + c[i] - target.view(-1).numpy()) ** 2) for i in range(n))
    wa = w[:, OBS:]
    cos = sum(
        np.dot(wa[i], wa[j]) / (np.linalg.norm(wa[i]) * np.linalg.norm(wa[j]))
        for i, j in itertools.permutations(range(n), 2)
    )
    assert loss.item() == pytest.approx(bellman + eta * cos / (n - 1), rel=1e-5)
    assert info["diversity_loss"] == pytest.approx(cos / (n - 1), rel=1e-5)


def test_diversity_gradient_reaches_every_critic():
    learner = EDACLearner(OBS, ACT, EDACConfig(hidden=(8,), num_critics=4, eta=1.0))
    loss, _ = learner.critic_loss(random_batch(OBS, ACT, 6))
    loss.backward()
    grad = learner.critic.net.layers[0].weight.grad
    assert grad is not None and (grad.abs().sum(dim=(1, 2)) > 0).all()


def test_sac_n_has_no_diversity_term():
    learner = EDACLearner(OBS, ACT, EDACConfig(hidden=(8,), num_critics=5, eta=0.0))
    info = learner.update(random_batch(OBS, ACT, 6))
    assert "diversity_loss" not in info and learner.critic.n == 5


def test_edac_init_and_bad_configs():
    learner = EDACLearner(OBS, ACT, EDACConfig(hidden=(8, 8), num_critics=3))
    layers = learner.critic.net.layers
    assert torch.all(layers[0].bias == 0.1) and torch.all(layers[1].bias == 0.1)
    assert layers[-1].weight.abs().max() <= 3e-3 and layers[-1].bias.abs().max() <= 3e-3
    assert torch.equal(learner.critic_target.net.layers[-1].weight, layers[-1].weight)
    with pytest.raises(ValueError, match="num_critics >= 2"):
        EDACLearner(OBS, ACT, EDACConfig(num_critics=1, eta=1.0))
    with pytest.raises(ValueError, match="eta"):
        EDACLearner(OBS, ACT, EDACConfig(num_critics=2, eta=-1.0))


@pytest.mark.slow
def test_edac_beats_random_policy_on_local_hopper_random():
    """1000 steps, 10 small critics, eta 1: the last two evaluations average at least 1.0 normalized
    point above a uniform-random policy (~1.4)."""
    torch.manual_seed(0)
    task = resolve_task("local/hopper-random")
    ds = build_local_dataset("hopper", "random", size=3000)
    ctx = Context(ds, "hopper", ds.obs_dim, ds.act_dim, 1.0, torch.device("cpu"), seed=0)
    cfg = EDACConfig(
        epochs=4, steps_per_epoch=250, eval_episodes=5, batch_size=128, hidden=(64, 64),
        num_critics=10, eta=1.0, actor_lr=3e-4, seed=0,
    )
    out = train_offline(EDAC(cfg, ctx), cfg, task.make_env, task.normalize, progress=False)
    final = np.mean([p["score"] for p in out["curve"][-2:]])
    assert final >= random_policy_score(task) + 1.0, [p["score"] for p in out["curve"]]
