"""Soft Actor-Critic core shared by ADMPO, the model-based baselines, CQL/EDAC and behaviour-policy
training.

Follows the ADMPO official code (REFERENCE.md section 2.4): tanh-squashed Gaussian actor with the
log-std clamped to [-5, 2], critics as a vectorised ensemble (two for SAC, N for EDAC), Polyak targets
after every critic update, optional automatic entropy tuning with log(alpha) starting at 0, optional
deterministic backup, optional actor cosine learning-rate schedule, and ``actor_freq`` (the actor and
alpha are updated once every ``actor_freq`` critic updates).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import nn

from benchmark.rl.compile import CompiledSteps, step
from benchmark.rl.configs import COMPILE_MODES
from benchmark.rl.nets import EnsembleMLP, mlp, soft_update

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
DEFAULT_LOGP_EPS = 1e-6  # OfflineRL-Kit / CORL
ADMPO_LOGP_EPS = 1.1920928955078125e-07  # np.finfo(np.float32).eps, the ADMPO official code's


class TanhGaussianActor(nn.Module):
    """State-conditioned diagonal Gaussian squashed by tanh and scaled to the action box."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        act_scale: float = 1.0,
        logp_eps: float = DEFAULT_LOGP_EPS,
    ):
        super().__init__()
        self.trunk = mlp(obs_dim, 2 * act_dim, hidden)
        self.act_dim = act_dim
        self.logp_eps = float(logp_eps)
        self.register_buffer("act_scale", torch.tensor(float(act_scale)))

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(action, log_prob)``; log_prob has shape ``[..., 1]``."""
        mean, log_std = self.dist_params(obs)
        std = log_std.exp()
        u = mean if deterministic else mean + std * torch.randn_like(mean)
        squashed = torch.tanh(u)
        normal_logp = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(
            -1, keepdim=True
        )
        # change of variables for a = scale * tanh(u)
        correction = self.log_abs_det(squashed)
        return self.act_scale * squashed, normal_logp - correction

    def log_abs_det(self, squashed: torch.Tensor) -> torch.Tensor:
        """``sum log(scale (1 - tanh(u)^2) + logp_eps)``, the change of variables for ``scale * tanh(u)``."""
        return torch.log(self.act_scale * (1 - squashed.pow(2)) + self.logp_eps).sum(-1, keepdim=True)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of given (already squashed, scaled) actions; used by CQL-style regularisers."""
        mean, log_std = self.dist_params(obs)
        squashed = (action / self.act_scale).clamp(-1 + 1e-6, 1 - 1e-6)
        u = torch.atanh(squashed)
        normal_logp = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(
            -1, keepdim=True
        )
        return normal_logp - self.log_abs_det(squashed)


class QEnsemble(nn.Module):
    """``n`` Q networks Q(s, a) evaluated in one batched op; returns ``[n, batch, 1]``."""

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = EnsembleMLP(n, obs_dim + act_dim, 1, hidden)
        self.n = n

    def forward(self, obs: torch.Tensor, act: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """``members``: only these Q networks (e.g. ``slice(0, 1)``: Q1 alone, as TD3's actor loss needs)."""
        return self.net(torch.cat([obs, act], dim=-1), members)


@dataclass
class SACFields:
    """The SAC hyper-parameters every SAC-based algorithm config declares: mixed into its config dataclass
    (listed after the trainer config base), where a class re-declares only the defaults its source gives
    differently. :func:`sub_config` turns such a config into the :class:`SACConfig` of the core.
    Defaults: ADMPO official code (REFERENCE.md 2.2/2.4/3.2)."""

    hidden: tuple[int, ...] = (256, 256)  # actor and critic hidden layers
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.1  # initial (auto) or fixed value of the entropy temperature
    auto_alpha: bool = False
    target_entropy: float | None = None  # None -> -|A|

    # every algorithm with these fields updates through SAC.update, which can compile its steps
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"compile": COMPILE_MODES}


@dataclass
class SACConfig(SACFields):
    """Hyperparameters of the SAC core: :class:`SACFields` plus the options only some algorithms set."""

    num_critics: int = 2
    actor_freq: int = 1
    deterministic_backup: bool = False
    q_clip: float | None = None
    lr_schedule_steps: int = 0  # >0: cosine-anneal the actor lr over this many scheduler steps
    alpha_max: float | None = None  # auto_alpha: use min(exp(log_alpha), alpha_max); None: no clamp
    logp_eps: float = DEFAULT_LOGP_EPS  # epsilon of the tanh log-det (ADMPO_LOGP_EPS: ADMPO official)
    compile: str = "off"  # torch.compile of update_critic / update_actor (benchmark/rl/compile.py)


