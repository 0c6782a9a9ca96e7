"""DDPPO: policy optimisation by back-propagating through a model with a gradient-aware second model
(Li et al., "Gradient Information Matters in Policy Optimization by Back-propagating through Model",
ICLR 2022), an online baseline of the ADMPO paper's Figure 3.

Official code: ``CCreal/ddppo`` at d065090 (code commit b8a616c): ``ddppo/main.py``,
``agent_double_model.py``, ``model.py``, ``model_regular_on_jacobian.py``, ``buffer.py``, ``run.sh``.

* **Two ensembles** of 7 (5 elites), 4x200 Swish, Gaussian over ``[reward, s' - s]``, Adam 1e-3, per-layer
  weight decay, log-variance soft-bounded by *fixed* bounds 0.5 / -10 (``requires_grad=False``); inputs
  standardised. Every ``model_train_freq = 250`` env steps both are trained on all real data (random 20 %
  holdout, per-member permutations of the rest, stop after more than 5 epochs without a > 1 % holdout-MSE
  improvement; no snapshots are restored; elites by the last holdout MSE). They keep training across calls.

  - The **prediction model** (``model.py``) minimises the Gaussian NLL.
  - The **gradient model** (``model_regular_on_jacobian.py``) adds ``weight_grad * mean((J_f(x_i) (x_j - x_i)
    - (y_j - y_i))^2)``: ``f(s, a) = [r, s']`` is the model mean on raw inputs, ``J_f`` its input Jacobian,
    and ``x_j`` the ``near_n`` nearest neighbours of ``x_i = (s_i, a_i)`` in a KD-tree over the most recent
    ``min(N, 10000)`` real transitions (``buffer.py: sample_near``). We compute ``J_f`` with
    ``torch.func.jacrev`` (the official repeats every input once per output) and the neighbours with
    ``scipy.spatial.cKDTree`` (a dependency of the project).
* **Critic**: SAC twin Q (2x256, lr 3e-4, tau 0.005, auto alpha in ``run.sh``) on batches of 256 with
  ``int(256 * 0.05)`` real and the rest from a Dyna model buffer filled by prediction-model rollouts
  (MBPO-style, the random-elite Gaussian step of :func:`benchmark.rl.dynamics.policy_rollout`). Critic
  gradients clipped at 100 (value). The temperature is updated in the critic step; the actor is **not**.
* **Actor** (``update_parameters_policy``): from ``batch_size_policy`` real states roll ``H`` steps with the
  prediction model (each next state detached). Backwards from the last step, ``L = (-min Q + alpha log pi)
  g^{H-1}``, the costate ``p = dL/ds`` and, for earlier steps, ``H_j = (p . f_grad(s_j, a_j) - r_j + alpha
  log pi_j) g^j`` with the gradient model's sampled ``[s', r]``, ``p <- dH_j/ds_j``. A step after the first
  termination is masked out. The loss ``sum_j H_j / B`` updates the actor, gradients clipped at 5 (value),
  ``update_policy_times`` times per env step. ``--H 4`` ("3 here means 2 in paper").

Ours, on the shared online loop: the 5000 random steps are the loop's warm-up; the models are trained at
``it = 0, 250, ...`` (the official trains when ``total_numsteps > min_pool_size``, first at 5250); each
``learn`` call is one critic update, and the actor updates are spread over the ``updates_per_step`` calls
of an env step (the official runs them all before the critic updates). The critic update cap
``max_train_repeat_per_step * (t - min_pool)`` never binds when it equals ``updates_per_step`` (every
official setting) and is not modelled. The shared SAC actor clamps log-std to [-5, 2] (official [-20, 2]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.spatial import cKDTree

from benchmark.config import POSITIVE, Range
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import Batch
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig, policy_rollout
from benchmark.rl.nets import soft_update
from benchmark.rl.online import Context, OnlineModelBased, OnlineModelBasedConfig, OnlineSACConfig
from benchmark.rl.sac import SAC
from benchmark.rl.termination import TerminationFn
from benchmark.rl.trainers import read_once

Tensor = torch.Tensor


@dataclass
class DDPPOConfig(OnlineModelBasedConfig, OnlineSACConfig):
    """Defaults: ``run.sh`` (AntTruncatedObs, the only official setting) over the ``main.py`` argparse."""

    env_steps: int = 150_000
    start_learning: int = 5000  # --start_steps / --min_pool_size
    updates_per_step: int = 10  # critic updates per env step
    num_policy_updates: int = 10  # --update_policy_times, per env step
    policy_batch_size: int = 256  # --batch_size_policy
    policy_horizon: int = 4  # --H
    jacobian_coef: float = 0.1  # --weight_grad
    num_neighbours: int = 5  # --near_n
    neighbour_buffer_size: int = 10_000  # env_pool.sample_near(min(len, 10000))
    critic_grad_clip: float = 100.0
    actor_grad_clip: float = 5.0
    auto_alpha: bool = True
    # both ensembles (model.py / model_regular_on_jacobian.py)
    model_members: int = 7
    model_elites: int = 5
    model_hidden: tuple[int, ...] = (200, 200, 200, 200)
    model_lr: float = 1e-3
    model_batch_size: int = 256
    model_holdout_fraction: float = 0.2
    model_max_epochs_since_update: int = 5
    model_max_epochs: int | None = None  # budget caps (None: early stopping only, as the official)
    model_max_steps: int | None = None
    # Dyna rollouts: epochs [25, 155] counted from the first random step are it = [20k, 150k] here
    model_update_interval: int = 250
    model_rollout_interval: int = 250
    rollout_schedule: tuple[int, int, int, int] = (20_000, 150_000, 1, 1)
    model_retain_steps: int = 1000  # model_retain_epochs 1 x epoch_length 1000

    RANGES: ClassVar[dict[str, Range]] = {"critic_grad_clip": POSITIVE, "actor_grad_clip": POSITIVE}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"compile": ("off",)}  # own update loop, not compiled
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"env_steps": 6, "eval_interval": 3, "start_learning": 300, "model_max_epochs": 2,
                  "model_max_steps": 4, "rollout_batch_size": 64, "policy_batch_size": 16,
                  "neighbour_buffer_size": 300},
        # short: 2000 random steps, then 1000 env steps; each of the 4 model trainings capped at 300
        # gradient steps per ensemble, 5000 rollout starts
        "short": {"env_steps": 1000, "eval_interval": 250, "model_max_epochs": 20, "model_max_steps": 300,
                  "rollout_batch_size": 5000},
    }


# ----- the gradient model -------------------------------------------------------------------------
def model_jacobian(model: EnsembleDynamics, inputs: Tensor) -> Tensor:
    """Input Jacobian of every member's mean ``[next_obs, reward]`` at raw ``inputs [M, B, o + a]``:
    ``[M, B, o + 1, o + a]``, differentiable in the model's parameters. Members and rows are independent,
    so the Jacobian of the sum over them is the stack of the per-row Jacobians."""
    obs_dim = model.obs_dim

    def summed(x: Tensor) -> Tensor:
        mean, _ = model.predict(x[..., :obs_dim], x[..., obs_dim:])
        return mean.sum(dim=(0, 1))

    return torch.func.jacrev(summed)(inputs).permute(1, 2, 0, 3)


def jacobian_consistency_loss(model: EnsembleDynamics, inputs: Tensor, input_diffs: Tensor,
                              output_diffs: Tensor) -> Tensor:
    """``mean((J_f(x_i) (x_j - x_i) - (y_j - y_i))^2)`` over members, rows, neighbours and outputs.

    ``inputs [M, B, o + a]``; ``input_diffs [M, B, k, o + a]``; ``output_diffs [M, B, k, o + 1]`` with the
    outputs ordered ``[next_obs, reward]`` like :meth:`EnsembleDynamics.predict`."""
    jac = model_jacobian(model, inputs)
    return ((torch.einsum("mbij,mbkj->mbki", jac, input_diffs) - output_diffs) ** 2).mean()


@dataclass
class NeighbourTable:
    """For each of the recent real transitions: its input and the differences to its neighbours."""

    inputs: Tensor  # [N, o + a]
    input_diffs: Tensor  # [N, k, o + a]
    output_diffs: Tensor  # [N, k, o + 1]: [next_obs, reward]


def neighbour_table(obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray, k: int,
                    device: torch.device) -> NeighbourTable:
    """The ``k`` nearest neighbours (raw ``(s, a)``, Euclidean, the point itself excluded) of every row."""
    x = np.concatenate([obs, act], -1)
    y = np.concatenate([next_obs, rew.reshape(-1, 1)], -1)
    k = min(k, len(x) - 1)
    _, idx = cKDTree(x).query(x, k=k + 1)
    idx = idx[:, 1:]
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    return NeighbourTable(t(x), t(x[idx] - x[:, None]), t(y[idx] - y[:, None]))


class DDPPOEnsemble(EnsembleDynamics):
    """:class:`EnsembleDynamics` (layers, NLL, decay, prediction) with DDPPO's training loop and a
    differentiable sampled step."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: EnsembleDynamicsConfig, env_key: str, device,
                 seed: int):
        super().__init__(obs_dim, act_dim, cfg, env_key, device, seed)
        self.max_logvar.requires_grad_(False)  # fixed bounds in the official code
        self.min_logvar.requires_grad_(False)

    def sample_step(self, obs: Tensor, act: Tensor, generator: torch.Generator | None = None
                    ) -> tuple[Tensor, Tensor]:
        """``step_tensor``: a Gaussian sample of a random elite per row (differentiable) -> next_obs, rew."""
        mean, logvar = self.predict(obs, act)
        rows = torch.arange(len(obs), device=self.device)
        pick = self.elites[torch.randint(len(self.elites), (len(obs),), generator=self._gen(generator),
                                         device=self.device)]
        std = torch.exp(0.5 * logvar[pick, rows])
        sample = mean[pick, rows] + std * self._noise(mean.shape[1:], generator)
        return sample[:, :-1], sample[:, -1:]

    def train_ddppo(self, data: Batch, neighbours: NeighbourTable | None = None, jacobian_coef: float = 0.0,
                    max_epochs: int | None = None, max_steps: int | None = None) -> dict[str, float]:
        cfg, gen, dev = self.cfg, self.generator, self.device
        obs, act = data["obs"], data["act"]
        target = torch.cat([data["next_obs"] - obs, data["rew"]], -1)
        n = len(obs)
        holdout = int(n * cfg.holdout_fraction)
        perm = torch.randperm(n, generator=gen, device=dev)
        ho, tr = perm[:holdout], perm[holdout:]
        self.fit_normalizer(torch.cat([obs[tr], act[tr]], -1))
        members, batch = cfg.members, cfg.batch_size
        best = torch.full((members,), 1e10, device=dev)
        since, epoch, steps, jac_losses = 0, 0, 0, []
        while True:
            order = tr[torch.rand(members, len(tr), generator=gen, device=dev).argsort(1)]
            if neighbours is not None:
                n_nb = len(neighbours.inputs)
                nb_order = torch.rand(members, n_nb, generator=gen, device=dev).argsort(1)
            for b, start in enumerate(range(0, len(tr), batch)):
                idx = order[:, start:start + batch]
                loss = self.loss(obs[idx], act[idx], target[idx])
                if neighbours is not None and jacobian_coef > 0:
                    cols = (torch.arange(batch, device=dev) + b * batch) % n_nb
                    j = nb_order[:, cols]
                    jac = jacobian_consistency_loss(self, neighbours.inputs[j], neighbours.input_diffs[j],
                                                    neighbours.output_diffs[j])
                    loss = loss + jacobian_coef * jac
                    jac_losses.append(jac.detach())
                self.optim.zero_grad(set_to_none=True)
                loss.backward()
                self.optim.step()
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            epoch += 1
            mse = (self.holdout_mse(obs[ho], act[ho], target[ho]) if holdout
                   else torch.zeros(members, device=dev))
            improved = (best - mse) / best > cfg.improvement_threshold
            best = torch.where(improved, mse, best)
            since = 0 if improved.any() else since + 1
            if (since > cfg.max_epochs_since_update or (max_epochs is not None and epoch >= max_epochs)
                    or (max_steps is not None and steps >= max_steps)):
                break
        self.elites.copy_(mse.argsort()[: cfg.elites])  # the last epoch's ranking; no snapshot restored
        info = {"epochs": epoch, "steps": steps, "holdout_mse": mse[self.elites].mean().item()}
        if jac_losses:
            recent = read_once(torch.stack(jac_losses[-10:]))  # read once per training
            info["jacobian_loss"] = float(np.mean(recent))
        return info


