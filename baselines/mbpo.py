"""MBPO: Model-Based Policy Optimization (Janner et al., NeurIPS 2019), online baseline of Figure 3.

Official code ``jannerm/mbpo`` at ac694ff (``mbpo/algorithms/mbpo.py``, ``mbpo/models/bnn.py``,
``mbpo/models/fake_env.py``, ``examples/config/<env>/0.py``; audit: online-baselines.md 1.2), on the shared
online loop (:mod:`benchmark.rl.online`):

* **Model.** :class:`benchmark.rl.dynamics.EnsembleDynamics` (the offline baselines' ensemble, which is
  MBPO's): 7 Gaussian members over ``(s' - s, r)``, 5 elites, 4x200 Swish (400 for Humanoid), per-layer
  weight decay, learnable soft log-variance bounds, Adam 1e-3, batch 256. Every ``model_train_freq`` env
  steps it trains on **all** real data with a random 20% holdout capped at 5000 (``bnn.py``:
  ``max_logging=5000``), per-member snapshots on a >1% holdout-MSE improvement, and stops once
  ``_epochs_since_update > 5`` (our ``dynamics_max_epochs_since_update = 6``: we stop at ``>=``). The
  **same** ensemble, optimizer state included, keeps training across calls (MBPO never re-initialises
  it; ADMPO-ON does).
* **Rollouts.** At the same steps, ``rollout_batch_size`` real start states (drawn with replacement)
  roll ``k`` steps with the stochastic SAC policy; per sample a random elite and a Gaussian draw
  (``FakeEnv.step``); rollouts stop at the true termination function. ``k`` follows the official
  linear schedule in **epochs** of ``epoch_length`` env steps: ``rollout_schedule = [a, b, k_min,
  k_max]`` with ``k = int(min(max(k_min + (epoch - a) / (b - a) (k_max - k_min), k_min), k_max))`` and
  ``epoch = it // epoch_length``.
* **Model buffer.** FIFO of ``rollout_batch_size * k * epoch_length / model_train_freq *
  model_retain_epochs`` transitions, re-allocated whenever ``k`` changes by copying the old rows in
  storage order (``_reallocate_model_pool`` + ``return_all_samples``).
* **Policy.** SAC (2x256, lr 3e-4, tau 5e-3, auto alpha from log alpha 0, per-env target entropy), ``G``
  (``n_train_repeat``) updates per env step on ``int(256 * 0.05) = 12`` real + 244 model transitions.

Departures, all from sharing the benchmark's loop with ADMPO-ON and SAC: evaluation is 10 deterministic
episodes every 1000 env steps (the code runs 1 episode per epoch); the 5000 warm-up steps are uniformly
random (the code's ``n_initial_exploration_steps`` use softlearning's uniform policy too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from benchmark.config import AT_LEAST_ONE, Range
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import Batch, index_generator
from benchmark.rl.configs import ConfigError
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsFields, policy_rollout
from benchmark.rl.online import (
    Context,
    OnlineModelBased,
    OnlineModelBasedConfig,
    OnlineSACConfig,
    SACAgent,
    rollout_length,
)
from benchmark.rl.sac import SAC


@dataclass
class MBPOConfig(OnlineModelBasedConfig, OnlineSACConfig, EnsembleDynamicsFields):
    """Defaults: ``jannerm/mbpo`` Hopper config and ``mbpo.py`` / ``bnn.py``; per-env YAMLs override."""

    env_steps: int = 50_000
    start_learning: int = 5000  # n_initial_exploration_steps
    updates_per_step: int = 20  # n_train_repeat
    eval_interval: int = 1000
    eval_episodes: int = 10
    epoch_length: int = 1000  # the schedule counts epochs of this many env steps
    rollout_schedule: tuple[int, int, int, int] = (20, 150, 1, 15)  # [epoch_a, epoch_b, k_min, k_max]
    model_update_interval: int = 250  # model_train_freq
    model_rollout_interval: int = 250  # MBPO rolls out right after each training
    model_retain_steps: int = 1000  # model_retain_epochs x epoch_length
    rollout_batch_size: int = 100_000
    real_ratio: float = 0.05
    target_entropy: float | None = -1.0
    dynamics_max_holdout: int = 5000  # bnn.py max_logging
    dynamics_max_epochs_since_update: int = 6  # bnn.py stops when _epochs_since_update > 5
    # mbpo/static/*.py (BMPO's static/*.py are the same): the ADMPO set; walker2d has no |s| < 100 check
    dynamics_termination: str = "admpo"

    RANGES: ClassVar[dict[str, Range]] = {"epoch_length": AT_LEAST_ONE}

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        # 400 warm-up transitions: 320 after the 20% holdout (more than one batch)
        "smoke": {"env_steps": 6, "eval_interval": 3, "start_learning": 400, "rollout_batch_size": 128,
                  "dynamics_max_epochs": 3},
        # short: ADMPO-ON's short sizes (5000 warm-up, 1000 env steps of 20 updates, 5000 rollout starts,
        # model trainings capped at 20 epochs) so the two learning tests compare like for like
        "short": {"env_steps": 1000, "eval_interval": 250, "start_learning": 5000, "rollout_batch_size": 5000,
                  "dynamics_max_epochs": 20},
    }

    def __post_init__(self):
        super().__post_init__()
        if self.epoch_length <= 0:
            raise ConfigError(f"epoch_length must be positive, got {self.epoch_length}")


class MBPO(SACAgent, OnlineModelBased):
    cfg: MBPOConfig
    resize_in_storage_order = True

    def __init__(self, cfg: MBPOConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.sac = SAC(ctx.obs_dim, ctx.act_dim, cfg.sac_config(), act_scale=ctx.act_scale, device=ctx.device)
        # one ensemble for the whole run: trained again, never re-created
        self.dynamics = EnsembleDynamics(ctx.obs_dim, ctx.act_dim, cfg.dynamics_config(), env_key=ctx.env_key,
                                         device=ctx.device, seed=int(cfg.seed) + 1)
        # rollout start states, drawn on the replay's device (a CPU generator on the CPU)
        self.start_generator = index_generator(torch.Generator().manual_seed(int(cfg.seed) + 2), ctx.device)
        self.model_history: list[dict] = []

    def rollout_length_at(self, it: int) -> int:
        return rollout_length(it // self.cfg.epoch_length, self.cfg.rollout_schedule)

    # ----- model hooks --------------------------------------------------------------------------
    def real_arrays(self) -> Batch:
        """Every real transition (MBPO trains on the whole env pool)."""
        return self.real.buffer.all()

    def train_model(self, it: int) -> dict:
        data = self.real_arrays()
        info = self.dynamics.fit_arrays(data["obs"], data["act"], data["rew"], data["next_obs"])
        info = {k.removeprefix("dynamics/"): v for k, v in info.items()}
        self.model_history.append({"it": it, "buffer": len(data["obs"]), **info})
        return info

    def rollout(self, num_starts: int, length: int) -> tuple[Batch, dict]:
        starts = self.real.sample(num_starts, self.start_generator)["obs"]
        # the stochastic SAC policy (MBPO rolls out ``policy.actions_np``, a sample)
        return policy_rollout(self.dynamics, self.policy, starts, length)



register(
    AlgorithmSpec(
        name="mbpo",
        config_cls=MBPOConfig,
        factory=MBPO,
        kind="online",
        config_dir=Path(__file__).parent / "configs" / "mbpo",
        description="MBPO: SAC on branched rollouts of a persistent 7/5 Gaussian ensemble (online)",
        paper="Janner et al., When to Trust Your Model: Model-Based Policy Optimization, NeurIPS 2019",
        module=__name__,
    )
)
