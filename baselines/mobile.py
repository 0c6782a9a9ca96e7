"""MOBILE: Model-Bellman Inconsistency Penalized Offline Policy Optimization (Sun et al., ICML 2023).

The loop is MOPO's (SAC on real data plus branched rollouts of the Gaussian ensemble, see
:mod:`baselines.mopo`), but model rewards are stored unpenalised and the penalty enters the critic
target. For a model transition ``(s, a)`` the uncertainty is the spread of the Bellman targets that
the ensemble's members imply:

    u(s, a) = Std_{i in elites} [ (1/N) sum_{n=1..N} min_j Q'_j(s'_{i,n}, a'_{i,n}) ],
    s'_{i,n} ~ N(mu_i(s, a), sigma_i(s, a)),  a'_{i,n} ~ pi(.|s'_{i,n}),

i.e. ``num_samples`` draws from every elite, target critics at the actor's (sampled) actions, the mean
over draws and the (unbiased) standard deviation over elites, as in the official code
(yihaosun1124/mobile ``policies/mobile.py`` ``compute_lcb``). The critic target is

    y = max(0, r - penalty_coef * u(s, a) + gamma (1 - d) V(s')),

with ``u = 0`` on the real part of the batch and the clamp at 0 of the official code.

Defaults: the official code's ``configs/gym/default.py`` (3000 epochs x 1000 steps, two 256x256
critics, deterministic backup, auto-alpha, actor cosine schedule, 10 samples, rollouts of 50,000 every
1000 steps, 5% real data); per-dataset ``rollout_length`` / ``penalty_coef`` (and the few other
overrides) in ``configs/mobile/*.yaml``. Two small differences from the official code: the critic
loss sums the per-critic MSEs (the official code averages them; Adam makes the factor immaterial up
to epsilon). As in the official code (``policies/mobile.py:195``) the automatic temperature is clamped
at 1 (``alpha_max``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from baselines.mopo import MOPO, ModelBasedSACConfig
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import MixedBatch
from benchmark.rl.sac import SAC


@dataclass
class MOBILEConfig(ModelBasedSACConfig):
    rollout_length: int = 1
    penalty_coef: float = 1.0  # beta
    num_samples: int = 10  # next-state draws per elite for the Bellman-target spread
    deterministic_backup: bool = True
    target_q_min: float | None = 0.0  # the official code clamps the critic target at 0


# rows per actor/critic pass of the penalty on a CPU; a multiple of 16 keeps the actor's Gaussian draws
# identical to one pass over all rows (torch's vectorised normal sampler fills blocks of 16)
PENALTY_ROWS_PER_PASS = 1024


def bellman_inconsistency(next_q: torch.Tensor) -> torch.Tensor:
    """``next_q [num_samples, elites, B, 1]`` -> ``[B, 1]``: std over elites of the mean over samples."""
    return next_q.mean(dim=0).std(dim=0)


class MOBILELearner(SAC):
    """SAC whose Bellman target subtracts ``penalty_coef * batch["penalty"]`` and is clamped below."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: MOBILEConfig, act_scale: float, device):
        super().__init__(obs_dim, act_dim, cfg.sac_config(), act_scale, device)
        self.penalty_coef = cfg.penalty_coef
        self.target_q_min = cfg.target_q_min

    def critic_target_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        penalised = dict(batch, rew=batch["rew"] - self.penalty_coef * batch["penalty"])
        target = super().critic_target_value(penalised)
        return target if self.target_q_min is None else target.clamp(min=self.target_q_min)

    @torch.no_grad()
    def model_uncertainty(
        self, dynamics, obs: torch.Tensor, act: torch.Tensor, num_samples: int
    ) -> torch.Tensor:
        """MOBILE's ``u(s, a)`` ``[B, 1]`` with the target critics and the current actor."""
        next_obs = dynamics.sample_next_obs(obs, act, num_samples)  # [S, E, B, o]
        flat = next_obs.reshape(-1, next_obs.shape[-1])
        # S*E*B = 12,200 states at the default sizes: on a CPU the actor and the two target critics run
        # over cache-sized row blocks (the same rows, the same random draws in the same order; the
        # ``[2, 12200, 256]`` activations of one pass spill the cache and made this 1.3x slower)
        rows = PENALTY_ROWS_PER_PASS if flat.device.type == "cpu" else len(flat)
        q = torch.cat([self.min_target_q(block) for block in flat.split(rows)])  # [S*E*B, 1]
        return bellman_inconsistency(q.reshape(*next_obs.shape[:-1], 1))

    def min_target_q(self, next_obs: torch.Tensor) -> torch.Tensor:
        next_act, _ = self.actor.sample(next_obs)
        return self.critic_target(next_obs, next_act).min(dim=0).values


class MOBILE(MOPO):
    def __init__(self, cfg: MOBILEConfig, ctx):
        super().__init__(cfg, ctx)
        self.sac = MOBILELearner(ctx.obs_dim, ctx.act_dim, cfg, ctx.act_scale, ctx.device)

    def reward_fn(self, reward: torch.Tensor, info: dict[str, torch.Tensor]) -> torch.Tensor:
        return reward  # the penalty goes into the critic target, not into the stored reward

    def learn(self, batch: MixedBatch) -> dict:
        """Only the model rows of the mixed batch (``batch.model_rows``) are penalised."""
        penalty = torch.zeros(len(batch["obs"]), 1, device=self.device)
        rows = batch.model_rows
        if batch.n_model:
            penalty[rows] = self.sac.model_uncertainty(
                self.dynamics, batch["obs"][rows], batch["act"][rows], self.cfg.num_samples
            )
        info = self.sac.update(dict(batch, penalty=penalty))
        info["penalty"] = penalty[rows].mean().detach() if batch.n_model else 0.0
        return info


register(
    AlgorithmSpec(
        name="mobile",
        config_cls=MOBILEConfig,
        factory=MOBILE,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "mobile",
        description="MOBILE: SAC on ensemble rollouts; critic target penalised by the Bellman-target std",
        paper="Sun et al., Model-Bellman Inconsistency Penalized Offline Policy Optimization, ICML 2023",
        module=__name__,
    )
)
