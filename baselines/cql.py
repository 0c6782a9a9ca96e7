"""Conservative Q-Learning, CQL(H) (Kumar et al., NeurIPS 2020, arXiv 2006.04779).

SAC whose critics are additionally trained to minimise, per critic ``i``,

    cql_weight * ( T * E_s[ log sum_a exp(Q_i(s, a) / T) ] - E_{(s,a)~D}[ Q_i(s, a) ] )

The log-sum-exp over all actions is estimated by importance sampling (the paper's Appendix F, as in
CORL and OfflineRL-Kit): ``num_sampled_actions`` actions from each of three proposals, uniform in the
action box, the current policy at ``s`` and the current policy at ``s'`` (both evaluated at ``s``), each
value minus the log-density of its proposal. All ``3 * num_sampled_actions`` actions of the batch and
the dataset actions go through every critic in one batched call.

Grouping of the log-sum-exp (``lse_grouping``): ``state`` (default) takes it over all ``3M`` sampled
actions of a state, as the CQL paper (Appendix F) and CORL (``algorithms/offline/cql.py:657``) do.
``state_sample`` reproduces OfflineRL-Kit (``offlinerlkit/policy/model_free/cql.py:153-168``, and its
``combo.py:184-202``): its ``reshape`` loop discards its result, so the log-sum-exp runs over the 3
proposals of each (state, sample index) pair and is averaged over the ``B * M`` pairs. The value shifts
by about ``log M``; the push-down gradient is spread evenly over the ``M`` samples instead of
concentrating on the highest-valued ones. Which one produced the paper's columns: the ADMPO paper's
CQL D4RL column was retrained with OfflineRL-Kit (``state_sample``); its CQL NeoRL column was copied
from the NeoRL paper (whose implementation's grouping we did not verify, UNVERIFIED) and its COMBO
column from the COMBO paper, which defines the ``state`` estimator and has no code. The default stays
``state``, the method as published.

With ``with_lagrange`` the weight is multiplied by a learned ``alpha' >= 0`` that is raised while the
gap exceeds ``lagrange_threshold`` (the paper's "target action gap" tau) and lowered otherwise.

Differences from OfflineRL-Kit, stated because they change numbers slightly: the uniform proposal's
log-density is ``-|A| log(2 * act_scale)`` (OfflineRL-Kit hard-codes a box of width 2), and the critic
is updated before the actor in each step (the SAC core's order; OfflineRL-Kit updates the actor first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import Context, OfflineAlgorithm
from benchmark.rl.buffers import Batch
from benchmark.rl.configs import OfflineConfig
from benchmark.rl.sac import SAC, SACConfig, SACFields, TanhGaussianActor, sub_config

CQL_ALPHA_MAX = 1e6  # clamp of the Lagrange multiplier, as in the reference implementations
LSE_GROUPINGS = ("state", "state_sample")


@dataclass
class CQLConfig(SACFields, OfflineConfig):
    """Defaults: OfflineRL-Kit ``run_example/run_cql.py`` (the implementation the ADMPO paper used); the
    SAC fields (:class:`SACFields`) it sets otherwise are re-declared here."""

    hidden: tuple[int, ...] = field(default=(256, 256, 256))  # actor and critic hidden layers
    alpha: float = 0.2  # entropy temperature when auto_alpha is false
    auto_alpha: bool = True
    alpha_max: float | None = None  # OfflineRL-Kit's CQLPolicy does not clamp alpha (cql.py:106)
    deterministic_backup: bool = True  # drop the entropy term from the Bellman target
    max_q_backup: bool = False  # target = max over num_sampled_actions policy actions at s'
    num_critics: int = 2
    cql_weight: float = 5.0  # weight of the conservative term ("min-Q weight", alpha in the paper)
    temperature: float = 1.0  # T in T * logsumexp(Q / T)
    num_sampled_actions: int = 10  # actions per proposal (uniform, pi(.|s), pi(.|s')) per state
    importance_sample: bool = True  # CQL(H) with importance weights; false: plain logsumexp (CQL(rho) style)
    lse_grouping: str = "state"  # "state": over all 3M actions; "state_sample": OfflineRL-Kit's (see above)
    with_lagrange: bool = False  # learn the weight multiplier alpha' against lagrange_threshold
    lagrange_threshold: float = 10.0  # target action gap tau
    cql_alpha_lr: float = 3e-4


def check_cql_config(cfg) -> None:
    if cfg.num_sampled_actions < 1:
        raise ValueError(
            f"{type(cfg).__name__}.num_sampled_actions must be >= 1, got {cfg.num_sampled_actions}"
        )
    if cfg.lse_grouping not in LSE_GROUPINGS:
        raise ValueError(
            f"{type(cfg).__name__}.lse_grouping must be one of {LSE_GROUPINGS}, got {cfg.lse_grouping!r}"
        )
    if cfg.temperature <= 0:
        raise ValueError(f"{type(cfg).__name__}.temperature must be > 0, got {cfg.temperature}")
    if cfg.num_critics < 1:
        raise ValueError(f"{type(cfg).__name__}.num_critics must be >= 1, got {cfg.num_critics}")


def conservative_gap(
    q_sampled: torch.Tensor,
    log_density: torch.Tensor,
    q_data: torch.Tensor,
    temperature: float,
    groups: int = 1,
) -> torch.Tensor:
    """Per-critic CQL gap ``T * mean logsumexp((Q - log density) / T) - mean Q(s, a_data)``.

    ``q_sampled`` ``[n, B, G * M]`` values of the sampled actions per state, ordered (proposal, sample),
    ``log_density`` broadcastable to it (zeros for no importance weighting), ``q_data`` ``[n, B', 1]``
    values of the push-up pairs. ``groups = 1``: one log-sum-exp over all actions of a state;
    ``groups = G``: one over the ``G`` proposals of each (state, sample) pair, averaged over the pairs
    (OfflineRL-Kit's grouping). Returns ``[n]``.
    """
    x = (q_sampled - log_density) / temperature
    if groups > 1:
        n, b, gm = x.shape
        lse = torch.logsumexp(x.reshape(n, b, groups, gm // groups), dim=2)  # [n, B, M]
    else:
        lse = torch.logsumexp(x, dim=-1)  # [n, B]
    return temperature * lse.flatten(1).mean(dim=1) - q_data.mean(dim=(1, 2))


@torch.no_grad()
def sample_repeated(actor: TanhGaussianActor, obs: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` policy samples per state from one actor forward over the ``B`` distinct states.

    Returns actions ``[B*m, A]`` (state-major) and log-probabilities ``[B*m, 1]``, the same
    distribution and density as ``actor.sample(obs.repeat_interleave(m, 0))`` at 1/m of the
    network cost (the log-sum-exp proposals repeat every state ``m`` times).
    """
    mean, log_std = (x.repeat_interleave(m, dim=0) for x in actor.dist_params(obs))
    noise = torch.randn_like(mean)
    u = mean + log_std.exp() * noise
    squashed = torch.tanh(u)
    normal_logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
    return actor.act_scale * squashed, normal_logp - actor.log_abs_det(squashed)


class CQLLearner(SAC):
    """The SAC core with the conservative critic loss; ``update(batch)`` as in :class:`SAC`."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg,
        act_scale: float = 1.0,
        device="cpu",
        sac_cfg: SACConfig | None = None,
    ):
        """``cfg`` carries the SAC and CQL fields; ``sac_cfg`` overrides the SAC core's config (COMBO
        adds the actor's lr schedule)."""
        check_cql_config(cfg)
        super().__init__(obs_dim, act_dim, sac_cfg or sub_config(cfg, SACConfig), act_scale, device)
        self.cql = cfg
        self.act_dim = act_dim
        self.act_scale = float(act_scale)
        self.log_cql_alpha = nn.Parameter(torch.zeros((), device=self.device))
        self.cql_alpha_optim = torch.optim.Adam([self.log_cql_alpha], lr=cfg.cql_alpha_lr)
        self.generator: torch.Generator | None = None  # uniform proposals; None -> torch's global RNG

    # ----- Bellman target -----------------------------------------------------------------------
    def critic_target_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.cql.max_q_backup:
            return super().critic_target_value(batch)
        with torch.no_grad():
            m, next_obs = self.cql.num_sampled_actions, batch["next_obs"]
            rep = next_obs.repeat_interleave(m, dim=0)  # [B*m, obs]
            act, _ = sample_repeated(self.actor, next_obs, m)
            q = self.critic_target(rep, act).view(self.critic.n, next_obs.shape[0], m)
            next_q = q.max(-1).values.min(0).values.unsqueeze(-1)  # [B, 1]
            return batch["rew"] + self.cfg.gamma * (1.0 - batch["done"]) * next_q

    # ----- conservative term --------------------------------------------------------------------
    def sampled_actions(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``[3, B*M, A]`` (uniform, pi(.|s), pi(.|s')) and their log-densities ``[3, B, M]``."""
        b, m = obs.shape[0], self.cql.num_sampled_actions
        uniform = torch.rand(b * m, self.act_dim, generator=self.generator, device=self.device)
        uniform = (2.0 * uniform - 1.0) * self.act_scale
        pi_act, pi_logp = sample_repeated(self.actor, torch.cat([obs, next_obs]), m)  # no grad
        box_logp = -self.act_dim * math.log(2.0 * self.act_scale)
        uniform_logp = torch.full((b * m, 1), box_logp, device=self.device)
        actions = torch.cat([uniform, pi_act]).view(3, b * m, self.act_dim)
        log_density = torch.cat([uniform_logp, pi_logp]).view(3, b, m)
        return actions, log_density

    def push_down_states(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """States (and next states) at which actions are sampled for the log-sum-exp (all of the batch)."""
        return batch["obs"], batch["next_obs"]

    def push_up_mask(self, batch: dict[str, torch.Tensor]) -> slice:
        """Rows of the batch whose dataset actions are pushed up (all of them for CQL)."""
        return slice(None)

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cql
        obs, act = batch["obs"], batch["act"]
        down_obs, down_next = self.push_down_states(batch)
        b, m = down_obs.shape[0], cfg.num_sampled_actions
        actions, log_density = self.sampled_actions(down_obs, down_next)
        # one critic call for the data actions and all 3*M sampled actions of every push-down state
        all_obs = torch.cat([obs, down_obs.repeat_interleave(m, dim=0).repeat(3, 1)])
        all_act = torch.cat([act, actions.reshape(3 * b * m, self.act_dim)])
        q_all = self.critic(all_obs, all_act)  # [n, B + 3*b*M, 1]
        n_data = obs.shape[0]
        q_data = q_all[:, :n_data]
        n = self.critic.n
        q_sampled = q_all[:, n_data:].reshape(n, 3, b, m).permute(0, 2, 1, 3).reshape(n, b, 3 * m)
        if cfg.importance_sample:
            log_w = log_density.permute(1, 0, 2).reshape(1, b, 3 * m)
        else:
            log_w = torch.zeros(1, b, 3 * m, device=self.device)

        target = self.critic_target_value(batch)
        bellman = ((q_data - target.unsqueeze(0)) ** 2).mean(dim=(1, 2))  # [n]
        gap = conservative_gap(
            q_sampled,
            log_w,
            q_data[:, self.push_up_mask(batch)],
            cfg.temperature,
            groups=3 if cfg.lse_grouping == "state_sample" else 1,
        )
        conservative = cfg.cql_weight * gap  # [n]
        info = {
            "q_mean": q_data.mean().detach(),
            "cql_gap": gap.mean().detach(),
            "bellman_loss": bellman.sum().detach(),
        }
        if cfg.with_lagrange:
            cql_alpha = self.log_cql_alpha.exp().clamp(0.0, CQL_ALPHA_MAX)
            conservative = cql_alpha.detach() * (conservative - cfg.lagrange_threshold)
            # the multiplier ascends on the constraint violation; the critics see it as a constant
            alpha_loss = -(cql_alpha * (cfg.cql_weight * gap.detach() - cfg.lagrange_threshold)).mean()
            self.cql_alpha_optim.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.cql_alpha_optim.step()
            info["cql_alpha"] = cql_alpha.detach()
        return (bellman + conservative).sum(), info


class CQL(OfflineAlgorithm):
    """Registered wrapper: real-data batches into :class:`CQLLearner`."""

    def __init__(self, cfg: CQLConfig, ctx: Context):
        super().__init__(cfg, ctx)
        torch.manual_seed(int(cfg.seed))  # network initialisation and policy noise
        self.agent = CQLLearner(ctx.obs_dim, ctx.act_dim, cfg, ctx.act_scale, ctx.device)
        self.agent.generator = torch.Generator(device=ctx.device).manual_seed(int(cfg.seed) + 1)

    def learn(self, batch: Batch) -> dict:
        return self.agent.update(batch)

    def act(self, obs, deterministic: bool = True):
        return self.agent.act(obs, deterministic)


register(
    AlgorithmSpec(
        name="cql",
        config_cls=CQLConfig,
        factory=CQL,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "cql",
        description="Conservative Q-Learning, CQL(H) with importance-sampled logsumexp, on the SAC core",
        paper="Kumar et al., Conservative Q-Learning for Offline Reinforcement Learning, NeurIPS 2020",
        module=__name__,
    )
)
