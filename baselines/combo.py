"""COMBO: Conservative Offline Model-Based Policy Optimization (Yu et al., NeurIPS 2021, arXiv 2102.08363).

CQL's conservative critic loss on the shared model-based loop: batches mix ``real_ratio`` real
transitions with transitions from short rollouts of the shared Gaussian ensemble
(:mod:`benchmark.rl.dynamics`, no reward penalty). The Bellman error is taken on the whole mixed batch;
the conservative term

    cql_weight * ( T * E_{s ~ rho}[ log sum_a exp(Q(s, a) / T) ] - E_{(s,a) ~ D}[ Q(s, a) ] )

pushes values *down* at states ``rho`` that include model-rollout states (``rho_s: mix``, the
whole batch, OfflineRL-Kit's default; ``rho_s: model``, only the rollout part) and pushes them *up*
only on the real dataset pairs. The log-sum-exp is CQL's importance-sampled estimate
(:class:`baselines.cql.CQLLearner`, all sampled actions through the critics in one batched call).

Defaults: OfflineRL-Kit ``run_example/run_combo.py`` (COMBO has no official code; the ADMPO paper
copied COMBO's numbers from its paper): three 256-unit layers, actor lr 1e-4 cosine-annealed over the
epochs, critic lr 3e-4, automatic entropy tuning, deterministic backup, cql_weight 5, 10 sampled actions,
rollouts of length 5 every 1000 steps from 50,000 dataset states, 50% real data. The rollout policy
samples from the actor (``uniform_rollout: true`` uses uniform actions instead). The log-sum-exp
grouping defaults to the CQL paper's (``lse_grouping: state``), which is also the COMBO paper's; its
OfflineRL-Kit port groups per (state, sample) (``state_sample``), see :mod:`baselines.cql`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from baselines.cql import CQLConfig, CQLLearner
from baselines.mopo import ModelBasedSACConfig
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context
from benchmark.rl.buffers import Batch
from benchmark.rl.dynamics import EnsembleDynamics, policy_rollout
from benchmark.rl.model_based import ModelBasedOffline

RHO_S_CHOICES = ("mix", "model")


@dataclass
class COMBOConfig(ModelBasedSACConfig, CQLConfig):
    """SAC + CQL + model-based fields; defaults of OfflineRL-Kit ``run_example/run_combo.py``."""

    epochs: int = 1000
    hidden: tuple[int, ...] = field(default=(256, 256, 256))
    deterministic_backup: bool = True
    alpha_max: float | None = None  # OfflineRL-Kit's COMBOPolicy does not clamp alpha (combo.py:132)
    lr_schedule: bool = True
    cql_weight: float = 5.0
    rollout_length: int = 5
    real_ratio: float = 0.5
    rho_s: str = "mix"  # push-down states: "mix" (whole batch) or "model" (rollout part only)
    uniform_rollout: bool = False  # roll the model out with uniform-random instead of policy actions


class COMBOLearner(CQLLearner):
    """CQL learner whose push-down states / push-up pairs follow the real/model layout of a batch.

    A batch holds ``n_real`` real rows first, then model rows (a :class:`benchmark.rl.buffers.MixedBatch`
    from :meth:`ModelBasedOffline.next_batch`); the owner sets ``n_real`` from it before each update.
    """

    n_real: int | None = None  # None: the whole batch is real

    def push_down_states(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        n_real = self.n_real
        if self.cql.rho_s == "model" and n_real is not None and n_real < batch["obs"].shape[0]:
            return batch["obs"][n_real:], batch["next_obs"][n_real:]
        return batch["obs"], batch["next_obs"]

    def push_up_mask(self, batch: dict[str, torch.Tensor]) -> slice:
        return slice(None) if self.n_real is None else slice(0, self.n_real)


class COMBO(ModelBasedOffline):
    def __init__(self, cfg: COMBOConfig, ctx: Context):
        if cfg.rho_s not in RHO_S_CHOICES:
            raise ValueError(f"COMBOConfig.rho_s must be one of {RHO_S_CHOICES}, got {cfg.rho_s!r}")
        if not 0.0 < cfg.real_ratio <= 1.0:
            raise ValueError(f"COMBOConfig.real_ratio must be in (0, 1], got {cfg.real_ratio}")
        super().__init__(cfg, ctx)
        torch.manual_seed(int(cfg.seed))  # network initialisation and policy noise
        self.agent = COMBOLearner(
            ctx.obs_dim, ctx.act_dim, cfg, ctx.act_scale, ctx.device, sac_cfg=cfg.sac_config()
        )
        self.agent.generator = torch.Generator(device=ctx.device).manual_seed(int(cfg.seed) + 1)
        self.dynamics = EnsembleDynamics(
            ctx.obs_dim, ctx.act_dim, cfg.dynamics_config(), ctx.env_key, ctx.device, seed=int(cfg.seed)
        )
        self.rollout_generator = torch.Generator(device=ctx.device).manual_seed(int(cfg.seed) + 2)

    # ----- model ----------------------------------------------------------------------------------
    def train_dynamics(self) -> dict:
        self.dynamics.checkpoint = self.setup_loop("model")  # a kill mid-training resumes it
        return self.dynamics.fit(self.ctx.dataset)

    def rollout_policy(self, obs: torch.Tensor) -> torch.Tensor:
        if self.cfg.uniform_rollout:
            shape = (obs.shape[0], self.ctx.act_dim)
            u = torch.rand(shape, generator=self.rollout_generator, device=self.device)
            return (2.0 * u - 1.0) * self.ctx.act_scale
        with torch.no_grad():
            return self.agent.actor.sample(obs)[0]

    def rollout(self) -> tuple[Batch, dict]:
        init = self.real.sample(self.cfg.rollout_batch_size, self.batch_generator)["obs"]
        return policy_rollout(self.dynamics, self.rollout_policy, init, self.cfg.rollout_length)

    # ----- policy ---------------------------------------------------------------------------------
    def next_batch(self, step: int) -> Batch:
        batch = super().next_batch(step)
        self.agent.n_real = batch.n_real if batch.n_model else None  # None: the whole batch is real
        return batch

    def learn(self, batch: Batch) -> dict:
        return self.agent.update(batch)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.agent.act(obs, deterministic)

    def end_epoch(self, epoch: int) -> dict:
        self.agent.step_lr_schedule()
        return super().end_epoch(epoch)


register(
    AlgorithmSpec(
        name="combo",
        config_cls=COMBOConfig,
        factory=COMBO,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "combo",
        description="COMBO: CQL regulariser with model-rollout push-down states and real-data push-up",
        paper="Yu et al., COMBO: Conservative Offline Model-Based Policy Optimization, NeurIPS 2021",
        module=__name__,
    )
)
