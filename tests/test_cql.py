"""CQL: the conservative term against hand-computed cases, its batching, the Lagrange switch, and a
seeded learning test on a small local hopper-random set."""

import math

import numpy as np
import pytest
import torch
from helpers import random_batch, random_policy_score

from baselines.cql import CQL, CQLConfig, CQLLearner, conservative_gap, sample_repeated
from benchmark.data.local import build_local_dataset
from benchmark.rl.algorithm import Context
from benchmark.rl.trainers import train_offline
from benchmark.tasks import resolve_task

OBS, ACT = 3, 2


def _linear_learner(**kw) -> CQLLearner:
    """Critics with no hidden layer: Q_i(s, a) = w_i . [s, a] + c_i, weights set by hand."""
    torch.manual_seed(0)
    learner = CQLLearner(OBS, ACT, CQLConfig(hidden=(), **kw), act_scale=1.0)
    layer = learner.critic.net.layers[0]
    with torch.no_grad():
        weights = torch.tensor([[0.5, -1.0, 0.2, 1.0, -0.5], [-0.3, 0.4, 0.1, -0.7, 0.9]])
        layer.weight.copy_(weights.unsqueeze(-1))
        layer.bias.copy_(torch.tensor([0.1, -0.2]).view(2, 1, 1))
    return learner


def _q(learner, s, a):
    w = learner.critic.net.layers[0].weight.detach()[:, :, 0].numpy()
    c = learner.critic.net.layers[0].bias.detach().view(-1).numpy()
    return [float(np.dot(w[i], np.concatenate([s, a])) + c[i]) for i in range(2)]


def test_conservative_gap_matches_manual_logsumexp():
    q = torch.tensor([[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]])  # [n=1, B=2, M=3]
    logd = torch.tensor([[[0.1, -0.2, 0.3], [0.0, 0.5, -0.5]]])
    q_data = torch.tensor([[[0.7], [-0.1]]])
    t = 2.0
    manual = []
    for b in range(2):
        manual.append(t * math.log(sum(math.exp((q[0, b, m] - logd[0, b, m]).item() / t) for m in range(3))))
    expected = np.mean(manual) - (0.7 - 0.1) / 2
    assert conservative_gap(q, logd, q_data, t).item() == pytest.approx(expected, rel=1e-6)


def test_critic_loss_hand_computed(monkeypatch):
    """Bellman + cql_weight * (T logsumexp over the 3M importance-weighted sampled values - Q(data)),
    per critic, summed; sampled actions and targets fixed so every number is known."""
    m, b, w_cql, temp = 2, 3, 3.0, 1.5
    learner = _linear_learner(num_sampled_actions=m, cql_weight=w_cql, temperature=temp)
    batch = random_batch(OBS, ACT, b)
    g = torch.Generator().manual_seed(1)
    actions = torch.rand(3, b * m, ACT, generator=g) * 2 - 1  # proposal, state-major, sample-minor
    log_density = torch.randn(3, b, m, generator=g)
    target = torch.tensor([[1.0], [0.0], [-0.5]])
    monkeypatch.setattr(learner, "sampled_actions", lambda o, n: (actions, log_density))
    monkeypatch.setattr(learner, "critic_target_value", lambda bt: target)
    loss, _ = learner.critic_loss(batch)

    s, a = batch["obs"].numpy(), batch["act"].numpy()
    expected = 0.0
    for i in range(2):
        q_data = [_q(learner, s[j], a[j])[i] for j in range(b)]
        bellman = np.mean([(q_data[j] - target[j, 0].item()) ** 2 for j in range(b)])
        lse = []
        for j in range(b):
            vals = [
                _q(learner, s[j], actions[p, j * m + k].numpy())[i] - log_density[p, j, k].item()
                for p in range(3)
                for k in range(m)
            ]
            lse.append(temp * math.log(sum(math.exp(v / temp) for v in vals)))
        expected += bellman + w_cql * (np.mean(lse) - np.mean(q_data))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_sampled_actions_layout_and_densities(monkeypatch):
    """Uniform actions in the box with density (2 scale)^-|A|; policy actions at s and at s' in
    state-major order (a near-deterministic policy whose mean is the first |A| state coordinates)."""
    learner = CQLLearner(OBS, ACT, CQLConfig(hidden=(8,), num_sampled_actions=3), act_scale=2.0)
    near_deterministic = lambda x: (x[:, :ACT], torch.full_like(x[:, :ACT], -20.0))
    monkeypatch.setattr(learner.actor, "dist_params", near_deterministic)
    batch = random_batch(OBS, ACT, 4)
    actions, logd = learner.sampled_actions(batch["obs"], batch["next_obs"])
    assert actions.shape == (3, 12, ACT) and logd.shape == (3, 4, 3)
    assert actions[0].abs().max() <= 2.0
    assert torch.allclose(logd[0], torch.full((4, 3), -ACT * math.log(4.0)))
    squash = lambda x: 2.0 * torch.tanh(x[:, :ACT]).repeat_interleave(3, 0)
    assert torch.allclose(actions[1], squash(batch["obs"]), atol=1e-6)
    assert torch.allclose(actions[2], squash(batch["next_obs"]), atol=1e-6)


