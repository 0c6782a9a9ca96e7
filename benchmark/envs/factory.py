"""Gymnasium MuJoCo v4 environments for datasets and online tasks.

v4 is used everywhere: Hopper/HalfCheetah v4 match v5 trajectories, and Walker2d-v5 changed the foot
friction, so v4 is the closest to the gym v2/v3 envs that D4RL and the ADMPO paper used.
NeoRL-style envs keep the x position in the observation (``exclude_current_positions_from_observation
=False``), as ``neorl.make`` does.
"""

from __future__ import annotations

import warnings

import gymnasium as gym

# env key -> (gymnasium id, make kwargs)
ENV_IDS: dict[str, tuple[str, dict]] = {
    "hopper": ("Hopper-v4", {}),
    "walker2d": ("Walker2d-v4", {}),
    "halfcheetah": ("HalfCheetah-v4", {}),
    "neorl-hopper": ("Hopper-v4", {"exclude_current_positions_from_observation": False}),
    "neorl-walker2d": ("Walker2d-v4", {"exclude_current_positions_from_observation": False}),
    "neorl-halfcheetah": ("HalfCheetah-v4", {"exclude_current_positions_from_observation": False}),
}


def make_env(env_key: str, seed: int | None = None, **kwargs) -> gym.Env:
    """Create the gymnasium env for an env key (``hopper``, ``neorl-walker2d``, ...)."""
    if env_key not in ENV_IDS:
        raise ValueError(f"unknown environment {env_key!r}; expected one of {sorted(ENV_IDS)}")
    gym_id, default_kwargs = ENV_IDS[env_key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium flags v4 as deprecated in favour of v5
        env = gym.make(gym_id, **{**default_kwargs, **kwargs})
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
