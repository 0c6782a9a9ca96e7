"""EDAC, the Ensemble-Diversified Actor-Critic (An et al., NeurIPS 2021, arXiv 2110.01548); SAC-N if eta=0.

SAC with ``N`` critics whose minimum is both the Bellman target and the actor's objective (clipped
Q-learning over a large ensemble penalises actions where the critics disagree). EDAC adds to the critic
loss the ensemble-gradient diversity term

    eta / (N - 1) * E_{(s,a)~D} [ sum_{i != j} <g_i, g_j> ],   g_i = grad_a Q_i(s, a) / ||grad_a Q_i(s, a)||

which pushes the critics' action-gradients apart, so that fewer critics give the same penalty. All
``N`` critics and their action-gradients come from one batched forward/backward through the
vectorised :class:`~benchmark.rl.sac.QEnsemble`; the same forward gives the Bellman-error values.

Critic initialisation follows the EDAC code (hidden biases 0.1, last layer uniform in +-3e-3), as
OfflineRL-Kit's ``run_edac.py`` also does; ``edac_init: false`` keeps the default ``nn.Linear`` init.
As OfflineRL-Kit (``offlinerlkit/policy/model_free/edac.py:110``), the automatic entropy temperature is
clamped at 1 (``alpha_max``; ``null`` gives CORL's unclamped one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context, OfflineAlgorithm
from benchmark.rl.buffers import Batch
from benchmark.rl.configs import OfflineConfig
from benchmark.rl.sac import SAC, QEnsemble, SACConfig, SACFields, sub_config

EDAC_HIDDEN_BIAS = 0.1
EDAC_LAST_LAYER_BOUND = 3e-3
GRAD_NORM_EPS = 1e-10


@dataclass
class EDACConfig(SACFields, OfflineConfig):
    """Defaults: OfflineRL-Kit ``run_example/run_edac.py`` (which the ADMPO paper used for NeoRL); the
    SAC fields (:class:`SACFields`) it sets otherwise are re-declared here."""

    epochs: int = 3000
    hidden: tuple[int, ...] = field(default=(256, 256, 256))
    alpha: float = 0.2  # entropy temperature when auto_alpha is false
    auto_alpha: bool = True
    alpha_max: float | None = 1.0  # OfflineRL-Kit edac.py:110 clamps alpha at 1 after each update
    deterministic_backup: bool = False
    num_critics: int = 50  # N
    eta: float = 1.0  # weight of the ensemble-gradient diversity term; 0 -> SAC-N
    edac_init: bool = True


def diversity_loss(action_grads: torch.Tensor) -> torch.Tensor:
    """``mean_b sum_{i != j} <g_i, g_j> / (N - 1)`` of the normalised per-critic action-gradients.

    ``action_grads``: ``[N, B, A]`` (raw gradients of each critic's value w.r.t. the action).
    """
    n = action_grads.shape[0]
    if n < 2:
        raise ValueError("the EDAC diversity term needs num_critics >= 2")
    g = action_grads / (action_grads.norm(dim=-1, keepdim=True) + GRAD_NORM_EPS)
    gram = torch.einsum("ibk,jbk->bij", g, g)  # [B, N, N]
    # sum of all pairs minus the diagonal (each ||g_i||^2, ~1 after normalisation)
    off_diagonal = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)
    return off_diagonal.mean() / (n - 1)


def edac_init_(critic: QEnsemble) -> None:
    """Hidden biases to 0.1 and the output layer uniform in +-3e-3 (the EDAC code's init)."""
    layers = critic.net.layers
    with torch.no_grad():
        for layer in layers[:-1]:
            layer.bias.fill_(EDAC_HIDDEN_BIAS)
        layers[-1].weight.uniform_(-EDAC_LAST_LAYER_BOUND, EDAC_LAST_LAYER_BOUND)
        layers[-1].bias.uniform_(-EDAC_LAST_LAYER_BOUND, EDAC_LAST_LAYER_BOUND)


class EDACLearner(SAC):
    """The SAC core with N critics and the diversity term in the critic loss."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: EDACConfig,
        act_scale: float = 1.0,
        device="cpu",
        sac_cfg: SACConfig | None = None,
    ):
        """``cfg`` carries ``num_critics``, ``eta``, ``edac_init`` and the SAC fields; ``sac_cfg``
        overrides the SAC core's config (CBOP adds its own)."""
        if cfg.num_critics < 1:
            raise ValueError(f"EDACConfig.num_critics must be >= 1, got {cfg.num_critics}")
        if cfg.eta < 0:
            raise ValueError(f"EDACConfig.eta must be >= 0, got {cfg.eta}")
        if cfg.eta > 0 and cfg.num_critics < 2:
            raise ValueError("EDACConfig: eta > 0 needs num_critics >= 2 (the term compares critics)")
        super().__init__(obs_dim, act_dim, sac_cfg or sub_config(cfg, SACConfig), act_scale, device)
        self.eta = cfg.eta
        if cfg.edac_init:
            edac_init_(self.critic)
            self.critic_target.load_state_dict(self.critic.state_dict())

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        n = self.critic.n
        obs, act = batch["obs"], batch["act"]
        if self.eta > 0:
            # one tiled copy of the actions per critic, so each critic's action-gradient is its own
            act = act.unsqueeze(0).expand(n, -1, -1).clone().requires_grad_(True)
            obs = obs.unsqueeze(0).expand(n, -1, -1)
        q = self.critic(obs, act)  # [N, B, 1]
        target = self.critic_target_value(batch)
        loss = ((q - target.unsqueeze(0)) ** 2).mean(dim=(1, 2)).sum()
        info = {"q_mean": q.mean().detach(), "q_std": q.std(0).mean().detach()}
        if self.eta > 0:
            (grads,) = torch.autograd.grad(q.sum(), act, create_graph=True)
            div = diversity_loss(grads)
            loss = loss + self.eta * div
            info["diversity_loss"] = div.detach()
        return loss, info


class EDAC(OfflineAlgorithm):
    """Registered wrapper: real-data batches into :class:`EDACLearner`."""

    def __init__(self, cfg: EDACConfig, ctx: Context):
        super().__init__(cfg, ctx)
        torch.manual_seed(int(cfg.seed))  # network initialisation and policy noise
        self.agent = EDACLearner(ctx.obs_dim, ctx.act_dim, cfg, ctx.act_scale, ctx.device)

    def learn(self, batch: Batch) -> dict:
        return self.agent.update(batch)

    def act(self, obs, deterministic: bool = True):
        return self.agent.act(obs, deterministic)


register(
    AlgorithmSpec(
        name="edac",
        config_cls=EDACConfig,
        factory=EDAC,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "edac",
        description="EDAC: SAC with N critics and the ensemble-gradient diversity term (eta=0: SAC-N)",
        paper="An et al., Uncertainty-Based Offline RL with Diversified Q-Ensemble, NeurIPS 2021",
        module=__name__,
    )
)