def test_repeated_samples_have_the_actors_density():
    """One actor forward per distinct state, M draws each: same log-density as the actor's own."""
    torch.manual_seed(0)
    learner = CQLLearner(OBS, ACT, CQLConfig(hidden=(8,)), act_scale=1.5)
    obs = torch.randn(5, OBS)
    act, logp = sample_repeated(learner.actor, obs, 4)
    assert act.shape == (20, ACT) and act.abs().max() <= 1.5
    with torch.no_grad():
        expected = learner.actor.log_prob(obs.repeat_interleave(4, 0), act)
    assert torch.allclose(logp, expected, atol=1e-3)
    assert not torch.allclose(act[0], act[1])  # distinct draws for the same state


def test_one_batched_critic_call_per_critic_loss():
    learner = CQLLearner(OBS, ACT, CQLConfig(hidden=(16,), num_sampled_actions=5), act_scale=1.0)
    calls = []
    learner.critic.register_forward_hook(lambda mod, inp, out: calls.append(out.shape))
    learner.critic_loss(random_batch(OBS, ACT, 6))
    # data actions (6) + 3 proposals x 5 actions x 6 states, all critics at once
    assert calls == [torch.Size([2, 6 + 3 * 5 * 6, 1])]


@pytest.mark.parametrize("threshold, direction", [(1e3, -1), (-1e3, 1)])
def test_lagrange_multiplier_moves_against_the_gap(threshold, direction):
    learner = _linear_learner(with_lagrange=True, lagrange_threshold=threshold, cql_alpha_lr=0.1)
    before = learner.log_cql_alpha.item()
    info = learner.update(random_batch(OBS, ACT, 8))
    assert "cql_alpha" in info
    assert np.sign(learner.log_cql_alpha.item() - before) == direction


def test_importance_sample_switch_changes_the_term(monkeypatch):
    losses = []
    for flag in (True, False):
        learner = _linear_learner(importance_sample=flag)
        monkeypatch.setattr(learner, "critic_target_value", lambda bt: torch.zeros(4, 1))
        torch.manual_seed(0)
        losses.append(learner.critic_loss(random_batch(OBS, ACT, 4))[0].item())
    assert losses[0] != pytest.approx(losses[1])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="num_sampled_actions"):
        CQLLearner(OBS, ACT, CQLConfig(num_sampled_actions=0))


@pytest.mark.slow
def test_cql_beats_random_policy_on_local_hopper_random():
    """1000 steps with small networks: the last two evaluations average at least 1.0 normalized point
    above a uniform-random policy (random ~1.4; CQL reaches ~3-4 at this budget, seeds 0 and 1)."""
    torch.manual_seed(0)
    task = resolve_task("local/hopper-random")
    ds = build_local_dataset("hopper", "random", size=3000)
    ctx = Context(ds, "hopper", ds.obs_dim, ds.act_dim, 1.0, torch.device("cpu"), seed=0)
    cfg = CQLConfig(
        epochs=4, steps_per_epoch=250, eval_episodes=5, batch_size=128, hidden=(64, 64),
        num_sampled_actions=4, actor_lr=3e-4, seed=0,
    )
    out = train_offline(CQL(cfg, ctx), cfg, task.make_env, task.normalize, progress=False)
    final = np.mean([p["score"] for p in out["curve"][-2:]])
    assert final >= random_policy_score(task) + 1.0, [p["score"] for p in out["curve"]]
