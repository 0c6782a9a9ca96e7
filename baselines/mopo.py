"""MOPO: Model-based Offline Policy Optimization (Yu et al., NeurIPS 2020, arXiv 2005.13239).

SAC trained on a mix of real transitions (``real_ratio``) and short branched rollouts of a learned
Gaussian ensemble (:mod:`benchmark.rl.dynamics`) started from dataset states. Each model reward is
penalised by the ensemble's aleatoric uncertainty,

    r~(s, a) = r^(s, a) - penalty_coef * max_i || sigma_i(s, a) ||_2 ,

the maximum over all ensemble members of the norm of the predicted standard deviation (next state and
reward dims, as OfflineRL-Kit's ``EnsembleDynamics.step`` with ``uncertainty_mode="aleatoric"``). A
rollout stops at the true termination function's first ``done``.

Defaults: OfflineRL-Kit ``run_example/run_mopo.py``, the implementation the ADMPO paper retrained MOPO
with on D4RL v2 (REFERENCE.md section 4.3): two 256x256 critics, actor lr 1e-4 cosine-annealed over
the 3000 epochs of 1000 steps, critic lr 3e-4, automatic entropy tuning (lr 1e-4), gamma 0.99,
tau 0.005; rollouts every 1000 steps from 50,000 dataset states, model buffer of 5 rollouts, 5% real
data per batch of 256; the automatic temperature is clamped at 1 after each update as OfflineRL-Kit's
``SACPolicy`` does (``alpha_max``). The rollout policy samples from the actor (stochastic), as OfflineRL-Kit's
``select_action`` does during rollouts. :class:`MOPO` is also the base of MOBILE and
RAMBO (they change the penalty / the model training, not the loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context
from benchmark.rl.buffers import Batch
from benchmark.rl.dynamics import (
    EnsembleDynamics,
    EnsembleModelBasedConfig,
    penalty_max_std_norm,
    policy_rollout,
)
from benchmark.rl.model_based import ModelBasedOffline
from benchmark.rl.sac import SAC, SACConfig, SACFields, sub_config


@dataclass
class ModelBasedSACConfig(SACFields, EnsembleModelBasedConfig):
    """SAC fields shared by MOPO, MOBILE and RAMBO (OfflineRL-Kit ``run_example`` defaults; those of
    :class:`SACFields` it sets otherwise are re-declared here)."""

    epochs: int = 3000
    alpha: float = 0.2  # entropy temperature when auto_alpha is false
    auto_alpha: bool = True  # log(alpha) starts at 0, target entropy -|A|
    # OfflineRL-Kit's SACPolicy (MOPO, RAMBO) and MOBILE clamp the auto temperature at 1 (sac.py:126)
    alpha_max: float | None = 1.0
    deterministic_backup: bool = False  # drop -alpha log pi from the Bellman target
    num_critics: int = 2
    lr_schedule: bool = True  # cosine-anneal the actor lr over `epochs` (stepped once per epoch)

    def sac_config(self):
        return sub_config(self, SACConfig, lr_schedule_steps=self.epochs if self.lr_schedule else 0)


@dataclass
class MOPOConfig(ModelBasedSACConfig):
    rollout_length: int = 1  # OfflineRL-Kit default; per-dataset values in configs/mopo/*.yaml
    penalty_coef: float = 2.5  # lambda


class MOPO(ModelBasedOffline):
    """SAC on real + penalised model data; subclasses override :meth:`reward_fn` or :meth:`learn`."""

    def __init__(self, cfg: ModelBasedSACConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.sac = SAC(ctx.obs_dim, ctx.act_dim, cfg.sac_config(), act_scale=ctx.act_scale, device=ctx.device)
        self.dynamics = EnsembleDynamics(
            ctx.obs_dim, ctx.act_dim, cfg.dynamics_config(), ctx.env_key, ctx.device, seed=int(cfg.seed)
        )

    # ----- model ----------------------------------------------------------------------------------
    def train_dynamics(self) -> dict:
        self.dynamics.checkpoint = self.setup_loop("model")  # a kill mid-training resumes it
        return self.dynamics.fit(self.ctx.dataset)

    def reward_fn(self, reward: torch.Tensor, info: dict[str, torch.Tensor]) -> torch.Tensor:
        """MOPO's uncertainty-penalised reward."""
        return reward - self.cfg.penalty_coef * penalty_max_std_norm(info["std"])

    def rollout_policy(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.sac.actor.sample(obs)[0]

    def rollout(self) -> tuple[Batch, dict]:
        init = self.real.sample(self.cfg.rollout_batch_size, self.batch_generator)["obs"]
        return policy_rollout(
            self.dynamics, self.rollout_policy, init, self.cfg.rollout_length, self.reward_fn
        )

    # ----- policy ---------------------------------------------------------------------------------
    def learn(self, batch: Batch) -> dict:
        return self.sac.update(batch)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.sac.act(obs, deterministic)

    def end_epoch(self, epoch: int) -> dict:
        self.sac.step_lr_schedule()
        return super().end_epoch(epoch)


register(
    AlgorithmSpec(
        name="mopo",
        config_cls=MOPOConfig,
        factory=MOPO,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "mopo",
        description="MOPO: SAC on ensemble-model rollouts with a max-std-norm reward penalty",
        paper="Yu et al., MOPO: Model-based Offline Policy Optimization, NeurIPS 2020 (arXiv 2005.13239)",
        module=__name__,
    )
)
