"""The trainer configs every algorithm config extends, and the error a bad config value raises.

These are the shared RL package's own settings (seed, device, evaluation, epochs or env steps). Filling them
from defaults, YAML files, budgets and ``--set`` overrides, range checks and hashing are the harness's
(:mod:`benchmark.config`). ``BUDGETS`` are data on the class: ``{budget: {field: value}}``, sizes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A config file, field or override is invalid; the message names it and what was expected."""


# ``compile``: torch.compile of the update steps (benchmark/rl/compile.py); "reduce-overhead" adds CUDA graphs
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


@dataclass
class BaseConfig:
    seed: int = 0
    device: str = "cpu"
    final_k: int = 10  # final_score = mean normalized score of the last final_k evaluations
    eval_episodes: int = 10  # deterministic evaluation episodes per evaluation
    # torch.compile the fixed-shape update steps (one of COMPILE_MODES); only a config whose algorithm
    # compiles its updates allows more than "off" (CHOICES). Not bit-exact, so hashed when set.
    compile: str = "off"

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # allowed values of string fields, found along the class's MRO like ``RANGES`` (benchmark/config.py)
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"compile": ("off",)}


@dataclass
class OfflineConfig(BaseConfig):
    epochs: int = 1000  # evaluations; one epoch = steps_per_epoch gradient steps
    steps_per_epoch: int = 1000
    batch_size: int = 256
    checkpoint_every: int = 25  # epochs between run checkpoints (0 = none); not part of the config hash

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"epochs": 2, "steps_per_epoch": 25, "eval_episodes": 2, "final_k": 1,
                  "checkpoint_every": 0},
        "short": {"epochs": 20, "steps_per_epoch": 500, "eval_episodes": 5, "final_k": 5,
                  "checkpoint_every": 5},
    }


@dataclass
class OnlineConfig(BaseConfig):
    env_steps: int = 100_000  # real environment steps after warm-up
    eval_interval: int = 1000
    checkpoint_every: int = 5000  # env steps between run checkpoints (0 = none); not part of the config hash

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"env_steps": 300, "eval_interval": 100, "eval_episodes": 2, "final_k": 1,
                  "checkpoint_every": 0},
        "short": {"env_steps": 10_000, "eval_interval": 1000, "eval_episodes": 5, "final_k": 3,
                  "checkpoint_every": 1000},
    }
