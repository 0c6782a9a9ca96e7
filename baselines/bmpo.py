"""BMPO: Bidirectional Model-based Policy Optimization (Lai et al., ICML 2020), online baseline of Figure 3.

Official code ``hanglai/bmpo`` at d065cf1 (``bmpo.py``, ``models/constructor.py``, ``models/fake_env.py``,
``softlearning/samplers/simple_sampler.py``, ``config/<env>.py``; audit: online-baselines.md 1.4). BMPO is
MBPO (:mod:`baselines.mbpo`) plus:

* **Backward ensemble**, the same class as the forward one, trained at the same steps on all real data
  with inputs ``(s', a)`` and targets ``(s' - s, r)`` (``format_samples_for_backward_training``); a
  backward step predicts ``s = s' - delta`` with a random elite per sample (``Backward_FakeEnv``) and
  marks the transition terminal by the termination function of ``(s, a, s')``.
* **Backward policy** ``q(a | s')``: 2x256 ReLU, mean ``tanh(.)``, log-variance soft-clamped into the
  fixed bounds ``[-10, 1]`` (those variables are outside the optimizer's scope, so they stay at their
  initial values). After each env step's ``G`` SAC updates, one Adam step (lr 3e-4) on 256 transitions
  drawn from the newest ``last_n_epoch * epoch_length`` real ones, loss ``mean((mu - a)^2 / var) +
  mean(log var)``. Sampling uses the fixed variance ``backward_policy_var`` (0.01): ``a = clip(mu +
  sqrt(var) z, -1, 1)`` with ``z`` a standard normal truncated to ``[-2, 2]``.
* **Start states.** ``rollout_batch_size`` real states; if ``beta > 0`` they are re-drawn (with
  replacement) with probabilities ``softmax(beta' V)``, ``V(s) = mean_i Q_i(s, a) + mean_i Qtarget_i(s, a)``
  with one sampled ``a ~ pi(s)``, and ``beta' = min(beta, 10 / (max V - min V))``. ``beta`` follows
  ``beta_schedule = [epoch_a, epoch_b, beta_a, beta_b]``, linear in epochs and held outside.
* **Rollouts.** From the same starts, ``k_b`` backward steps (backward policy and model), then ``k_f``
  forward steps (SAC policy and forward model), all into one model buffer sized by ``k_f + k_b``.
  ``k_f`` and ``k_b`` follow their own epoch schedules.
* **MPC** (``planning_horizon H > 0``) when acting in the real env with the training policy:
  ``mpc_candidates`` (1000) actions sampled from the policy, each rolled ``H`` forward-model steps
  (later actions from the deterministic policy), scored by the discounted model return plus
  ``gamma^H V_target(s_H)`` while not terminated; the best candidate is executed. Evaluation acts
  with the deterministic policy, without MPC (as the code's evaluation sampler).

Departures as MBPO's (evaluation protocol of the shared loop). Official configs exist for Hopper, Walker2d
and Ant only; HalfCheetah and Humanoid are filled and marked in their YAMLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.mbpo import MBPO, MBPOConfig
from benchmark.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import Batch, index_generator
from benchmark.rl.dynamics import EnsembleDynamics, policy_rollout, soft_clamp
from benchmark.rl.nets import mlp
from benchmark.rl.online import Context

Tensor = torch.Tensor


@dataclass
class BMPOConfig(MBPOConfig):
    """Defaults: ``hanglai/bmpo`` ``config/hopper.py``; ``rollout_schedule`` is the forward schedule."""

    backward_rollout_schedule: tuple[int, int, int, int] = (20, 150, 1, 15)  # epochs
    beta_schedule: tuple[float, float, float, float] = (20, 30, 0.004, 0.003)  # [epoch_a, epoch_b, b_a, b_b]
    beta_value_range: float = 10.0  # beta is capped at beta_value_range / (max V - min V)
    last_n_epoch: int = 10  # the backward policy trains on the newest last_n_epoch * epoch_length
    backward_policy_var: float = 0.01  # fixed sampling variance (0: the learned one)
    backward_policy_hidden: tuple[int, ...] = (256, 256)
    backward_policy_lr: float = 3e-4
    backward_policy_batch_size: int = 256
    planning_horizon: int = 6  # 0: no MPC
    mpc_candidates: int = 1000

    RANGES: ClassVar[dict[str, Range]] = {
        "planning_horizon": NON_NEGATIVE,  # 0: no MPC
        "backward_rollout_schedule": NON_NEGATIVE,
        "beta_schedule": NON_NEGATIVE,
        "beta_value_range": POSITIVE,
        "backward_policy_var": NON_NEGATIVE,
        "last_n_epoch": AT_LEAST_ONE,
        "mpc_candidates": AT_LEAST_ONE,
    }

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"mpc_candidates": 16},
        # MPC costs mpc_candidates x H ensemble steps per env step: 100 keeps short at MBPO's cost
        "short": {"mpc_candidates": 100},
    }


def linear_schedule(epoch: int, schedule) -> float:
    """BMPO's ``_set_beta`` / ``_set_rollout_length``: ``y_a`` until ``epoch_a``, then linear to ``y_b`` at
    ``epoch_b``, held after (increasing or decreasing)."""
    a, b, y_a, y_b = schedule
    if epoch <= a:
        return float(y_a)
    return min((epoch - a) / (b - a), 1.0) * (y_b - y_a) + y_a


def boltzmann_start_probs(values: Tensor, beta: float, value_range: float = 10.0) -> tuple[Tensor, float]:
    """``softmax(beta' V)`` with ``beta' = min(beta, value_range / (max V - min V))`` (``_get_start_obs``;
    the code's ``exp(beta' V) / sum`` without the max shift). Returns the probabilities and ``beta'``."""
    spread = (values.max() - values.min()).item()
    used = min(beta, value_range / spread) if spread > 0 else beta
    return torch.softmax(values * used, dim=0), used


