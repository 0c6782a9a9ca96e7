"""DDPPO (`ddppo`): the Jacobian-consistency loss against finite differences, the neighbour table, the
directional-derivative-projection actor loss on a linear model with a closed-form gradient, configs, a
smoke run through the runner and a seeded learning test on Hopper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.ddppo import DDPPOEnsemble, ddp_actor_loss, jacobian_consistency_loss, neighbour_table
from benchmark import registry
from benchmark.config import resolve_config
from benchmark.rl.dynamics import EnsembleDynamicsConfig
from benchmark.runner import RunSpec, run_one
from benchmark.tasks import ONLINE_ENVS, resolve_task


def tiny_ensemble(obs_dim=3, act_dim=2) -> DDPPOEnsemble:
    torch.manual_seed(0)
    cfg = EnsembleDynamicsConfig(members=2, elites=1, hidden=(16, 16), weight_decays=(0.0, 0.0, 0.0))
    model = DDPPOEnsemble(obs_dim, act_dim, cfg, "hopper", "cpu", seed=0).double()
    with torch.no_grad():
        model.input_mean.copy_(torch.linspace(-0.5, 0.5, obs_dim + act_dim))
        model.input_std.copy_(torch.linspace(0.5, 2.0, obs_dim + act_dim))
    return model


def test_jacobian_consistency_loss_matches_finite_differences():
    model = tiny_ensemble()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 5, generator=gen, dtype=torch.float64)
    dx = torch.randn(2, 4, 3, 5, generator=gen, dtype=torch.float64)
    dy = torch.randn(2, 4, 3, 4, generator=gen, dtype=torch.float64)
    loss = jacobian_consistency_loss(model, x, dx, dy)

    # central differences of each member's mean [next_obs, reward] in each raw input
    eps, jac = 1e-6, torch.zeros(2, 4, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        for i in range(5):
            step = torch.zeros(5, dtype=torch.float64)
            step[i] = eps
            up, _ = model.predict((x + step)[..., :3], (x + step)[..., 3:])
            down, _ = model.predict((x - step)[..., :3], (x - step)[..., 3:])
            jac[..., i] = (up - down) / (2 * eps)
    expected = ((torch.einsum("mbij,mbkj->mbki", jac, dx) - dy) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-7)
    # a model whose first-order expansion fits the data exactly has zero loss
    exact = torch.einsum("mbij,mbkj->mbki", jac, dx)
    assert jacobian_consistency_loss(model, x, dx, exact).item() == pytest.approx(0.0, abs=1e-12)
    # and the term trains the model: it has gradients in the weights
    loss.backward()
    assert model.net.layers[0].weight.grad.abs().sum() > 0


def test_neighbour_table_excludes_the_point_itself():
    obs = np.array([[0.0], [1.0], [3.0], [7.0]])
    act = np.zeros((4, 1))
    rew = np.array([0.0, 10.0, 30.0, 70.0])
    table = neighbour_table(obs, act, rew, obs + 1.0, k=1, device=torch.device("cpu"))
    # nearest other point of 0, 1, 3, 7 is 1, 0, 1, 3
    assert table.input_diffs[:, 0, 0].tolist() == [1.0, -1.0, -2.0, -4.0]
    assert table.output_diffs[:, 0].tolist() == [[1.0, 10.0], [-1.0, -10.0], [-2.0, -20.0], [-4.0, -40.0]]


def linear_problem(k0: float, terminal_above: float = math.inf):
    """1-d linear model s' = A s + B a, r = c s + d a; Q = q_s s + q_a a; policy a = k s (alpha 0)."""
    A, B, c, d, q_s, q_a = 0.9, 0.5, 1.0, -0.3, 2.0, 0.7
    k = torch.tensor(k0, requires_grad=True)
    policy = lambda s: (k * s, torch.zeros_like(s))
    step = lambda s, a: (A * s + B * a, c * s + d * a)
    q_min = lambda s, a: q_s * s + q_a * a
    done = lambda s, a, ns: ns[:, 0] > terminal_above
    return k, (A, B, c, d, q_s, q_a), policy, step, q_min, done


