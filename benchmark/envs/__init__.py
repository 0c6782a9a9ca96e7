"""Environments: gymnasium MuJoCo factories for every task family."""

from benchmark.envs.factory import ENV_IDS, make_env

__all__ = ["ENV_IDS", "make_env"]