# ----- the actor update ---------------------------------------------------------------------------
def ddp_actor_loss(policy: Callable[[Tensor], tuple[Tensor, Tensor]],
                   q_min: Callable[[Tensor, Tensor], Tensor],
                   predict_step: Callable, gradient_step: Callable, termination_fn: TerminationFn,
                   start_obs: Tensor, horizon: int, gamma: float, alpha: float | Tensor
                   ) -> tuple[Tensor, dict]:
    """DDPPO's directional-derivative-projection loss (``update_parameters_policy``).

    ``policy(s) -> (a, log pi)`` (reparameterised), ``q_min(s, a) -> [B, 1]``, ``predict_step`` and
    ``gradient_step`` ``(s, a) -> (s', r)``. Its gradient in the policy parameters is the H-step model
    return's, with the costate from the gradient model instead of back-propagation through the states."""
    batch = len(start_obs)
    states, actions, logps, dones = [], [], [], []
    s = start_obs.detach().clone().requires_grad_()
    for _ in range(horizon):
        a, logp = policy(s)
        next_s, _ = predict_step(s, a)
        next_s = next_s.detach()
        dones.append(termination_fn(s.detach(), a.detach(), next_s).reshape(batch).float())
        states.append(s)
        actions.append(a)
        logps.append(logp)
        s = next_s.clone().requires_grad_()
    done = torch.stack(dones, 1)
    # alive[:, j] = 1 up to and including the first terminal step
    alive = torch.cat([torch.ones_like(done[:, :1]), torch.cumprod(1.0 - done, 1)[:, :-1]], 1).unsqueeze(-1)
    last = horizon - 1
    ham = (-q_min(states[last], actions[last]) + alpha * logps[last]) * gamma**last * alive[:, last]
    costate = torch.autograd.grad(ham.sum(), states[last], retain_graph=True)[0].detach()
    terms = [ham]
    for j in range(horizon - 2, -1, -1):
        next_pred, reward = gradient_step(states[j], actions[j])
        costate_term = (costate * next_pred).sum(-1, keepdim=True)
        ham = (costate_term - reward + alpha * logps[j]) * gamma**j * alive[:, j]
        costate = torch.autograd.grad(ham.sum(), states[j], retain_graph=True)[0].detach()
        terms.append(ham)
    loss = torch.stack(terms).sum() / batch
    return loss, {"actor_loss": loss.detach(), "costate_norm": costate.norm(dim=-1).mean().detach(),
                  "actor_horizon_alive": alive[:, last].mean().detach()}