def test_ddp_actor_loss_gradient_on_a_linear_model_in_closed_form():
    """With M = A + B k and s_t = M^t s_0 (H = 3) the costates are p_2 = -g^2 (q_s + q_a k) and
    p_1 = g (p_2 M - (c + d k)), and the loss's derivative in k (costates held fixed) is
    -s_0 [d + g (d M + (c + d k) B) + g^2 q_a M^2 + 2 g^3 (q_s + q_a k) M B].
    The exact H-step return J(k) = -s_0 [(c + d k) + g (c + d k) M + g^2 (q_s + q_a k) M^2] has g^2, not g^3,
    in the last term: the official ``update_parameters_policy`` multiplies ``p . f(s_j, a_j)`` by g^j
    although p already carries g^{j+1}, so for H > 2 it discounts the continuation twice. We keep the
    official recursion; with H = 2 (next test) the two agree."""
    gamma, k0 = 0.9, -0.4
    k, (A, B, c, d, q_s, q_a), policy, step, q_min, done = linear_problem(k0)
    s0 = torch.tensor([[1.0], [-2.0]])
    loss, _ = ddp_actor_loss(policy, q_min, step, step, done, s0, horizon=3, gamma=gamma, alpha=0.0)
    loss.backward()
    M, ck, qk = A + B * k0, c + d * k0, q_s + q_a * k0
    official = -(d + gamma * (d * M + ck * B) + gamma**2 * q_a * M**2 + 2 * gamma**3 * qk * M * B)
    exact = -(d + gamma * (d * M + ck * B) + gamma**2 * (q_a * M**2 + 2 * qk * M * B))
    assert k.grad.item() == pytest.approx(official * s0.mean().item(), rel=1e-6)
    assert abs(official - exact) > 0.05


def test_ddp_actor_loss_masks_steps_after_a_termination():
    """s_0 = 1 -> s_1 = M = 0.7 is terminal (threshold 0.5); s_0 = 0.1 stays alive. The terminated row's
    objective is -r_0 only (d/dk = -d s_0), the other row's the exact H = 2 return
    J = -s_0 [(c + d k) + g (q_s + q_a k) M], dJ/dk = -s_0 [d + g (q_a M + (q_s + q_a k) B)]."""
    gamma, k0 = 0.9, -0.4
    k, (A, B, c, d, q_s, q_a), policy, step, q_min, done = linear_problem(k0, terminal_above=0.5)
    s0 = torch.tensor([[1.0], [0.1]])
    loss, info = ddp_actor_loss(policy, q_min, step, step, done, s0, horizon=2, gamma=gamma, alpha=0.0)
    loss.backward()
    M = A + B * k0
    alive_row = -(d + gamma * (q_a * M + (q_s + q_a * k0) * B)) * 0.1
    assert k.grad.item() == pytest.approx((-d * 1.0 + alive_row) / 2, rel=1e-5)
    assert info["actor_horizon_alive"] == 0.5


def test_gradient_model_training_reduces_the_jacobian_loss():
    """On linear data y = W x the neighbours' differences are exactly linear; training with the term
    lowers it (measured: 0.095 after the first epoch, 0.068 after 20 more), and the elites come from the
    last holdout ranking."""
    gen = np.random.default_rng(0)
    obs, act = gen.normal(size=(400, 3)), gen.uniform(-1, 1, size=(400, 2))
    W = gen.normal(size=(5, 4)) * 0.3
    out = np.concatenate([obs, act], 1) @ W
    next_obs, rew = obs + out[:, :3], out[:, 3]
    table = neighbour_table(obs, act, rew, next_obs, k=5, device=torch.device("cpu"))
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)
    data = {"obs": t(obs), "act": t(act), "rew": t(rew).reshape(-1, 1), "next_obs": t(next_obs)}
    torch.manual_seed(0)
    cfg = EnsembleDynamicsConfig(members=3, elites=2, hidden=(32, 32), weight_decays=(0.0, 0.0, 0.0))
    model = DDPPOEnsemble(3, 2, cfg, "hopper", "cpu", seed=0)
    first = model.train_ddppo(data, table, jacobian_coef=1.0, max_epochs=1)
    later = model.train_ddppo(data, table, jacobian_coef=1.0, max_epochs=20)
    assert later["jacobian_loss"] < 0.8 * first["jacobian_loss"]
    assert later["holdout_mse"] < first["holdout_mse"] and len(set(model.elites.tolist())) == 2


