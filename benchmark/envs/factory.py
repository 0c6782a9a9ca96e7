"""Gymnasium MuJoCo v4 environments for datasets and online tasks.

v4 is used everywhere: Hopper/HalfCheetah v4 match v5 trajectories, and Walker2d-v5 changed the foot
friction, so v4 is the closest to the gym v2/v3 envs that D4RL and the ADMPO paper used.
NeoRL-style envs keep the x position in the observation (``exclude_current_positions_from_observation
=False``), as ``neorl.make`` does.

The online suite's MBPO-style envs (the ADMPO official code uses the same ones):

* ``anttruncatedobs``: Ant-v4 without contact forces in the observation (27-d: qpos[2:], qvel);
* ``humanoidtruncatedobs``: Humanoid-v4 observation cut to qpos[2:] and qvel (45-d), i.e. without
  cinert, cvel, qfrc_actuator and cfrc_ext. Rewards and termination are gymnasium's v4 ones.
"""

from __future__ import annotations

import warnings
from functools import cache

import gymnasium as gym
import numpy as np

# env key -> (gymnasium id, make kwargs)
ENV_IDS: dict[str, tuple[str, dict]] = {
    "hopper": ("Hopper-v4", {}),
    "walker2d": ("Walker2d-v4", {}),
    "halfcheetah": ("HalfCheetah-v4", {}),
    "neorl-hopper": ("Hopper-v4", {"exclude_current_positions_from_observation": False}),
    "neorl-walker2d": ("Walker2d-v4", {"exclude_current_positions_from_observation": False}),
    "neorl-halfcheetah": ("HalfCheetah-v4", {"exclude_current_positions_from_observation": False}),
    "anttruncatedobs": ("Ant-v4", {"use_contact_forces": False}),
    "humanoidtruncatedobs": ("Humanoid-v4", {}),
}

# Humanoid-v4 observation = qpos[2:] (22) | qvel (23) | cinert | cvel | qfrc_actuator | cfrc_ext
HUMANOID_TRUNCATED_DIM = 22 + 23


class TruncatedObservation(gym.ObservationWrapper):
    """Keep only the first ``dim`` entries of a Box observation."""

    def __init__(self, env: gym.Env, dim: int):
        super().__init__(env)
        self.dim = dim
        box = env.observation_space
        self.observation_space = gym.spaces.Box(box.low[:dim], box.high[:dim], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[: self.dim]


def make_env(env_key: str, seed: int | None = None, **kwargs) -> gym.Env:
    """Create the gymnasium env for an env key (``hopper``, ``neorl-walker2d``, ...)."""
    if env_key not in ENV_IDS:
        raise ValueError(f"unknown environment {env_key!r}; expected one of {sorted(ENV_IDS)}")
    gym_id, default_kwargs = ENV_IDS[env_key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium flags v4 as deprecated in favour of v5
        env = gym.make(gym_id, **{**default_kwargs, **kwargs})
    if env_key == "humanoidtruncatedobs":
        env = TruncatedObservation(env, HUMANOID_TRUNCATED_DIM)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


@cache
def env_dims(env_key: str) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of an env key (made once and cached)."""
    env = make_env(env_key)
    dims = (int(env.observation_space.shape[0]), int(env.action_space.shape[0]))
    env.close()
    return dims
