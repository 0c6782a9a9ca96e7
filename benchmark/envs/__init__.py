"""Environments: gymnasium MuJoCo factories for every task family."""

from benchmark.envs.factory import ENV_IDS, env_dims, make_env

__all__ = ["ENV_IDS", "env_dims", "make_env"]