def mpc_scores(rewards: Tensor, dones: Tensor, terminal_values: Tensor, gamma: float) -> Tensor:
    """Score of each candidate from ``H`` model steps ``rewards, dones [H, n]`` and ``V(s_H) [n]``:
    ``r_0 + sum_{i>=1} gamma^i r_i prod_{j<i}(1 - d_j) + gamma^H prod_{j<H}(1 - d_j) V(s_H)``
    (``simple_sampler.py``: the first reward always counts)."""
    horizon = rewards.shape[0]
    alive = torch.cumprod(1.0 - dones.float(), dim=0)  # alive[i] = prod_{j<=i} (1 - d_j)
    weights = torch.ones_like(rewards)
    weights[1:] = alive[:-1]
    discounts = gamma ** torch.arange(horizon, dtype=rewards.dtype, device=rewards.device)
    return (discounts[:, None] * weights * rewards).sum(0) + gamma**horizon * alive[-1] * terminal_values


class BackwardPolicy(nn.Module):
    """``q(a | s')``: tanh mean and a log-variance soft-clamped into fixed bounds (actions in [-1, 1])."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256)):
        super().__init__()
        self.trunk = mlp(obs_dim, hidden[-1], hidden[:-1])
        self.trunk.append(nn.ReLU())
        self.mean_head = nn.Linear(hidden[-1], act_dim)
        self.logvar_head = nn.Linear(hidden[-1], act_dim)
        self.register_buffer("max_logvar", torch.ones(act_dim))
        self.register_buffer("min_logvar", torch.full((act_dim,), -10.0))

    def forward(self, next_obs: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(next_obs)
        logvar = soft_clamp(self.logvar_head(h), self.min_logvar, self.max_logvar)
        return torch.tanh(self.mean_head(h)), logvar

    def nll(self, next_obs: Tensor, act: Tensor) -> Tensor:
        """``mean((mu - a)^2 / var) + mean(log var)`` (BMPO's Gaussian NLL without constants)."""
        mean, logvar = self(next_obs)
        return (F.mse_loss(mean, act, reduction="none") * torch.exp(-logvar)).mean() + logvar.mean()

    @torch.no_grad()
    def sample(self, next_obs: Tensor, fixed_var: float, generator: torch.Generator | None = None) -> Tensor:
        mean, logvar = self(next_obs)
        var = torch.full_like(mean, fixed_var) if fixed_var > 0 else logvar.exp()
        z = nn.init.trunc_normal_(torch.empty_like(mean), 0.0, 1.0, -2.0, 2.0, generator=generator)
        return (mean + var.sqrt() * z).clamp(-1.0, 1.0)


class BMPO(MBPO):
    cfg: BMPOConfig

    def __init__(self, cfg: BMPOConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.backward = EnsembleDynamics(ctx.obs_dim, ctx.act_dim, cfg.dynamics_config(), env_key=ctx.env_key,
                                         device=ctx.device, seed=int(cfg.seed) + 3)
        self.backward_policy = BackwardPolicy(ctx.obs_dim, ctx.act_dim, cfg.backward_policy_hidden)
        self.backward_policy.to(ctx.device)
        self.backward_optim = torch.optim.Adam(self.backward_policy.parameters(), lr=cfg.backward_policy_lr)
        # backward-policy batches and samples, drawn on the device (a CPU generator on the CPU)
        backward_seeded = torch.Generator().manual_seed(int(cfg.seed) + 4)
        self.backward_generator = index_generator(backward_seeded, ctx.device)
        self.sac_updates = 0
        self.backward_info: dict = {}

    # ----- schedules ----------------------------------------------------------------------------
    def epoch(self, it: int) -> int:
        return it // self.cfg.epoch_length

    def backward_length_at(self, it: int) -> int:
        return int(linear_schedule(self.epoch(it), self.cfg.backward_rollout_schedule))

    def beta_at(self, it: int) -> float:
        return linear_schedule(self.epoch(it), self.cfg.beta_schedule)

    def model_steps_per_start(self, it: int) -> int:
        return self.rollout_length_at(it) + self.backward_length_at(it)

    # ----- model hooks --------------------------------------------------------------------------
    def train_model(self, it: int) -> dict:
        info = super().train_model(it)
        data = self.real_arrays()
        target = torch.cat([data["next_obs"] - data["obs"], data["rew"]], dim=-1)
        backward = self.backward.fit_targets(data["next_obs"], data["act"], target)
        return {**info, **{k.replace("dynamics/", "backward_"): v for k, v in backward.items()}}

    @torch.no_grad()
    def state_values(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(V, V_target)`` per state: the mean over critics of ``Q(s, a)`` at one sampled ``a ~ pi(s)``."""
        act = self.sac.actor.sample(obs)[0]
        value, target = self.sac.critic(obs, act), self.sac.critic_target(obs, act)
        return value.mean(0).squeeze(-1), target.mean(0).squeeze(-1)

    def start_states(self, num_starts: int, beta: float) -> tuple[Tensor, float]:
        obs = self.real.sample(num_starts, self.start_generator)["obs"]
        if beta == 0:
            return obs, 0.0
        values = sum(self.state_values(obs))
        probs, used = boltzmann_start_probs(values, beta, self.cfg.beta_value_range)
        idx = torch.multinomial(probs, num_starts, replacement=True, generator=self.start_generator)
        return obs[idx], used

    @torch.no_grad()
    def backward_step(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(s_prev, r, terminal)`` from ``(s', a)``: ``s_prev = s' - delta`` with a random elite."""
        raw_mean, logvar = self.backward(obs, act)
        mean = torch.cat([obs - raw_mean[..., :-1], raw_mean[..., -1:]], dim=-1)
        sample, _ = self.backward.sample_random_elite(mean, torch.exp(0.5 * logvar))
        prev_obs, reward = sample[:, :-1], sample[:, -1:]
        terminal = self.backward.termination_fn(prev_obs, act, obs).reshape(-1, 1)
        return prev_obs, reward, terminal

    def backward_rollout(self, starts: Tensor, length: int) -> Batch:
        out: dict[str, list[Tensor]] = {k: [] for k in ("obs", "act", "rew", "next_obs", "done")}
        obs = starts
        for _ in range(length):
            act = self.backward_policy.sample(obs, self.cfg.backward_policy_var) * self.ctx.act_scale
            prev_obs, reward, terminal = self.backward_step(obs, act)
            for k, v in zip(out, (prev_obs, act, reward, obs, terminal.float())):
                out[k].append(v)
            alive = ~terminal.squeeze(-1)
            if not alive.any():
                break
            obs = prev_obs[alive]
        return {k: torch.cat(v) for k, v in out.items()}

    def rollout(self, num_starts: int, length: int) -> tuple[Batch, dict]:
        it = self.current_it
        starts, beta_used = self.start_states(num_starts, self.beta_at(it))
        backward_length = self.backward_length_at(it)
        if backward_length > 0:
            back = self.backward_rollout(starts, backward_length)
        else:
            back = {k: v[:0] for k, v in self.real.buffer.data.items()}
        forward, info = policy_rollout(self.dynamics, self.policy, starts, length)
        transitions = {k: torch.cat([back[k], forward[k]]) for k in forward}
        return transitions, {**info, "backward_length": backward_length, "beta": self.beta_at(it),
                             "beta_used": beta_used, "backward_transitions": len(back["obs"])}

    # ----- acting and learning ------------------------------------------------------------------
    @torch.no_grad()
    def mpc_action(self, obs: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        state = torch.as_tensor(obs, dtype=torch.float32, device=self.device).repeat(cfg.mpc_candidates, 1)
        candidates = self.sac.actor.sample(state)[0]
        rewards, dones, act = [], [], candidates
        for i in range(cfg.planning_horizon):
            if i > 0:
                act = self.sac.actor.sample(state, deterministic=True)[0]
            state, reward, terminal, _ = self.dynamics.step(state, act)
            rewards.append(reward.squeeze(-1))
            dones.append(terminal.squeeze(-1))
        scores = mpc_scores(torch.stack(rewards), torch.stack(dones), self.state_values(state)[1], cfg.gamma)
        return candidates[scores.argmax()].cpu().numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if deterministic or self.cfg.planning_horizon == 0 or self.model_trainings == 0:
            return self.sac.act(obs, deterministic)
        return self.mpc_action(obs)

    def learn(self, batch: Batch) -> dict:
        info = self.sac.update(batch)
        self.sac_updates += 1
        # after each env step's G SAC updates, one backward-policy step (``_do_training_repeats``)
        if self.sac_updates % (self.cfg.updates_per_step * self.cfg.update_interval) == 0:
            self.backward_info = {"backward_policy_nll": self.update_backward_policy()}
        return {**info, **self.backward_info}

    def update_backward_policy(self) -> torch.Tensor:
        cfg = self.cfg
        batch = self.real.sample_recent(cfg.backward_policy_batch_size, cfg.last_n_epoch * cfg.epoch_length,
                                        self.backward_generator)
        loss = self.backward_policy.nll(batch["next_obs"], batch["act"] / self.ctx.act_scale)
        self.backward_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.backward_optim.step()
        return loss.detach()


register(
    AlgorithmSpec(
        name="bmpo",
        config_cls=BMPOConfig,
        factory=BMPO,
        kind="online",
        config_dir=Path(__file__).parent / "configs" / "bmpo",
        description="BMPO: MBPO plus backward model and policy, value-weighted starts and MPC (online)",
        paper="Lai et al., Bidirectional Model-based Policy Optimization, ICML 2020",
        module=__name__,
    )
)
