"""CBOP: Conservative Bayesian Model-Based Value Expansion for Offline Policy Optimization
(Jeong et al., ICLR 2023; official code jihwan-jeong/CBOP, ``rlkit/trainers/mvepo``).

SAC with a Q ensemble trained on the offline data only; the learned model enters only through the
critic target. From ``(s', a' ~ pi)`` every elite ``k`` (a "particle") rolls the model ``H`` steps with
the policy, giving for each horizon ``h = 0..H`` and each (critic ``m``, particle ``k``) the h-step
value-expansion return

    R_h^{m,k} = sum_{t<h} gamma^t r_t^k + gamma^h Q'_m(s_h^k, a_h^k)

(rewards and values after a model termination are 0). Per horizon the mean ``mu_h`` and variance
``var_h`` are taken over all ``(m, k)``; treating the horizons as independent Gaussian observations of
the true value, the posterior is ``rho = sum_h 1/var_h``, ``mu = sum_h (mu_h / var_h) / rho``,
``var = 1/rho`` (the official ``weighting='adaptive'``, ``use_t_dist=false``). As in the official code's
README path (``indep_sampling=false``, ``rlkit/trainers/mvepo/mvepo.py:364,407,450``), once any particle of
a state has terminated at model step ``t`` every horizon ``h > t`` gets precision 0: the target then
rests on the horizons before the termination, at least on ``h = 0``, i.e. ``Q'(s', a')``
(``mask_terminated_horizons``; ``false`` keeps every horizon, which collapses an all-terminated rollout
to the model's reward). The critic target is
the lower confidence bound ``r + gamma (1 - d) (mu - lcb_coeff sqrt(var) - alpha log pi(a'|s'))``.
The actor maximises the minimum over the critics (``sampling_method=min``). Before that, the actor is
pre-trained by behaviour cloning and the critics by policy evaluation of the BC policy
(``checkpoint_type=behavior``).

Simplifications, and why (the official code is a large rlkit/Hydra stack and its defaults are GPU-scale):
* The model is the shared ensemble (:mod:`benchmark.rl.dynamics`) with the official README's sizes at
  the ``paper`` budget (30 members, 20 elites; ``smoke``/``short`` use 7 / 5 for CPU cost), but with
  the shared architecture (Swish, weight decay, reward as one more output) instead of the official ReLU
  net without decay and with a separate reward head. Particles = elites, each rolled with its own
  member, sampling the Gaussian (the official ``propagation_method: all``, ``num_particles = num_elites``).
  The termination functions are the official (ADMPO-identical) ones (``dynamics_termination: admpo``).
* The critic loss adds EDAC's gradient-diversity term with the README's ``eta=1``
  (``rlkit/trainers/mvepo/mvepo.py:205-226``, the same term as :func:`baselines.edac.diversity_loss`);
  ``eta: 0`` gives the plain SAC-N update. ``num_critics`` keeps the official 50.
* Pre-training is a fixed number of BC and policy-evaluation steps (``bc_steps``, ``pe_steps``)
  rather than the official separate pre-training run with its own early stopping.
* Only the adaptive Gaussian weighting is implemented (not the Student-t or fixed-lambda variants).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from baselines.edac import EDACLearner
from baselines.mopo import ModelBasedSACConfig
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.algorithm import OfflineAlgorithm
from benchmark.rl.buffers import Batch
from benchmark.rl.dynamics import EnsembleDynamics
from benchmark.rl.model_based import ModelBasedOffline
from benchmark.rl.sac import SAC


@dataclass
class CBOPConfig(ModelBasedSACConfig):
    epochs: int = 1000  # README: algorithm.algorithm_cfg.num_epochs=1000
    hidden: tuple[int, ...] = (256, 256, 256)  # mvepo.yaml: 3 hidden layers of 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    num_critics: int = 50
    dynamics_members: int = 30  # README: ensemble_model.ensemble_size=30
    dynamics_elites: int = 20  # README: dynamics.num_elites=20 (= particles)
    dynamics_termination: str = "admpo"  # rlkit/envs termination functions equal ADMPO's
    mask_terminated_horizons: bool = True  # official README path; see the module docstring
    eta: float = 1.0  # EDAC diversity weight, README overrides.trainer_cfg.eta=1
    edac_init: bool = False  # the official Q ensemble keeps its default initialisation
    alpha_max: float | None = None  # the official trainer does not clamp alpha (mvepo.py:174)
    lr_schedule: bool = False
    horizon: int = 10  # H
    lcb_coeff: float = 3.0  # psi in mu - psi * std
    min_return_var: float = 1e-5  # floor on var_h (official: precision issues)
    bc_steps: int = 20_000  # actor behaviour-cloning pre-training steps
    pe_steps: int = 20_000  # critic policy-evaluation pre-training steps (of the BC policy)
    # the model buffer of the shared loop is unused: CBOP learns from real transitions only
    rollout_batch_size: int = 1
    rollout_length: int = 1
    model_retain_epochs: int = 1
    real_ratio: float = 1.0

    # Budgets shrink the ensembles of critics and models and the expansion horizon too: one paper-size
    # update (50 critics x 20 particles x 11 horizons x 256 states) costs seconds on one CPU core.
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "bc_steps": 20, "pe_steps": 20, "num_critics": 5, "horizon": 3,
            "dynamics_members": 7, "dynamics_elites": 5,
        },
        "short": {
            "bc_steps": 2000, "pe_steps": 2000, "num_critics": 5, "horizon": 3,
            "dynamics_members": 7, "dynamics_elites": 5,
        },
    }


def bayesian_mve(
    returns: Tensor, min_var: float = 1e-5, dropped: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``returns [samples, H + 1, B]`` -> posterior ``(mean, var)`` each ``[B]``.

    Each horizon's samples give ``mu_h, var_h``; precision-weighted fusion across horizons.
    ``dropped [H + 1, B]`` (bool) marks horizons that get precision 0 (after a termination); horizon 0
    must never be dropped.
    """
    var_h, mean_h = torch.var_mean(returns, dim=0)  # [H + 1, B], unbiased variance
    precision = 1.0 / var_h.clamp(min=min_var)
    if dropped is not None:
        precision = precision.masked_fill(dropped, 0.0)
    total = precision.sum(dim=0)
    return (mean_h * precision).sum(dim=0) / total, 1.0 / total


