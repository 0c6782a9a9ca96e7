"""Mechanics of the shared online loop (benchmark/rl/online/) on a tiny scripted environment."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from benchmark.rl.configs import ConfigError
from benchmark.rl.online import (
    Context,
    EnvReplay,
    OnlineAlgorithm,
    OnlineModelBased,
    OnlineModelBasedConfig,
    OnlineTrainConfig,
    Transition,
    rollout_length,
    train_online,
)

EPISODE_LEN = 5


class ScriptedEnv(gym.Env):
    """Episodes of exactly 5 steps, reward 1 per step; even episodes end by termination, odd ones by
    time-limit truncation. Observation = [episode index, step in episode, 0]."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self):
        self.episode = -1
        self.t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.episode, self.t, 0.0], dtype=np.float32)

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=np.float32))
        self.t += 1
        end = self.t == EPISODE_LEN
        return self._obs(), 1.0, end and self.episode % 2 == 0, end and self.episode % 2 == 1, {}


def ctx(obs_dim=3, act_dim=2):
    return Context(None, env_key="scripted", obs_dim=obs_dim, act_dim=act_dim, act_scale=1.0,
                         device=torch.device("cpu"), seed=0)


class CountingAlgo(OnlineAlgorithm):
    def __init__(self, cfg, c):
        super().__init__(cfg, c)
        self.calls = {"before_step": [], "stochastic_act": 0, "deterministic_act": 0, "learn": [],
                      "observe": 0}
        self.current_it = None

    def before_step(self, it):
        self.calls["before_step"].append(it)
        self.current_it = it
        return {}

    def act(self, obs, deterministic=True):
        self.calls["deterministic_act" if deterministic else "stochastic_act"] += 1
        return np.zeros(2, dtype=np.float32)

    def observe(self, transition):
        self.calls["observe"] += 1
        super().observe(transition)

    def learn(self, batch):
        assert batch["obs"].shape == (self.cfg.batch_size, 3)
        self.calls["learn"].append(self.current_it)
        return {"loss": float(self.current_it)}


def test_warmup_updates_and_evaluation_schedule():
    cfg = OnlineTrainConfig(env_steps=25, eval_interval=10, eval_episodes=2, start_learning=13,
                            updates_per_step=3, batch_size=4, buffer_size=100)
    algo = CountingAlgo(cfg, ctx())
    out = train_online(algo, cfg, ScriptedEnv, normalize=lambda r: None, progress=False)
    calls = algo.calls
    # warm-up steps are stored but not counted in env_steps (as the official code does)
    assert calls["observe"] == 13 + 25 and len(algo.real) == 38
    assert calls["stochastic_act"] == 25 and calls["before_step"] == list(range(25))
    assert len(calls["learn"]) == 25 * 3 and calls["learn"][:4] == [0, 0, 0, 1]
    # evaluations at it % eval_interval == 0, it = 0 included, deterministic, eval_episodes each
    assert [p["step"] for p in out["curve"]] == [0, 10, 20]
    assert [p["env_steps_total"] for p in out["curve"]] == [14, 24, 34]
    assert calls["deterministic_act"] == 3 * 2 * EPISODE_LEN
    assert all(p["return_mean"] == EPISODE_LEN and p["return_std"] == 0 for p in out["curve"])
    assert all(p["score"] is None and p["score_std"] is None for p in out["curve"])
    # diagnostics are means over the updates since the previous evaluation
    assert out["curve"][0]["train/loss"] == 0.0 and out["curve"][1]["train/loss"] == pytest.approx(5.5)
    assert out["setup"]["warmup_steps"] == 13 and out["setup"]["warmup_episodes"] == 2
    assert out["setup"]["warmup_return_mean"] == EPISODE_LEN
    assert out["train"]["count/updates"] == 75 and out["train"]["count/evaluations"] == 3


class DivergingAlgo(CountingAlgo):
    """Its loss, a device-style scalar tensor, becomes non-finite at env step ``bad``."""

    bad = 12

    def learn(self, batch):
        super().learn(batch)
        return {"loss": torch.tensor(float("inf") if self.current_it == self.bad else 1.0)}


@pytest.mark.parametrize("bad", [12, 23])  # between two evaluations; after the last one
def test_a_diverged_update_fails_the_run_with_its_env_step(bad):
    from benchmark.rl.trainers import DivergenceError

    cfg = OnlineTrainConfig(env_steps=25, eval_interval=10, eval_episodes=1, start_learning=13,
                            updates_per_step=2, batch_size=4, buffer_size=100)
    algo = DivergingAlgo(cfg, ctx())
    algo.bad = bad
    with pytest.raises(DivergenceError, match=rf"^loss became inf at env step {bad}$"):
        train_online(algo, cfg, ScriptedEnv, normalize=lambda r: None, progress=False)


def test_update_interval_and_score_std():
    cfg = OnlineTrainConfig(env_steps=6, eval_interval=3, eval_episodes=1, start_learning=4,
                            updates_per_step=2, update_interval=3, batch_size=2, buffer_size=50)
    algo = CountingAlgo(cfg, ctx())
    out = train_online(algo, cfg, ScriptedEnv, normalize=lambda r: 10.0 * r - 1.0, progress=False)
    assert algo.calls["learn"] == [0] * 6 + [3] * 6  # update_interval * updates_per_step every 3rd step
    assert out["curve"][0]["score"] == pytest.approx(49.0) and out["curve"][0]["score_std"] == 0.0