def sub_config(cfg, target_cls, prefix: str = "", **overrides):
    """``target_cls`` (a config dataclass) made of the fields of ``cfg`` named ``prefix + field`` (lists
    become tuples, as the YAML gives them); ``overrides`` win. The one converter from an algorithm's flat
    config to a building block's config, e.g. ``sub_config(cfg, SACConfig)``: the SAC core takes exactly
    the SAC fields the algorithm declares, and its own defaults for the rest."""
    values = {}
    for f in fields(target_cls):
        if hasattr(cfg, prefix + f.name):
            value = getattr(cfg, prefix + f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    return target_cls(**values)


class SAC(nn.Module):
    """SAC learner: ``update(batch) -> dict`` of scalar diagnostics, ``act(obs, deterministic)``."""

    def __init__(
        self, obs_dim: int, act_dim: int, cfg: SACConfig, act_scale: float = 1.0, device: str = "cpu"
    ):
        super().__init__()
        self.cfg = cfg
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden, act_scale, cfg.logp_eps)
        self.critic = QEnsemble(obs_dim, act_dim, cfg.num_critics, cfg.hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # auto-alpha: log(alpha) starts at 0 (alpha = 1) in the official code; fixed: log(cfg.alpha)
        init_log_alpha = 0.0 if cfg.auto_alpha else math.log(cfg.alpha)
        self.log_alpha = nn.Parameter(torch.tensor(init_log_alpha), requires_grad=cfg.auto_alpha)
        self.target_entropy = float(cfg.target_entropy) if cfg.target_entropy else -float(act_dim)
        self.to(device)
        self.device = torch.device(device)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr) if cfg.auto_alpha else None
        self.actor_sched = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_optim, cfg.lr_schedule_steps)
            if cfg.lr_schedule_steps > 0
            else None
        )
        self.num_updates = 0
        self.compiled_steps = CompiledSteps(cfg.compile)

    @property
    def alpha(self) -> torch.Tensor:
        alpha = self.log_alpha.exp().detach()
        if self.cfg.auto_alpha and self.cfg.alpha_max is not None:
            alpha = alpha.clamp(max=self.cfg.alpha_max)
        return alpha

    # ----- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, deterministic: bool = True):
        """numpy obs ``[obs_dim]`` or ``[B, obs_dim]`` -> numpy action of the same leading shape."""
        t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        action, _ = self.actor.sample(t, deterministic)
        return action.cpu().numpy()

    # ----- learning -----------------------------------------------------------------------------
    def critic_target_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Soft Bellman target ``r + gamma (1 - done) (min_i Q_targ_i(s', a') - alpha log pi(a'|s'))``."""
        with torch.no_grad():
            next_act, next_logp = self.actor.sample(batch["next_obs"])
            next_q = self.critic_target(batch["next_obs"], next_act).min(0).values
            if not self.cfg.deterministic_backup:
                next_q = next_q - self.alpha * next_logp
            target = batch["rew"] + self.cfg.gamma * (1.0 - batch["done"]) * next_q
            if self.cfg.q_clip is not None:
                target = target.clamp(max=self.cfg.q_clip)
        return target

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        q = self.critic(batch["obs"], batch["act"])  # [n, B, 1]
        target = self.critic_target_value(batch)
        loss = ((q - target.unsqueeze(0)) ** 2).mean(dim=(1, 2)).sum()
        return loss, {"q_mean": q.mean().detach()}

    def actor_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, logp = self.actor.sample(obs)
        q = self.critic(obs, action).min(0).values
        return (self.alpha * logp - q).mean(), logp

    def update_critic(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        loss, info = self.critic_loss(batch)
        self.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optim.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        info["critic_loss"] = loss.detach()
        return info

    def update_actor(self, obs: torch.Tensor) -> dict[str, float]:
        loss, logp = self.actor_loss(obs)
        self.actor_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_optim.step()
        info = {"actor_loss": loss.detach(), "entropy": -logp.mean().detach()}
        if self.alpha_optim is not None:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_optim.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optim.step()
        info["alpha"] = self.alpha.detach()
        return info

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        info = step(self, self.update_critic)(batch)
        if self.num_updates % self.cfg.actor_freq == 0:
            info.update(step(self, self.update_actor)(batch["obs"]))
        self.num_updates += 1
        return info  # device tensors: the loops read a window of them at once (StepMetrics)

    def step_lr_schedule(self) -> None:
        """Advance the actor's cosine schedule by one step (ADMPO-OFF calls it once per epoch)."""
        if self.actor_sched is not None:
            self.actor_sched.step()
