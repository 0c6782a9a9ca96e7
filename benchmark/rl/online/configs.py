"""Configs of the shared online loop: sizes, SAC fields, and the Dyna-style model hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from benchmark.rl.configs import ConfigError, OnlineConfig
from benchmark.rl.sac import SACConfig, SACFields, sub_config


@dataclass
class OnlineTrainConfig(OnlineConfig):
    """Sizes of the shared online loop (defaults: the ADMPO official online code, REFERENCE.md 2.2)."""

    start_learning: int = 5000  # uniformly random warm-up steps, not counted in env_steps
    updates_per_step: int = 1  # gradient steps per env step (UTD ratio)
    update_interval: int = 1  # learn every update_interval env steps (update_interval * UTD steps then)
    batch_size: int = 256
    buffer_size: int = 1_000_000  # real env buffer capacity (FIFO)

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"start_learning": 200},
        "short": {"start_learning": 2000},
    }


@dataclass
class OnlineSACConfig(SACFields, OnlineTrainConfig):
    """SAC hyperparameters for online learners. Defaults are the SAC paper's (Haarnoja et al. 2018,
    "Soft Actor-Critic Algorithms and Applications", Table 1), which are also the ADMPO online code's
    argparse defaults (REFERENCE.md 2.2): Adam 3e-4 everywhere, 2x256 ReLU, gamma 0.99, tau 0.005,
    automatic entropy tuning with log(alpha) starting at 0 and target entropy -|A|."""

    actor_lr: float = 3e-4
    alpha_lr: float = 3e-4
    alpha: float = 0.2  # fixed temperature when auto_alpha is false (auto: log alpha starts at 0)
    auto_alpha: bool = True
    num_critics: int = 2
    actor_freq: int = 1  # actor and alpha updated once every actor_freq critic updates

    def sac_config(self, **overrides) -> SACConfig:
        """The :class:`SACConfig` made of this config's SAC fields (``overrides`` win)."""
        return sub_config(self, SACConfig, **overrides)


@dataclass
class OnlineModelBasedConfig(OnlineTrainConfig):
    """Generic Dyna-style hooks (ADMPO-ON and MBPO share them; REFERENCE.md 2.1-2.2).

    The model buffer holds ``rollout_batch_size * L(it) * model_retain_steps / model_rollout_interval``
    transitions, i.e. the rollouts of the last ``model_retain_steps`` env steps (MBPO's
    ``model_retain_epochs * epoch_length``); it grows with the rollout length and keeps its data.
    """

    model_update_interval: int = 250  # env steps between model (re)trainings; 0 = never retrain
    model_rollout_interval: int = 250  # env steps between model rollouts
    rollout_batch_size: int = 100_000  # rollout starts per rollout
    # [a, b, x, y]: the rollout length grows linearly from x to y while it goes from a to b
    rollout_schedule: tuple[int, int, int, int] = (10_000, 100_000, 1, 20)
    model_retain_steps: int = 1000
    real_ratio: float = 0.05  # share of real transitions in each batch: int(batch_size * real_ratio)

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"rollout_batch_size": 256},
        "short": {"rollout_batch_size": 5000},
    }

    def __post_init__(self):
        if len(self.rollout_schedule) != 4:
            raise ConfigError(f"rollout_schedule must be [a, b, x, y], got {self.rollout_schedule!r}")
        a, b, x, y = self.rollout_schedule
        if b <= a or x < 1 or y < x:
            raise ConfigError(
                f"rollout_schedule [a, b, x, y] needs b > a and 1 <= x <= y, "
                f"got {list(self.rollout_schedule)}"
            )
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ConfigError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if self.model_rollout_interval <= 0:
            raise ConfigError(f"model_rollout_interval must be positive, got {self.model_rollout_interval}")


def rollout_length(it: int, schedule: tuple[int, int, int, int]) -> int:
    """``L(it) = int(min(max(x + (it - a) / (b - a) * (y - x), x), y))`` (MBPO's and ADMPO's rule)."""
    a, b, x, y = schedule
    return int(min(max(x + (it - a) / (b - a) * (y - x), x), y))