class DDPPO(OnlineModelBased):
    cfg: DDPPOConfig

    def __init__(self, cfg: DDPPOConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.sac = SAC(ctx.obs_dim, ctx.act_dim, cfg.sac_config(), act_scale=ctx.act_scale, device=ctx.device)
        model_cfg = EnsembleDynamicsConfig(
            members=cfg.model_members, elites=cfg.model_elites, hidden=tuple(cfg.model_hidden),
            lr=cfg.model_lr, batch_size=cfg.model_batch_size, holdout_fraction=cfg.model_holdout_fraction,
            max_epochs_since_update=cfg.model_max_epochs_since_update,
        )
        args = (ctx.obs_dim, ctx.act_dim, model_cfg, ctx.env_key, ctx.device)
        self.predictor = DDPPOEnsemble(*args, seed=int(cfg.seed) + 1)
        self.gradient_model = DDPPOEnsemble(*args, seed=int(cfg.seed) + 2)
        self.termination_fn = self.predictor.termination_fn
        self.rollout_generator = torch.Generator(device=ctx.device).manual_seed(int(cfg.seed) + 3)
        self.critic_updates = 0
        self.actor_updates = 0

    # ----- model hooks --------------------------------------------------------------------------
    def train_model(self, it: int) -> dict:
        cfg = self.cfg
        data = self.real.buffer.all()
        recent = {k: v[-cfg.neighbour_buffer_size:].cpu().numpy() for k, v in data.items()}
        table = neighbour_table(recent["obs"], recent["act"], recent["rew"], recent["next_obs"],
                                cfg.num_neighbours, self.device)
        caps = dict(max_epochs=cfg.model_max_epochs, max_steps=cfg.model_max_steps)
        pred = self.predictor.train_ddppo(data, **caps)
        grad = self.gradient_model.train_ddppo(data, table, cfg.jacobian_coef, **caps)
        return {**{f"prediction_{k}": v for k, v in pred.items()},
                **{f"gradient_{k}": v for k, v in grad.items()}}

    def rollout(self, num_starts: int, length: int) -> tuple[Batch, dict]:
        start = self.real.sample(num_starts, self.batch_generator)["obs"]
        return policy_rollout(self.predictor, lambda o: self.sac.actor.sample(o)[0], start, length,
                              generator=self.rollout_generator)

    # ----- acting and learning ------------------------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.sac.act(obs, deterministic)

    def update_critic(self, batch: Batch) -> dict:
        sac = self.sac
        loss, info = sac.critic_loss(batch)
        sac.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(sac.critic.parameters(), self.cfg.critic_grad_clip)
        sac.critic_optim.step()
        soft_update(sac.critic_target, sac.critic, sac.cfg.tau)
        info["critic_loss"] = loss.detach()
        if sac.alpha_optim is not None:  # the temperature follows the critic batch (update_parameters_q)
            with torch.no_grad():
                _, logp = sac.actor.sample(batch["obs"])
            alpha_loss = -(sac.log_alpha * (logp + sac.target_entropy)).mean()
            sac.alpha_optim.zero_grad(set_to_none=True)
            alpha_loss.backward()
            sac.alpha_optim.step()
        info["alpha"] = sac.alpha.detach()
        return info

    def update_actor(self) -> dict:
        cfg, sac = self.cfg, self.sac
        start = self.real.sample(cfg.policy_batch_size, self.batch_generator)["obs"]
        loss, info = ddp_actor_loss(
            sac.actor.sample, lambda s, a: sac.critic(s, a).min(0).values,
            lambda s, a: self.predictor.sample_step(s, a, self.rollout_generator),
            lambda s, a: self.gradient_model.sample_step(s, a, self.rollout_generator),
            self.termination_fn, start, cfg.policy_horizon, cfg.gamma, sac.alpha)
        params = list(sac.actor.parameters())
        sac.actor_optim.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        torch.nn.utils.clip_grad_value_(params, cfg.actor_grad_clip)
        sac.actor_optim.step()
        self.actor_updates += 1
        return info

    def learn(self, batch: Batch) -> dict:
        cfg = self.cfg
        info = self.update_critic(batch)
        # spread num_policy_updates actor updates over the updates_per_step calls of one env step
        call = self.critic_updates % cfg.updates_per_step
        due = (call + 1) * cfg.num_policy_updates // cfg.updates_per_step - call * cfg.num_policy_updates // \
            cfg.updates_per_step
        for _ in range(due):
            info.update(self.update_actor())
        self.critic_updates += 1
        return info


register(
    AlgorithmSpec(
        name="ddppo",
        config_cls=DDPPOConfig,
        factory=DDPPO,
        kind="online",
        config_dir=Path(__file__).parent / "configs" / "ddppo",
        description="DDPPO: SAC critic on Dyna data, actor by directional derivative projection through "
        "a prediction and a Jacobian-regularised gradient model",
        paper="Li et al., Gradient Information Matters in Policy Optimization by Back-propagating through "
        "Model, ICLR 2022",
        module=__name__,
    )
)
