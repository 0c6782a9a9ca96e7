"""Rollout termination functions agree with the real envs' own termination on real rollouts.

States come from seeded rollouts with uniform random actions; some episodes start with a vertical
"kick" (a large upward velocity set through ``set_state``) so that the upper height bounds of Ant and
Humanoid are reached too. The functions only see ``next_obs``, exactly as in model rollouts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.envs import make_env
from benchmark.rl.termination import get_termination_fn

# env key -> (episodes, max steps per episode, upward kick velocity or None, env terminates at all)
CASES = {
    "hopper": (12, 200, None, True),
    "walker2d": (12, 200, None, True),
    "halfcheetah": (2, 150, None, False),
    "neorl-hopper": (12, 200, None, True),
    "neorl-walker2d": (12, 200, None, True),
    "neorl-halfcheetah": (2, 150, None, False),
    "anttruncatedobs": (6, 120, 6.0, True),
    "humanoidtruncatedobs": (8, 120, 8.0, True),
}


def real_transitions(env_key: str, episodes: int, max_steps: int, kick: float | None, seed: int = 0):
    env = make_env(env_key)
    rng = np.random.default_rng(seed)
    rows = {"obs": [], "act": [], "next_obs": [], "terminated": []}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        if kick is not None and ep % 2 == 1:  # every other episode jumps up
            sim = env.unwrapped
            qvel = sim.data.qvel.copy()
            qvel[2] = kick
            sim.set_state(sim.data.qpos.copy(), qvel)
        for _ in range(max_steps):
            act = rng.uniform(env.action_space.low, env.action_space.high)
            next_obs, _, terminated, truncated, _ = env.step(act)
            rows["obs"].append(obs)
            rows["act"].append(act)
            rows["next_obs"].append(next_obs)
            rows["terminated"].append(terminated)
            obs = next_obs
            if terminated or truncated:
                break
    env.close()
    return {k: np.asarray(v) for k, v in rows.items()}


@pytest.mark.parametrize("env_key", list(CASES))
def test_termination_fn_matches_env(env_key):
    episodes, max_steps, kick, terminates = CASES[env_key]
    data = real_transitions(env_key, episodes, max_steps, kick)
    fn = get_termination_fn(env_key)
    done = fn(torch.as_tensor(data["obs"]), torch.as_tensor(data["act"]), torch.as_tensor(data["next_obs"]))
    assert done.dtype == torch.bool and done.shape == (len(data["obs"]),)
    np.testing.assert_array_equal(done.numpy(), data["terminated"])
    if terminates:  # the rollouts exercised both outcomes
        assert data["terminated"].sum() >= 3 and (~data["terminated"]).sum() >= 50
    else:
        assert not data["terminated"].any()


def test_ant_and_humanoid_rollouts_reach_both_height_bounds():
    """The kicked episodes end above the upper bound, the others below the lower one (or not at all)."""
    for env_key, (low, high) in {"anttruncatedobs": (0.2, 1.0), "humanoidtruncatedobs": (1.0, 2.0)}.items():
        episodes, max_steps, kick, _ = CASES[env_key]
        data = real_transitions(env_key, episodes, max_steps, kick)
        z_at_end = data["next_obs"][data["terminated"], 0]
        assert (z_at_end > high).any(), env_key
        if env_key == "humanoidtruncatedobs":
            assert (z_at_end < low).any()


def test_termination_fns_accept_numpy_and_flag_blowups():
    s = np.zeros((3, 17), np.float32)
    s[:, 0] = 1.2  # healthy walker height
    s[1, 5] = 150.0
    s[2, 3] = -100.0
    # halfcheetah (official code since 2025-01-26): done iff any element leaves (-100, 100)
    np.testing.assert_array_equal(get_termination_fn("halfcheetah")(s, None, s).numpy(), [False, True, True])
    h = np.zeros((3, 11), np.float32)
    h[:, 0] = 1.25
    h[1, 4] = 150.0  # over the upper bound: done
    h[2, 4] = -150.0  # official quirk: large negative values do not terminate
    np.testing.assert_array_equal(get_termination_fn("hopper")(h, None, h).numpy(), [False, True, False])
    h[0, 3] = np.nan
    assert get_termination_fn("hopper")(h, None, h)[0]
    with pytest.raises(KeyError, match="no termination function for 'ant'"):
        get_termination_fn("ant")
