"""BMPO (`bmpo`): the official per-env configs (and the two filled ones), its parts against hand-computed
cases (backward model targets and step, backward-policy NLL and sampling, Boltzmann start weights with the
beta schedule and cap, MPC scoring), a smoke run, and a seeded learning test on Hopper."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.bmpo import BackwardPolicy, boltzmann_start_probs, linear_schedule, mpc_scores
from benchmark import registry
from benchmark.envs.factory import env_dims
from benchmark.rl.online import Context, EnvReplay, Transition
from benchmark.runner import RunSpec, run_one
from benchmark.tasks import ONLINE_ENVS, resolve_task
from tests.test_mbpo import build, config, fill_real

# hanglai/bmpo@d065cf1 config/<env>.py: (G, forward, backward, beta schedule, planning horizon, entropy)
OFFICIAL = {
    "Hopper": (20, (20, 150, 1, 15), (20, 150, 1, 15), (20, 30, 0.004, 0.003), 6, -1),
    "Walker2d": (20, (20, 150, 1, 1), (20, 150, 1, 1), (0, 100, 0.01, 0), 1, -3),
    "AntTruncatedObs": (20, (20, 100, 1, 25), (20, 100, 1, 1), (0, 100, 0.003, 0.003), 0, -4),
}


@pytest.mark.parametrize("env", sorted(OFFICIAL))
def test_paper_configs_are_the_official_ones(env):
    cfg, prov = config("bmpo", env)
    assert prov["config_file"].endswith(f"bmpo/{env}.yaml")
    assert "hanglai/bmpo@d065cf1" in prov["config_source"]
    G, forward, backward, beta, horizon, entropy = OFFICIAL[env]
    assert (cfg.updates_per_step, cfg.rollout_schedule) == (G, forward)
    assert cfg.backward_rollout_schedule == backward
    assert (cfg.beta_schedule, cfg.planning_horizon, cfg.target_entropy) == (beta, horizon, entropy)
    bmpo_only = (cfg.last_n_epoch, cfg.backward_policy_var, cfg.mpc_candidates, cfg.beta_value_range)
    assert bmpo_only == (10, 0.01, 1000, 10.0)
    assert (cfg.model_update_interval, cfg.model_retain_steps, cfg.rollout_batch_size) == (250, 1000, 100_000)
    assert cfg.dynamics_config().max_holdout == 5000 and cfg.real_ratio == 0.05


@pytest.mark.parametrize("env", ["HalfCheetah", "HumanoidTruncatedObs"])
def test_filled_configs_say_so(env):
    cfg, prov = config("bmpo", env)
    assert prov["config_source"].startswith("FILLED") and "jannerm/mbpo@ac694ff" in prov["config_source"]
    mbpo, _ = config("mbpo", env)
    shared = ("updates_per_step", "rollout_schedule", "target_entropy", "model_update_interval",
              "model_retain_steps", "dynamics_hidden")
    assert all(getattr(cfg, name) == getattr(mbpo, name) for name in shared)


def test_schedules_beta_and_buffer_size():
    """BMPO's linear epoch schedules: beta on Hopper [20, 30, 0.004, 0.003] (decreasing, held after), on
    Walker2d [0, 100, 0.01, 0]; the backward length like the forward one; the model buffer sized by
    k_f + k_b."""
    hopper = [(0, 0.004), (20, 0.004), (25, 0.0035), (30, 0.003), (500, 0.003)]
    assert all(math.isclose(linear_schedule(e, (20, 30, 0.004, 0.003)), b) for e, b in hopper)
    assert math.isclose(linear_schedule(50, (0, 100, 0.01, 0)), 0.005)
    algo = build(algo="bmpo")
    assert [algo.beta_at(it) for it in (0, 25_999)] == [0.004, linear_schedule(25, (20, 30, 0.004, 0.003))]
    # backward [20, 150, 1, 15]: epoch 30 -> int(1 + 10/130*14) = 2; epoch 150 -> 15
    assert (algo.backward_length_at(30_000), algo.backward_length_at(150_000)) == (2, 15)
    # 100k starts * (k_f + k_b) * (1000 / 250): 2 * 400k at first, 30 * 400k at the top
    assert algo.model_buffer_capacity(0) == 800_000 and algo.model_buffer_capacity(150_000) == 12_000_000


def test_boltzmann_start_weights_and_cap():
    values = torch.tensor([0.0, 1.0, 2.0])
    probs, used = boltzmann_start_probs(values, 0.004)  # cap 10 / (2 - 0) = 5 does not bind
    e = [math.exp(0.004 * v) for v in (0, 1, 2)]
    assert used == 0.004 and torch.allclose(probs, torch.tensor([x / sum(e) for x in e]))
    probs, used = boltzmann_start_probs(values, 100.0)  # capped at 10 / 2 = 5
    e = [math.exp(5.0 * v) for v in (0, 1, 2)]
    assert used == 5.0 and torch.allclose(probs, torch.tensor([x / sum(e) for x in e]))
    # large values do not overflow (the cap keeps beta * spread <= 10; softmax removes the offset)
    probs, _ = boltzmann_start_probs(values + 1e4, 100.0)
    assert torch.allclose(probs, torch.tensor([x / sum(e) for x in e]))


def test_start_states_follow_the_value_weights():
    """V(s) + V_target(s) from the critics; with the cap binding, states of the highest value dominate."""
    algo = build({"rollout_batch_size": 16}, algo="bmpo")
    fill_real(algo, 400)
    algo.state_values = lambda obs: (obs[:, 1], obs[:, 1])  # V = V_target = the second feature
    starts, used = algo.start_states(4000, beta=1e3)
    values = 2 * algo.real.buffer.data["obs"][:400, 1]
    assert math.isclose(used, 10 / (values.max() - values.min()).item(), rel_tol=1e-6)
    feature = algo.real.buffer.data["obs"][:400, 1]
    assert starts[:, 1].mean() > feature.mean() + feature.std()
    plain, used = algo.start_states(16, beta=0.0)
    assert used == 0.0 and plain.shape == (16, 11)


def test_backward_model_targets_and_step():
    """Trained on inputs (s', a) and targets (s' - s, r); a step predicts s = s' - delta; the transition
    stored is (s, a, r, s') with the termination function of (s, a, s')."""
    algo = build({"rollout_batch_size": 16}, algo="bmpo")
    obs, act, rew, next_obs = fill_real(algo, 50)
    seen = {}
    algo.dynamics.fit_arrays = lambda *a: {}
    algo.backward.fit_targets = lambda o, a, t: seen.update(inputs=o, act=a, target=t) or {}
    algo.train_model(0)
    assert torch.equal(seen["inputs"], torch.as_tensor(next_obs))
    assert torch.equal(seen["act"], torch.as_tensor(act))
    expected = torch.cat([torch.as_tensor(next_obs - obs), torch.as_tensor(rew)[:, None]], dim=-1)
    assert torch.allclose(seen["target"], expected)

    delta, reward = torch.linspace(-0.1, 0.1, 11), 0.5
    raw = torch.cat([delta, torch.tensor([reward])])
    # every member predicts (delta, reward) with std ~ 1e-13
    algo.backward.forward = lambda o, a: (raw.expand(7, len(o), 12), torch.full((7, len(o), 12), -60.0))
    later = torch.as_tensor(next_obs[:3]).clone()
    prev, r, terminal = algo.backward_step(later, torch.as_tensor(act[:3]))
    assert torch.allclose(prev, later - delta) and torch.allclose(r, torch.full((3, 1), reward))
    assert not terminal.any()
    later[0, 0] = 0.5  # a fallen Hopper as the later state: the transition into it is terminal
    assert algo.backward_step(later, torch.as_tensor(act[:3]))[2][:, 0].tolist() == [True, False, False]
    back = algo.backward_rollout(torch.as_tensor(next_obs[:3]), 2)
    assert torch.allclose(back["next_obs"][:3], torch.as_tensor(next_obs[:3]))
    assert torch.allclose(back["obs"][3:], torch.as_tensor(next_obs[:3]) - 2 * delta, atol=1e-6)


def test_backward_policy_nll_and_sampling():
    policy = BackwardPolicy(11, 3)
    with torch.no_grad():
        for head, bias in ((policy.mean_head, 0.3), (policy.logvar_head, 0.0)):
            head.weight.zero_()
            head.bias.fill_(bias)
    next_obs, act = torch.randn(5, 11), torch.tensor([[0.0, 0.5, -0.5]]).repeat(5, 1)
    # soft clamp of 0 into [-10, 1]: 1 - softplus(1 - 0), then -10 + softplus(. + 10)
    logvar = 1 - math.log1p(math.e)
    logvar = -10 + math.log1p(math.exp(logvar + 10))
    sq = sum((math.tanh(0.3) - a) ** 2 for a in (0.0, 0.5, -0.5)) / 3
    assert math.isclose(policy.nll(next_obs, act).item(), sq * math.exp(-logvar) + logvar, rel_tol=1e-5)
    # fixed variance 0.01, normal truncated at 2 sigma: within tanh(0.3) +- 0.2
    samples = policy.sample(torch.randn(4000, 11), 0.01, torch.Generator().manual_seed(0))
    assert (samples - math.tanh(0.3)).abs().max() <= 0.2 + 1e-6
    assert math.isclose(samples.std().item(), 0.1 * 0.8796, rel_tol=0.05)  # truncated-normal std
    with torch.no_grad():
        policy.mean_head.bias.fill_(5.0)  # mean ~ 1: clipped to the action box
    assert policy.sample(torch.randn(100, 11), 0.01).max() == 1.0


def test_backward_policy_trains_on_the_newest_transitions_after_each_env_step():
    replay = EnvReplay(5, 1, 1)
    for i in range(7):
        replay.add(Transition([i], [0.0], 0.0, [i + 1.0], False, False))
    # storage [5, 6, 2, 3, 4]; the newest 3 are 4, 5, 6
    batch = replay.sample_recent(300, 3, torch.Generator().manual_seed(0))
    assert set(batch["obs"][:, 0].tolist()) == {4.0, 5.0, 6.0}
    algo = build({"updates_per_step": 3}, algo="bmpo")
    fill_real(algo, 300)
    steps = []
    algo.update_backward_policy = lambda: steps.append(algo.sac_updates) or 0.0
    for _ in range(7):
        algo.learn(algo.next_batch(0))
    assert steps == [3, 6]


def test_mpc_scores():
    """gamma 0.5, H = 3: candidate 0 never ends: 1 + 0.5*2 + 0.25*4 + 0.125*8 = 4; candidate 1 ends at the
    first step: only its first reward counts."""
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    dones = torch.tensor([[False, True], [False, False], [False, False]])
    assert mpc_scores(rewards, dones, torch.tensor([8.0, 8.0]), 0.5).tolist() == [4.0, 1.0]
    # H = 1 (Walker2d): r_0 + gamma (1 - d_0) V(s_1)
    assert mpc_scores(torch.tensor([[1.0, 1.0]]), torch.tensor([[False, True]]), torch.tensor([2.0, 2.0]),
                      0.9).tolist() == pytest.approx([2.8, 1.0])


def test_mpc_acts_with_the_best_candidate():
    """With a model whose reward is the first action component, the chosen action is the best of the
    1000 policy samples (an untrained policy: tanh of a unit Gaussian, so the best is above 0.95)."""
    algo = build({"rollout_batch_size": 16}, algo="bmpo")
    algo.model_trainings = 1
    algo.dynamics.step = lambda s, a: (s, a[:, :1], torch.zeros(len(s), 1, dtype=torch.bool), {})
    algo.state_values = lambda s: (torch.zeros(len(s)), torch.zeros(len(s)))
    torch.manual_seed(0)
    chosen = algo.act(torch.zeros(11).numpy(), deterministic=False)
    assert chosen[0] > 0.95
    assert torch.equal(torch.as_tensor(algo.act(torch.zeros(11).numpy())),
                       torch.as_tensor(algo.sac.act(torch.zeros(11).numpy())))  # evaluation: no MPC


def test_smoke_run_end_to_end(tmp_path):
    record = run_one(RunSpec("bmpo", "mujoco/Hopper", seed=0, budget="smoke"), tmp_path, progress=False)
    assert record["status"] == "ok", record.get("traceback")
    point, cfg = record["curve"][-1], record["config"]
    assert (cfg["planning_horizon"], cfg["mpc_candidates"]) == (6, 16)
    assert point["rollout/backward_length"] == point["rollout/length"] == 1
    # backward and forward transitions of the 128 starts in one buffer sized by k_f + k_b
    assert point["rollout/model_buffer"] == 128 + point["rollout/num_transitions"]
    assert point["rollout/model_buffer_capacity"] == 128 * 2 * 4 and point["rollout/beta"] == 0.004
    assert math.isfinite(point["train/backward_policy_nll"])
    assert math.isfinite(point["model/backward_holdout_mse"])
    assert registry.get("bmpo").kind == "online"


@pytest.mark.slow
def test_bmpo_learns_on_hopper_short_budget(hopper_short_run_learns):
    """Seed 0, short budget (MBPO's short sizes; MPC with horizon 6 over 100 candidates, beta 0.004, k_f =
    k_b = 1): measured with `admbench run --algo bmpo --task mujoco/Hopper --budget short --results
    results/learning` (record in results/learning/adhoc/bmpo/mujoco__Hopper/seed-0.json; 2666 s on the loaded
    2-core host; the test itself passed in 1697 s): random warm-up return 19.3; stochastic (MPC) training
    episodes 55 -> 125 -> 162 over the three intervals; deterministic evaluations 129 (after the first step's
    20 updates), 105, 134, 139 (mean of the last two 136); backward-policy NLL 0.19 -> -0.54.

    Thresholds: the online ones of the fixture (5x the random warm-up return, for the evaluations and the
    stochastic training episodes), and the stochastic training return at least doubles from the first
    interval to the last (measured 2.9x). NOT met at this budget: beating SAC's first evaluation (197.2, an
    untrained policy that stands; MBPO reaches 221): BMPO's deterministic evaluations stay at 105-139."""
    record = hopper_short_run_learns("bmpo", last_evals=2)
    assert record["train_info"]["count/model_trainings"] == 4
    curve = record["curve"]
    assert curve[-1]["train_return_mean"] >= 2 * curve[1]["train_return_mean"]


@pytest.mark.parametrize("algo", ["mbpo", "bmpo"])
def test_every_online_task_and_budget_resolves_and_builds(algo):
    """Sizes only change with the budget; every (task, budget) builds (the smoke runs of the other tasks:
    `admbench run --algo mbpo|bmpo --task mujoco/<Env> --budget smoke`)."""
    for env in ONLINE_ENVS:
        task = resolve_task(f"mujoco/{env}")
        obs_dim, act_dim = env_dims(task.env_key)
        paper, _ = config(algo, env, "paper")
        for budget in ("smoke", "short", "paper"):
            cfg, _ = config(algo, env, budget, {"buffer_size": 1000})
            built = registry.get(algo).factory(cfg, Context(None, task.env_key, obs_dim, act_dim, 1.0,
                                                                  torch.device("cpu"), 0))
            assert built.rollout_length_at(0) == 1 and built.model_buffer_capacity(0) > 0
            kept = ("updates_per_step", "rollout_schedule", "target_entropy", "dynamics_hidden")
            assert all(getattr(cfg, name) == getattr(paper, name) for name in kept), (env, budget)
