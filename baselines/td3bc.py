"""TD3+BC (Fujimoto & Gu, NeurIPS 2021, "A Minimalist Approach to Offline Reinforcement Learning").

Actor loss ``-lambda * Q1(s, pi(s)) + (pi(s) - a)^2`` with ``lambda = alpha / mean|Q1(s, pi(s))|``
(detached), TD3 critics with target policy smoothing (noise 0.2, clip 0.5), delayed actor updates
(every 2 critic updates), states z-scored with dataset statistics. Defaults are the paper's
(alpha 2.5, lr 3e-4, batch 256, tau 0.005, gamma 0.99, 1M steps).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from baselines.bc import StateNormalizer
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context, OfflineAlgorithm
from benchmark.rl.buffers import Batch
from benchmark.rl.compile import CompiledSteps, step
from benchmark.rl.configs import COMPILE_MODES, OfflineConfig
from benchmark.rl.nets import mlp, soft_update
from benchmark.rl.sac import QEnsemble


@dataclass
class TD3BCConfig(OfflineConfig):
    hidden: tuple[int, ...] = field(default=(256, 256))
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 2.5  # weight of the RL term relative to behaviour cloning
    policy_noise: float = 0.2  # target policy smoothing noise (times the action scale)
    noise_clip: float = 0.5
    policy_freq: int = 2  # actor/target update every policy_freq critic updates
    normalize_states: bool = True

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"compile": COMPILE_MODES}  # critic_step / actor_step


def td3bc_actor_loss(q: torch.Tensor, pi: torch.Tensor, data_action: torch.Tensor, alpha: float):
    """``-lambda * mean Q + mean (pi - a)^2`` with ``lambda = alpha / mean|Q|`` (no gradient through it)."""
    lmbda = alpha / q.abs().mean().detach()
    return -lmbda * q.mean() + ((pi - data_action) ** 2).mean(), lmbda


class TD3BC(OfflineAlgorithm):
    def __init__(self, cfg: TD3BCConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.norm = StateNormalizer(ctx.dataset.observations, cfg.normalize_states).to(self.device)
        self.act_scale = ctx.act_scale
        self.actor = mlp(ctx.obs_dim, ctx.act_dim, cfg.hidden, output_activation=nn.Tanh).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = QEnsemble(ctx.obs_dim, ctx.act_dim, 2, cfg.hidden).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.updates = 0
        self.compiled_steps = CompiledSteps(cfg.compile)

    def pi(self, net: nn.Module, obs_n: torch.Tensor) -> torch.Tensor:
        return self.act_scale * net(obs_n)

    def learn(self, batch: Batch) -> dict:
        obs, next_obs = self.norm(batch["obs"]), self.norm(batch["next_obs"])
        info = step(self, self.critic_step)(obs, next_obs, batch)
        self.updates += 1
        if self.updates % self.cfg.policy_freq == 0:
            info.update(step(self, self.actor_step)(obs, batch["act"]))
        return info  # device tensors: the loops read a window of them at once (StepMetrics)

    def critic_step(self, obs: torch.Tensor, next_obs: torch.Tensor, batch: Batch) -> dict:
        """One critic update on normalised states (compiled with ``compile``); tensor diagnostics."""
        cfg = self.cfg
        with torch.no_grad():
            noise = (torch.randn_like(batch["act"]) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_act = (self.pi(self.actor_target, next_obs) + noise * self.act_scale).clamp(
                -self.act_scale, self.act_scale
            )
            target_q = self.critic_target(next_obs, next_act).min(0).values
            target = batch["rew"] + cfg.gamma * (1.0 - batch["done"]) * target_q
        q = self.critic(obs, batch["act"])
        critic_loss = ((q - target.unsqueeze(0)) ** 2).mean(dim=(1, 2)).sum()
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()
        return {"critic_loss": critic_loss.detach(), "q_mean": q.mean().detach()}

    def actor_step(self, obs: torch.Tensor, data_act: torch.Tensor) -> dict:
        """The delayed actor update and both target updates (compiled with ``compile``)."""
        cfg = self.cfg
        pi = self.pi(self.actor, obs)
        q1 = self.critic(obs, pi, members=slice(0, 1))[0]  # the actor loss reads Q1 only: skip Q2
        actor_loss, lmbda = td3bc_actor_loss(q1, pi, data_act, cfg.alpha)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        soft_update(self.actor_target, self.actor, cfg.tau)
        return {"actor_loss": actor_loss.detach(), "lmbda": lmbda.detach()}

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True):
        t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.pi(self.actor, self.norm(t)).cpu().numpy()


register(
    AlgorithmSpec(
        name="td3bc",
        config_cls=TD3BCConfig,
        factory=TD3BC,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "td3bc",
        description="TD3 + behaviour cloning regulariser with normalised states",
        paper="Fujimoto & Gu, NeurIPS 2021",
        module=__name__,
    )
)
