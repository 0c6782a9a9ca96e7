"""The shared offline model-based loop (MOPO, COMBO, RAMBO, MOBILE, CBOP, ADMPO-OFF).

A subclass provides ``train_dynamics() -> dict`` (called once in ``setup``) and
``rollout() -> (transitions, info)``. Every ``rollout_freq`` gradient steps the base class rolls the
model out and pushes the transitions into a FIFO model buffer of ``rollout_batch_size *
rollout_length * model_retain_epochs`` entries; every batch holds ``int(batch_size * real_ratio)`` real
transitions and the rest from the model buffer (OfflineRL-Kit's and the ADMPO code's layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from benchmark.rl.algorithm import OfflineAlgorithm
from benchmark.rl.buffers import Batch, MixedBatch, TransitionBuffer, mix
from benchmark.rl.configs import OfflineConfig


@dataclass
class ModelBasedConfig(OfflineConfig):
    rollout_freq: int = 1000  # gradient steps between model rollouts
    rollout_batch_size: int = 50_000  # rollout starts per rollout
    rollout_length: int = 5  # model steps per rollout (H)
    model_retain_epochs: int = 5  # model buffer keeps this many rollouts' worth of data
    real_ratio: float = 0.05  # share of real transitions in each batch

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"rollout_batch_size": 200, "rollout_freq": 25},
        "short": {"rollout_batch_size": 5000, "rollout_freq": 500},
    }


class ModelBasedOffline(OfflineAlgorithm):
    def __init__(self, cfg: ModelBasedConfig, ctx):
        super().__init__(cfg, ctx)
        capacity = cfg.rollout_batch_size * cfg.rollout_length * cfg.model_retain_epochs
        self.fake = TransitionBuffer(capacity, ctx.obs_dim, ctx.act_dim, ctx.device)
        self.rollout_info: dict = {}

    # ----- to implement -------------------------------------------------------------------------
    def train_dynamics(self) -> dict:
        raise NotImplementedError

    def rollout(self) -> tuple[Batch, dict]:
        """Return model transitions ``obs, act, rew (penalised), next_obs, done`` and diagnostics."""
        raise NotImplementedError

    # ----- shared loop --------------------------------------------------------------------------
    def setup(self) -> dict:
        return self.train_dynamics() or {}

    def next_batch(self, step: int) -> MixedBatch:
        cfg = self.cfg
        if step % cfg.rollout_freq == 0:
            transitions, info = self.rollout()
            self.fake.add(**transitions)
            self.rollout_info = info
        # real data only while the model buffer is empty (every rollout terminated at once)
        return mix(self.real, self.fake, cfg.batch_size, cfg.real_ratio, self.batch_generator)

    def end_epoch(self, epoch: int) -> dict:
        return {f"rollout/{k}": v for k, v in self.rollout_info.items()}
