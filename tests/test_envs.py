"""Env factory: dims of every env key and the MBPO-style truncated observations."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from benchmark.envs import ENV_IDS, env_dims, make_env

DIMS = {
    "hopper": (11, 3),
    "walker2d": (17, 6),
    "halfcheetah": (17, 6),
    "neorl-hopper": (12, 3),
    "neorl-walker2d": (18, 6),
    "neorl-halfcheetah": (18, 6),
    "anttruncatedobs": (27, 8),
    "humanoidtruncatedobs": (45, 17),
}


def test_every_env_key_has_the_expected_dims():
    assert set(ENV_IDS) == set(DIMS)
    for key, dims in DIMS.items():
        assert env_dims(key) == dims, key
        env = make_env(key, seed=0)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (dims[0],) and env.observation_space.shape == (dims[0],)
        env.close()


def test_neorl_obs_keep_x_position():
    plain, neorl = make_env("hopper"), make_env("neorl-hopper")
    a, _ = plain.reset(seed=3)
    b, _ = neorl.reset(seed=3)
    np.testing.assert_allclose(b[1:], a)
    assert b[0] == pytest.approx(neorl.unwrapped.data.qpos[0])


def _full(gym_id, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(gym_id, **kw)


def test_ant_truncated_is_qpos_qvel_without_contact_forces():
    trunc, full = make_env("anttruncatedobs"), _full("Ant-v4", use_contact_forces=True)
    a, _ = trunc.reset(seed=1)
    b, _ = full.reset(seed=1)
    assert b.shape == (27 + 84,)
    rng = np.random.default_rng(0)
    for _ in range(5):
        act = rng.uniform(-1, 1, 8)
        a, *_ = trunc.step(act)
        b, *_ = full.step(act)
        np.testing.assert_allclose(a, b[:27])
    data = trunc.unwrapped.data
    np.testing.assert_allclose(a, np.concatenate([data.qpos[2:], data.qvel]))


def test_humanoid_truncated_is_qpos_qvel_only():
    env = make_env("humanoidtruncatedobs", seed=0)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(rng.uniform(-0.4, 0.4, 17))
    data = env.unwrapped.data
    np.testing.assert_allclose(obs, np.concatenate([data.qpos[2:], data.qvel]))
    assert env.observation_space.contains(obs.astype(env.observation_space.dtype))


def test_unknown_env_key():
    with pytest.raises(ValueError, match="unknown environment 'ant'.*hopper"):
        make_env("ant")