def test_env_replay_keeps_episode_ends_and_wraps_oldest_first():
    cfg = OnlineTrainConfig(env_steps=3, eval_interval=100, eval_episodes=1, start_learning=9,
                            updates_per_step=0, batch_size=2, buffer_size=8)
    algo = CountingAlgo(cfg, ctx())
    train_online(algo, cfg, ScriptedEnv, normalize=lambda r: None, progress=False)
    ds = algo.real.to_dataset()
    # 12 transitions went in, the newest 8 stay: episode 0 (terminated) lost 4 steps, episode 1
    # (truncated) is whole, episode 2 has 2 steps so far
    assert len(ds) == 8 and ds.observations[:, 0].tolist() == [0, 1, 1, 1, 1, 1, 2, 2]
    assert ds.observations[:, 1].tolist() == [4, 0, 1, 2, 3, 4, 0, 1]
    assert ds.terminals.tolist() == [True] + [False] * 7
    assert ds.timeouts.tolist() == [False] * 5 + [True, False, False]
    assert ds.dist_to_end().tolist() == [0, 4, 3, 2, 1, 0, 1, 0]
    assert (algo.real.buffer.all()["done"].reshape(-1).numpy() == ds.terminals).all()


def test_rollout_length_schedule_matches_the_official_rule():
    hopper = (0, 50_000, 1, 15)
    steps = (0, 3571, 25_000, 49_999, 50_000, 80_000)
    assert [rollout_length(it, hopper) for it in steps] == [1, 1, 8, 14, 15, 15]
    ant = (10_000, 100_000, 1, 5)
    assert [rollout_length(it, ant) for it in (0, 10_000, 32_500, 55_000, 100_000)] == [1, 1, 2, 3, 5]
    with pytest.raises(ConfigError, match="rollout_schedule"):
        OnlineModelBasedConfig(rollout_schedule=(5, 5, 1, 2))


class FakeModelBased(OnlineModelBased):
    """Model-based contract with a scripted 'model': every rollout transition has reward -1."""

    def __init__(self, cfg, c):
        super().__init__(cfg, c)
        self.trained_at, self.rollout_calls, self.buffer_before_rollout = [], [], []

    def train_model(self, it):
        self.trained_at.append((it, len(self.real)))
        return {"loss": 0.5}

    def rollout(self, num_starts, length):
        self.rollout_calls.append((num_starts, length))
        self.buffer_before_rollout.append((self.fake.capacity, self.fake.all()["obs"][:, 0].tolist()))
        n = num_starts * length
        data = {"obs": torch.full((n, 3), float(len(self.rollout_calls))), "act": torch.zeros(n, 2),
                "rew": -torch.ones(n, 1), "next_obs": torch.zeros(n, 3), "done": torch.zeros(n, 1)}
        return data, {"starts": num_starts}

    def act(self, obs, deterministic=True):
        return np.zeros(2, dtype=np.float32)

    def learn(self, batch):
        return {"real_share": float((batch["rew"] > 0).float().mean())}


def test_model_based_hooks_retrain_rollout_resize_and_mix():
    cfg = OnlineModelBasedConfig(
        env_steps=12, eval_interval=6, eval_episodes=1, start_learning=10, updates_per_step=1, batch_size=20,
        buffer_size=100, model_update_interval=4, model_rollout_interval=2, rollout_batch_size=3,
        rollout_schedule=(0, 8, 1, 3), model_retain_steps=4, real_ratio=0.25,
    )
    algo = FakeModelBased(cfg, ctx())
    out = train_online(algo, cfg, ScriptedEnv, normalize=lambda r: None, progress=False)
    # retrained every 4 steps on the whole env buffer as it is before that step
    assert algo.trained_at == [(0, 10), (4, 14), (8, 18)] and algo.model_trainings == 3
    # rollouts every 2 steps; L(it) = 1, 1, 2, 2, 3, 3 at it = 0, 2, 4, 6, 8, 10
    assert algo.rollout_calls == [(3, 1), (3, 1), (3, 2), (3, 2), (3, 3), (3, 3)]
    assert algo.rollout_history == [(0, 1, 3), (2, 1, 3), (4, 2, 6), (6, 2, 6), (8, 3, 9), (10, 3, 9)]
    # capacity = rollout_batch_size * L * retain / rollout_interval = 3 * L * 4 / 2, grown, data kept
    assert algo.capacity_history == [(0, 6), (4, 12), (8, 18)]
    assert algo.fake.capacity == 18 and len(algo.fake) == 18
    # the resize at it = 4 kept rollouts 1 and 2 (3 transitions each) before rollout 3 was added
    assert algo.buffer_before_rollout[2] == (12, [1.0] * 3 + [2.0] * 3)
    assert algo.fake.all()["obs"][:, 0].tolist() == [5.0] * 9 + [6.0] * 9  # FIFO, oldest first
    # int(20 * 0.25) = 5 real transitions per batch
    assert out["curve"][-1]["train/real_share"] == pytest.approx(5 / 20)
    assert out["train"]["count/model_trainings"] == 3 and out["train"]["count/rollouts"] == 6
    assert out["curve"][0]["model/loss"] == 0.5 and out["curve"][0]["rollout/length"] == 1


def test_env_replay_rejects_nothing_silently():
    replay = EnvReplay(4, 3, 2)
    replay.add(Transition(np.zeros(3), np.zeros(2), 1.0, np.ones(3), terminated=True, truncated=True))
    ds = replay.to_dataset()
    # a step that both terminates and hits the time limit is a termination, not a timeout
    assert ds.terminals.tolist() == [True] and ds.timeouts.tolist() == [False]