def official(env):
    spec = registry.get("ddppo")
    task = resolve_task(f"mujoco/{env}")
    return resolve_config(spec.config_cls, spec.config_dir, task.config_keys, "paper")


@pytest.mark.parametrize("env", ONLINE_ENVS)
def test_paper_configs(env):
    cfg, prov = official(env)
    assert prov["config_file"].endswith(f"ddppo/{env}.yaml")
    assert "CCreal/ddppo@d065090" in prov["config_source"]
    shared = (cfg.model_members, cfg.model_elites, cfg.model_hidden, cfg.model_lr, cfg.num_neighbours,
              cfg.neighbour_buffer_size, cfg.policy_horizon, cfg.critic_grad_clip, cfg.actor_grad_clip)
    assert shared == (7, 5, (200,) * 4, 1e-3, 5, 10_000, 4, 100.0, 5.0)
    assert (cfg.start_learning, cfg.real_ratio, cfg.model_update_interval, cfg.rollout_batch_size) == (
        5000, 0.05, 250, 100_000)
    if env == "AntTruncatedObs":  # run.sh
        counts = (cfg.updates_per_step, cfg.num_policy_updates, cfg.policy_batch_size, cfg.jacobian_coef)
        assert counts == (10, 10, 256, 0.1) and cfg.auto_alpha
        assert cfg.rollout_schedule == (20_000, 150_000, 1, 1)
    else:  # argparse defaults, marked as ours
        counts = (cfg.updates_per_step, cfg.num_policy_updates, cfg.policy_batch_size, cfg.jacobian_coef)
        assert counts == (5, 5, 16, 10.0) and not cfg.auto_alpha and cfg.alpha == 0.2
        assert prov["config_source"].startswith("OURS")


def test_ddppo_smoke_run_end_to_end(tmp_path):
    record = run_one(RunSpec("ddppo", "mujoco/Hopper", seed=0, budget="smoke"), tmp_path, progress=False)
    assert record["status"] == "ok", record.get("traceback")
    cfg, info = record["config"], record["train_info"]
    assert [p["step"] for p in record["curve"]] == list(range(0, cfg["env_steps"], cfg["eval_interval"]))
    assert info["count/updates"] == cfg["env_steps"] * cfg["updates_per_step"]
    assert info["count/model_trainings"] == info["count/rollouts"] == 1
    assert all(math.isfinite(info[k]) for k in ("critic_loss", "actor_loss", "costate_norm"))
    point = record["curve"][-1]
    assert math.isfinite(point["model/gradient_jacobian_loss"])
    assert math.isfinite(point["model/prediction_holdout_mse"])


@pytest.mark.slow
def test_ddppo_learns_on_hopper_short_budget(hopper_short_run_learns):
    """Seed 0, short budget: 2000 random steps, then 1000 env steps (5 critic and 5 actor updates each),
    both ensembles trained every 250 steps (capped at 300 gradient steps), 5000 rollout starts; 2716 s on a
    loaded 2-core CPU. Measured with `admbench run --algo ddppo --task mujoco/Hopper --budget short` (record
    in results/learning/adhoc/ddppo/mujoco__Hopper/seed-0.json): random warm-up return 19.2; deterministic
    evaluations 51 (untrained), 44, 177, 187; stochastic training episodes 56 -> 71 -> 186 over the last
    three intervals; prediction-model holdout MSE 0.025-0.038, Jacobian-consistency loss 0.041-0.048.

    Thresholds (the fixture's): the stochastic training episodes of the last interval and the mean of the
    last two evaluations return at least 5x the random warm-up return (96 here; measured 186 and 182).
    `pytest tests/test_steve.py tests/test_ddppo.py -m slow -n 2` passed both learning tests in 1013 s."""
    hopper_short_run_learns("ddppo", last_evals=2)


@pytest.mark.parametrize("env", ONLINE_ENVS)
def test_ddppo_runs_on_every_online_env(env):
    from tests.test_steve import learner_on_every_env

    info = learner_on_every_env("ddppo", env)
    assert all(math.isfinite(v) for v in info.values()) and "actor_loss" in info
