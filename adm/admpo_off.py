"""ADMPO-OFF: offline policy optimisation with the any-step model (REFERENCE.md section 3).

The model is trained once in ``setup`` (:func:`adm.training.train_adm`, ``max_holdout`` 1000). Every
``rollout_freq`` gradient steps, ``rollout_batch_size`` rollouts of length H start from m-1 real history
steps (:func:`adm.rollout.rollout`) with reward ``r - penalty_coef * u`` and go into the FIFO model
buffer (``model_retain_epochs`` rollouts, the shared :class:`benchmark.rl.model_based.ModelBasedOffline`);
SAC (fixed alpha by default: every official D4RL/NeoRL config sets ``auto_alpha: False``) learns from
``real_ratio`` real + model data; the actor lr follows a cosine schedule over ``epochs``, stepped once
per epoch.

Defaults are the official ``main4offline.py`` argparse values (REFERENCE.md 3.2); the per-dataset YAMLs
in ``adm/configs/admpo-off/`` hold 3.3. Paper-vs-code switches: ``uncertainty`` (``mean_std`` = code,
``mixture_l1`` = paper Eq. 4), ``rollout_k_mode`` (``batch`` = code), ``rollout_dropout`` (True = code),
``model_per_sample_k`` (False = code); ``halfcheetah-medium-expert-v2-paper.yaml`` holds the paper's
Table 5 values for that dataset (select it with ``--set`` or by copying it over the code-valued YAML).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from adm.model import ADMConfig
from adm.rollout import RolloutConfig, rollout, rollout_chunk_for, sample_start_windows
from adm.training import ADMTrainConfig, train_adm
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context
from benchmark.rl.buffers import Batch, WindowSampler
from benchmark.rl.model_based import ModelBasedConfig, ModelBasedOffline
from benchmark.rl.sac import SAC, SACConfig, SACFields, sub_config
from benchmark.rl.termination import get_termination_fn


@dataclass
class ADMPOOffConfig(SACFields, ModelBasedConfig):
    # ----- schedule (main4offline.py) -----
    epochs: int = 5000  # n_epochs; 3000 in the *-random configs
    steps_per_epoch: int = 1000
    batch_size: int = 256
    rollout_freq: int = 1000
    rollout_batch_size: int = 50_000
    rollout_length: int = 1  # H (argparse default; every config sets it)
    model_retain_epochs: int = 5
    real_ratio: float = 0.05
    # ----- SAC (SACFields, whose defaults are this code's): alpha is fixed, per dataset in the YAMLs;
    # auto_alpha is false (argparse default True, but every D4RL/NeoRL config sets False) -----
    actor_freq: int = 1
    deterministic_backup: bool = False
    q_clip: float | None = None
    lr_schedule: bool = True  # cosine-anneal the actor lr over `epochs`, one step per epoch
    # ----- any-step model -----
    max_arm_step: int = 10  # m
    arm_hidden_dim: int = 200
    arm_rnn_layers: int = 3
    arm_dropout: float = 0.1
    model_lr: float = 3e-4
    model_batch_size: int = 256
    max_holdout: int = 1000
    model_patience: int = 25
    model_max_epochs: int = 0  # 0: train until early stopping (code); budgets cap it
    model_max_time_s: float = 0.0  # 0: no time cap
    model_per_sample_k: bool = False  # code: one k per minibatch
    # ----- rollouts -----
    penalty_coef: float = 1.0  # beta
    uncertainty: str = "mean_std"  # code; "mixture_l1" = paper Eq. 4; "max_aleatoric"; "max_pairwise"
    rollout_k_mode: str = "batch"  # code: one k per model step shared by the batch; "sample": per rollout
    rollout_dropout: bool = True  # code: dropout active at rollout time
    rollout_impl: str = "auto"  # carry (fast, exact) | loop (per-k reference) | auto
    # rollouts processed together; None (default): chosen for the device when the config is built
    # (CPU_ROLLOUT_CHUNK on the CPU, all starts on a GPU: adm.rollout.rollout_chunk_for)
    rollout_chunk_size: int | None = None

    CPU_ROLLOUT_CHUNK: ClassVar[int] = 1000  # ours: 1000 starts keep the rollout's matmuls in a CPU cache

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"model_max_epochs": 2, "rollout_batch_size": 200, "rollout_freq": 25},
        "short": {"model_max_epochs": 20, "rollout_batch_size": 2000, "rollout_freq": 500},
    }

    def __post_init__(self):
        if self.rollout_chunk_size is None:
            self.rollout_chunk_size = rollout_chunk_for(self.device, self.rollout_batch_size,
                                                        self.CPU_ROLLOUT_CHUNK)


class ADMPOOff(ModelBasedOffline):
    def __init__(self, cfg: ADMPOOffConfig, ctx: Context):
        super().__init__(cfg, ctx)
        sac_cfg = sub_config(cfg, SACConfig, lr_schedule_steps=cfg.epochs if cfg.lr_schedule else 0)
        torch.manual_seed(cfg.seed)  # network initialisation, policy sampling and model dropout in training
        self.sac = SAC(ctx.obs_dim, ctx.act_dim, sac_cfg, ctx.act_scale, str(ctx.device))
        self.model_cfg = ADMConfig(hidden_dim=cfg.arm_hidden_dim, rnn_layers=cfg.arm_rnn_layers,
                                   dropout=cfg.arm_dropout)
        self.train_cfg = ADMTrainConfig(
            max_step=cfg.max_arm_step, batch_size=cfg.model_batch_size, lr=cfg.model_lr,
            max_holdout=cfg.max_holdout, patience=cfg.model_patience, max_epochs=cfg.model_max_epochs,
            max_time_s=cfg.model_max_time_s, per_sample_k=cfg.model_per_sample_k,
        )
        self.rollout_cfg = RolloutConfig(
            max_step=cfg.max_arm_step, length=cfg.rollout_length, penalty_coef=cfg.penalty_coef,
            uncertainty=cfg.uncertainty, k_mode=cfg.rollout_k_mode, dropout=cfg.rollout_dropout,
            impl=cfg.rollout_impl, chunk_size=cfg.rollout_chunk_size,
        )
        self.windows = WindowSampler(ctx.dataset, ctx.device)
        self.termination_fn = get_termination_fn(ctx.env_key)
        self.rollout_generator = torch.Generator(device=ctx.device).manual_seed(int(cfg.seed) + 1)
        self.dynamics = None

    DATA_ATTRIBUTES = (*ModelBasedOffline.DATA_ATTRIBUTES, "windows")

    def attach_data(self, ctx) -> None:
        super().attach_data(ctx)
        self.windows = WindowSampler(ctx.dataset, ctx.device)

    def train_dynamics(self) -> dict:
        self.dynamics, info = train_adm(self.ctx.dataset, self.train_cfg, self.model_cfg, self.device,
                                        self.generator, sampler=self.windows,
                                        batch_generator=self.batch_generator,
                                        checkpoint=self.setup_loop("model"))  # a kill mid-training resumes it
        return {
            "model_holdout_mse": info["holdout_mse"],
            **{f"model_holdout_mse_k{k + 1}": v for k, v in enumerate(info["holdout_mse_k"])},
            "model_epochs": info["epochs"],
            "model_steps": info["steps"],
            "model_stopped": info["stopped"],
            "model_time_s": info["time_s"],
        }

    def _policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.sac.actor.sample(obs)[0]

    def rollout(self) -> tuple[Batch, dict]:
        cfg = self.cfg
        hist_obs, hist_act, start = sample_start_windows(self.windows, cfg.rollout_batch_size,
                                                         cfg.max_arm_step, self.batch_generator)
        return rollout(self.dynamics, self._policy, hist_obs, hist_act, start, self.rollout_cfg,
                       self.termination_fn, self.rollout_generator)

    def learn(self, batch: Batch) -> dict:
        return self.sac.update(batch)

    def act(self, obs, deterministic: bool = True):
        return self.sac.act(obs, deterministic)

    def end_epoch(self, epoch: int) -> dict:
        self.sac.step_lr_schedule()
        info = super().end_epoch(epoch)
        info["actor_lr"] = self.sac.actor_optim.param_groups[0]["lr"]
        return info


register(
    AlgorithmSpec(
        name="admpo-off",
        config_cls=ADMPOOffConfig,
        factory=ADMPOOff,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "admpo-off",
        description="ADMPO-OFF: any-step dynamics model rollouts with an any-step uncertainty penalty + SAC",
        paper="Lin et al., Any-step Dynamics Model Improves Future Predictions for Online and Offline "
              "Reinforcement Learning, ICLR 2025 (arXiv 2405.17031)",
        module=__name__,
    )
)
