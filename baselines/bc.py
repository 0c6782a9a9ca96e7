"""Behaviour cloning: a deterministic MLP policy regressed onto dataset actions with MSE.

The BC baseline of the TD3+BC paper (Fujimoto & Gu, 2021, "A Minimalist Approach to Offline RL"):
same network and optimiser as the TD3+BC actor, loss ``mean ||pi(s) - a||^2``. We use MSE (not a
Gaussian NLL) so the loss is comparable with TD3+BC's behaviour-cloning term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context, OfflineAlgorithm
from benchmark.rl.buffers import Batch
from benchmark.rl.configs import OfflineConfig
from benchmark.rl.nets import mlp


@dataclass
class BCConfig(OfflineConfig):
    hidden: tuple[int, ...] = field(default=(256, 256))
    lr: float = 3e-4
    normalize_states: bool = True  # z-score states with dataset statistics (as TD3+BC does)


def bc_loss(pred_action: torch.Tensor, data_action: torch.Tensor) -> torch.Tensor:
    return ((pred_action - data_action) ** 2).mean()


class StateNormalizer(nn.Module):
    """z-score with dataset mean/std (std + 1e-3, as in TD3+BC); identity when disabled."""

    def __init__(self, observations: np.ndarray, enabled: bool, eps: float = 1e-3):
        super().__init__()
        mean = observations.mean(0) if enabled else np.zeros(observations.shape[1])
        std = observations.std(0) + eps if enabled else np.ones(observations.shape[1])
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std

    def inverse(self, obs: torch.Tensor) -> torch.Tensor:
        return obs * self.std + self.mean


class BC(OfflineAlgorithm):
    def __init__(self, cfg: BCConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.norm = StateNormalizer(ctx.dataset.observations, cfg.normalize_states).to(self.device)
        self.policy = mlp(ctx.obs_dim, ctx.act_dim, cfg.hidden, output_activation=nn.Tanh).to(self.device)
        self.act_scale = ctx.act_scale
        self.optim = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)

    def forward_policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act_scale * self.policy(self.norm(obs))

    def learn(self, batch: Batch) -> dict:
        loss = bc_loss(self.forward_policy(batch["obs"]), batch["act"])
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return {"bc_loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True):
        t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.forward_policy(t).cpu().numpy()


register(
    AlgorithmSpec(
        name="bc",
        config_cls=BCConfig,
        factory=BC,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "bc",
        description="Behaviour cloning (MSE), the TD3+BC paper's BC baseline",
        paper="Fujimoto & Gu, NeurIPS 2021 (BC baseline)",
        module=__name__,
    )
)