class CBOP(ModelBasedOffline):
    def __init__(self, cfg: CBOPConfig, ctx):
        super().__init__(cfg, ctx)
        if cfg.eta > 0:
            self.sac = EDACLearner(
                ctx.obs_dim, ctx.act_dim, cfg, ctx.act_scale, ctx.device, sac_cfg=cfg.sac_config()
            )
        else:
            self.sac = SAC(
                ctx.obs_dim, ctx.act_dim, cfg.sac_config(), act_scale=ctx.act_scale, device=ctx.device
            )
        self.dynamics = EnsembleDynamics(
            ctx.obs_dim, ctx.act_dim, cfg.dynamics_config(), ctx.env_key, ctx.device, seed=int(cfg.seed)
        )
        self.sac.critic_target_value = self.lcb_target  # the SAC update uses the MVE-LCB target
        self.last_target_info: dict[str, float] = {}

    # ----- setup: model, then BC and policy-evaluation pre-training -----------------------------
    def setup(self) -> dict:
        self.dynamics.checkpoint = self.setup_loop("model")  # a kill mid-training resumes it
        info = self.dynamics.fit(self.ctx.dataset)
        info.update(self.pretrain())
        return info

    def pretrain(self) -> dict:
        """``bc_steps`` of behaviour cloning, then ``pe_steps`` of policy evaluation; in a checkpointed run
        the loop saves now and then (and at its end) and resumes there after a kill, to the same weights."""
        cfg, sac = self.cfg, self.sac
        bc_optim = torch.optim.Adam(sac.actor.parameters(), lr=cfg.actor_lr)
        weights = {"actor": sac.actor, "critic": sac.critic, "critic_target": sac.critic_target,
                   "bc_optim": bc_optim, "critic_optim": sac.critic_optim}
        loop, total = self.setup_loop("pretrain"), cfg.bc_steps + cfg.pe_steps
        done, bc_loss, pe_loss = 0, None, None
        if loop is not None:
            loop.track(self.batch_generator)
            saved = loop.load_into(weights)
            if saved is not None:
                done, bc_loss, pe_loss = saved["done"], saved["bc_loss"], saved["pe_loss"]
        while done < total:
            b = self.real.sample(cfg.batch_size, self.batch_generator)
            if done < cfg.bc_steps:
                pred, _ = sac.actor.sample(b["obs"])
                loss = ((pred - b["act"]) ** 2).mean()
                bc_optim.zero_grad(set_to_none=True)
                loss.backward()
                bc_optim.step()
                bc_loss = loss.detach()
            else:  # evaluate the BC policy: plain (min-free) SARSA-style targets
                with torch.no_grad():
                    next_act, _ = sac.actor.sample(b["next_obs"])
                    next_q = sac.critic_target(b["next_obs"], next_act).mean(0)
                    target = b["rew"] + cfg.gamma * (1.0 - b["done"]) * next_q
                loss = ((sac.critic(b["obs"], b["act"]) - target.unsqueeze(0)) ** 2).mean(dim=(1, 2)).sum()
                sac.critic_optim.zero_grad(set_to_none=True)
                loss.backward()
                sac.critic_optim.step()
                with torch.no_grad():
                    for t, s in zip(sac.critic_target.parameters(), sac.critic.parameters()):
                        t.lerp_(s, cfg.tau)
                pe_loss = loss.detach()
            done += 1
            if loop is not None and (done == total or loop.due()):
                loop.save_objects(weights, done=done, bc_loss=bc_loss, pe_loss=pe_loss)
        nan = float("nan")
        return {  # read once, after the pre-training
            "pretrain/bc_loss": bc_loss.item() if bc_loss is not None else nan,
            "pretrain/pe_loss": pe_loss.item() if pe_loss is not None else nan,
        }

    # ----- the conservative MVE target ----------------------------------------------------------
    @torch.no_grad()
    def mve_returns(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        """h-step returns ``[critics * particles, H + 1, B]`` from ``(obs, act)`` (the first action
        given) and the horizons to drop ``[H + 1, B]``: ``h > t`` once any particle ended at step ``t``."""
        cfg, dyn, sac = self.cfg, self.dynamics, self.sac
        k, b = len(dyn.elites), len(obs)
        s = obs.unsqueeze(0).expand(k, -1, -1)  # particle k follows elite k
        a = act.unsqueeze(0).expand(k, -1, -1)
        alive = torch.ones(k, b, 1, device=self.device)
        reward_sum = torch.zeros(k, b, 1, device=self.device)
        dropped = torch.zeros(cfg.horizon + 1, b, dtype=torch.bool, device=self.device)
        out = []
        for h in range(cfg.horizon + 1):
            if h > 0:
                a, _ = sac.actor.sample(s)
            q = sac.critic_target(s.reshape(k * b, -1), a.reshape(k * b, -1)).reshape(-1, k, b, 1)
            out.append(reward_sum + cfg.gamma**h * alive * q)  # [M, K, B, 1]
            if h == cfg.horizon:
                break
            # one batched pass over all members; member elites[k] gets particle k's batch
            s_all = s.new_zeros(dyn.cfg.members, b, s.shape[-1]).index_copy(0, dyn.elites, s)
            a_all = a.new_zeros(dyn.cfg.members, b, a.shape[-1]).index_copy(0, dyn.elites, a)
            mean, logvar = dyn.predict(s_all, a_all)
            mean, std = mean[dyn.elites], torch.exp(0.5 * logvar[dyn.elites])  # [K, B, o + 1]
            sample = mean + std * torch.randn(mean.shape, generator=dyn.generator, device=self.device)
            next_s, r = sample[..., :-1], sample[..., -1:]
            done = dyn.termination_fn(s.reshape(k * b, -1), a.reshape(k * b, -1), next_s.reshape(k * b, -1))
            reward_sum = reward_sum + cfg.gamma**h * alive * r
            alive = alive * (1.0 - done.reshape(k, b, 1).float())
            dropped[h + 1 :] |= (alive == 0).any(dim=0).reshape(1, b)
            s = next_s
        returns = torch.stack(out, dim=2)  # [M, K, H + 1, B, 1]
        return returns.reshape(-1, cfg.horizon + 1, b), dropped

    def lcb_target(self, batch: dict[str, Tensor]) -> Tensor:
        cfg, sac = self.cfg, self.sac
        with torch.no_grad():
            next_act, next_logp = sac.actor.sample(batch["next_obs"])
            returns, dropped = self.mve_returns(batch["next_obs"], next_act)
            mean, var = bayesian_mve(
                returns, cfg.min_return_var, dropped if cfg.mask_terminated_horizons else None
            )
            value = (mean - cfg.lcb_coeff * var.sqrt()).unsqueeze(-1) - sac.alpha * next_logp
            self.last_target_info = {"mve_mean": mean.mean().detach(), "mve_std": var.sqrt().mean().detach()}
            return batch["rew"] + cfg.gamma * (1.0 - batch["done"]) * value

    # ----- loop ---------------------------------------------------------------------------------
    def next_batch(self, step: int) -> Batch:
        return OfflineAlgorithm.next_batch(self, step)  # real data only; no model buffer

    def learn(self, batch: Batch) -> dict:
        info = self.sac.update(batch)
        info.update(self.last_target_info)
        return info

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.sac.act(obs, deterministic)

    def end_epoch(self, epoch: int) -> dict:
        self.sac.step_lr_schedule()
        return {}


register(
    AlgorithmSpec(
        name="cbop",
        config_cls=CBOPConfig,
        factory=CBOP,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "cbop",
        description="CBOP: EDAC-style Q ensemble with a conservative Bayesian model-value-expansion target",
        paper=(
            "Jeong et al., Conservative Bayesian Model-Based Value Expansion for Offline Policy "
            "Optimization, ICLR 2023"
        ),
        module=__name__,
    )
)
