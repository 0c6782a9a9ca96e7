"""STEVE: stochastic ensemble value expansion (Buckman et al., NeurIPS 2018), an online baseline of the
ADMPO paper's Figure 3.

Official code: ``tensorflow/models`` ``research/steve`` (files cited as read through the file index, with
the commit it stores for each: ``valuerl.py``@2f536d3, ``worldmodel.py``@1d98467, ``nn.py``@dcc71fe,
``learner.py``@2f536d3, ``agent.py``@33395b0, ``config/core/{basic,model,bayesian}.json``,
``config/algos/steve.json``@860b4e4, ``envwrap.py``@f176cf4). What it does and what we do:

* **Learner** (``valuerl.py``): DDPG-style. A deterministic policy ``a = tanh(pi(s))`` (a 4-layer ReLU MLP,
  hidden 128) and an ensemble of 4 Q-functions (4 layers, hidden 128). Each Q regression row trains one
  randomly chosen member (``reduce_mode="random"``) on ``0.5 (Q - target)^2``; the actor maximises the
  ensemble-mean Q plus ``1e-3 * mean(pre_tanh^2)``. Adam 3e-4 for both. The target Q ensemble (``old_Q``) is
  a hard copy refreshed every ``epoch_every_n = 500`` updates (``learner.py: _checkpoint``).
* **Exploration** (``build_evalution_graph(mode="explore")``): each action dimension is replaced, with
  probability ``explore_chance``, by ``tanh(pre_tanh + N(0, 1))``. The configs set
  ``policy_config.explore_chance = 0.05`` but ``valuerl.py`` reads ``ddpg_explore_chance``, a key no config
  sets (its ``ConfigDict`` would return False, i.e. 0). We follow the config's value, 0.05.
* **World model** (``worldmodel.py``): 4 transition nets (8 layers, hidden 512, predict ``s' - s``), 4
  reward nets and 4 done nets (4 layers, hidden 128, inputs ``[s', s, a]``, done as logits). Loss: sigmoid
  cross-entropy + ``0.5 (r - r_hat)^2`` + ``0.5 ||s' - s_hat'||^2`` + ``1e-4 * 0.5 * sum(params^2)``, one
  random member per row, Adam 3e-4, batch 512, pre-trained for 10,000 updates before value learning starts.
* **Target** (``build_Q_expansion_graph``, ``steve_reweight``): from ``s'`` every transition member rolls H
  = 3 steps under the current policy; each of the T x R x Q (4 x 4 x 4) combinations of transition, reward
  and target-Q member gives candidate targets ``T_j = r + sum_{i=1..j} g^i c_{i-1} r_i + g^{j+1} c_j Q(s_j,
  pi(s_j))``, j = 0..H, with continuation ``c_j = prod_{i<=j} (1 - d_i)`` (``d_0`` the real done, later ones
  the done model's probabilities). The target is ``sum_j w_j mean(T_j)`` with ``w_j`` proportional to
  ``1 / (var(T_j) + 1e-8)`` over the combinations. The model never fills a buffer.
* **Data**: 10,000 uniformly random frames first; ``frames_per_update = 0.25``, i.e. 4 updates per env
  frame for the value learner and 4 for the model learner. Time limits are not terminations
  (``NoTimeLimitMujocoWrapper``).

Ours is **synchronous**: the official learners run asynchronously (value learner, model learner and 8 env
workers in separate processes, the value learner reloading the model every 500 updates); here each env step
is followed by exactly 4 learner steps, each one model update and one value update (the ratio the official
code enforces by ``_have_enough_frames``), and the value learner always uses the current model. One env,
not 8 parallel interactors; evaluation is the shared protocol (deterministic episodes every
``eval_interval`` steps), not the official evaluator processes. Actions are scaled by the env's action bound
(Humanoid: 0.4).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import UNIT_INTERVAL, Range
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import Batch
from benchmark.rl.nets import EnsembleMLP
from benchmark.rl.online import Context, OnlineAlgorithm, OnlineTrainConfig

Tensor = torch.Tensor


@dataclass
class STEVEConfig(OnlineTrainConfig):
    """Defaults: ``config/algos/steve.json`` over ``config/core/{basic,model,bayesian}.json``."""

    env_steps: int = 100_000
    start_learning: int = 10_000  # agent_config.full_random_n = frames_before_learning
    updates_per_step: int = 4  # 1 / frames_per_update (0.25)
    batch_size: int = 512  # policy_config and model_config batch_size
    buffer_size: int = 1_000_000  # replay_size
    hidden: int = 128  # policy_config.hidden_dim (policy and Q)
    layers: int = 4  # policy and Q layers (valuerl.py)
    num_q: int = 4  # bayesian.ensemble_size
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99  # env discount
    pre_tanh_coef: float = 1e-3  # actor regulariser on mean(pre_tanh^2)
    explore_chance: float = 0.05
    target_update_interval: int = 500  # epoch_every_n: hard copy of Q into old_Q
    rollout_horizon: int = 3  # value_expansion.rollout_len
    # world model
    num_models: int = 4  # transition / reward / done ensemble size
    transition_hidden: int = 512
    transition_layers: int = 8
    aux_hidden: int = 128  # reward and done nets
    aux_layers: int = 4
    model_lr: float = 3e-4
    model_l2_coef: float = 1e-4
    model_pretrain_steps: int = 10_000  # model_config.pretrain_n

    RANGES: ClassVar[dict[str, Range]] = {"explore_chance": UNIT_INTERVAL}
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"env_steps": 20, "eval_interval": 10, "batch_size": 32, "model_pretrain_steps": 20},
        # short: 2000 random frames, 1000 model pre-training steps, then 1000 env steps (4000 model and 4000
        # value updates) on batches of 64; a learner step costs ~0.1 CPU-s (the 8x512 transition ensemble
        # has 7.5M parameters), ~8 CPU-minutes in all
        "short": {"env_steps": 1000, "eval_interval": 250, "batch_size": 64, "model_pretrain_steps": 1000},
    }


def xavier_init_(net: nn.Module) -> None:
    """Glorot-uniform weights and zero biases (``nn.py``: ``xavier_initializer``, ``constant 0``)."""
    with torch.no_grad():
        for layer in getattr(net, "layers", []):
            fan_in, fan_out = layer.weight.shape[-2:]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-bound, bound)
            layer.bias.zero_()


def ensemble(members: int, in_dim: int, out_dim: int, hidden: int, layers: int) -> EnsembleMLP:
    net = EnsembleMLP(members, in_dim, out_dim, (hidden,) * (layers - 1), nn.ReLU)
    xavier_init_(net)
    return net


def pick_member(values: Tensor, member: Tensor) -> Tensor:
    """``values [M, B, ...]``, ``member [B]`` -> ``values[member[b], b]`` (``reduce_mode="random"``)."""
    return values[member, torch.arange(values.shape[1], device=values.device)]


# ----- the STEVE target -------------------------------------------------------------------------
def steve_candidates(first_reward: Tensor, first_done: Tensor, model_rewards: Tensor, model_dones: Tensor,
                     q_values: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """Mean and variance over the ensemble combinations of the candidate targets for horizons 0..H.

    ``first_reward, first_done [B]``: the replayed transition; ``model_rewards [B, H, T, R]``: reward of
    model step i along transition member t by reward member r; ``model_dones [B, H, T]``: done probability
    after model step i; ``q_values [B, H + 1, T, Q]``: target Q at frame j (frame 0 = s') under the policy.
    Returns ``mean, var [B, H + 1]`` (population variance over the T * R * Q combinations, as
    ``tf.nn.moments``)."""
    batch, horizon, transitions = model_dones.shape
    frames = torch.arange(horizon + 1, device=q_values.device, dtype=q_values.dtype)
    dones = torch.cat([first_done.reshape(batch, 1, 1).expand(batch, 1, transitions), model_dones], dim=1)
    cont = torch.cumprod(1.0 - dones, dim=1)  # c_j: alive at frame j
    alive_before = torch.cat([torch.ones_like(cont[:, :1]), cont[:, :-1]], dim=1)  # c_{j-1}, c_{-1} = 1
    rewards_n = model_rewards.shape[-1]
    first = first_reward.reshape(batch, 1, 1, 1).expand(batch, 1, transitions, rewards_n)
    rewards = torch.cat([first, model_rewards], dim=1)  # [B, H + 1, T, R]
    returns = torch.cumsum(rewards * (gamma**frames).view(1, -1, 1, 1) * alive_before.unsqueeze(-1), dim=1)
    values = q_values * (gamma ** (frames + 1)).view(1, -1, 1, 1) * cont.unsqueeze(-1)  # [B, H + 1, T, Q]
    targets = returns.unsqueeze(-1) + values.unsqueeze(-2)  # [B, H + 1, T, R, Q]
    flat = targets.reshape(batch, horizon + 1, -1)
    return flat.mean(-1), flat.var(-1, unbiased=False)


def steve_combine(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse-variance weighting over horizons: ``target [B]`` and the weights ``[B, H + 1]``."""
    confidence = 1.0 / (var + 1e-8)
    weights = confidence / confidence.sum(-1, keepdim=True)
    return (mean * weights).sum(-1), weights


# ----- networks -----------------------------------------------------------------------------------
class WorldModel(nn.Module):
    """Transition, reward and done ensembles (``worldmodel.py``: ``DeterministicWorldModel``)."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: STEVEConfig):
        super().__init__()
        members = cfg.num_models
        self.transition = ensemble(members, obs_dim + act_dim, obs_dim, cfg.transition_hidden,
                                   cfg.transition_layers)
        self.reward = ensemble(members, 2 * obs_dim + act_dim, 1, cfg.aux_hidden, cfg.aux_layers)
        self.done = ensemble(members, 2 * obs_dim + act_dim, 1, cfg.aux_hidden, cfg.aux_layers)

    def loss(self, batch: Batch, member: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The data terms; the ``l2_coef * 0.5 * sum(params^2)`` term is Adam's (coupled) ``weight_decay``,
        whose gradient ``l2_coef * params`` is the same, without a pass over the 7.5M parameters."""
        obs, act, next_obs = batch["obs"], batch["act"], batch["next_obs"]
        x = torch.cat([obs, act], -1)
        pred_next = pick_member(self.transition(x), member) + obs
        nx = torch.cat([next_obs, x], -1)
        done_logit = pick_member(self.done(nx), member)
        pred_rew = pick_member(self.reward(nx), member)
        done_loss = F.binary_cross_entropy_with_logits(done_logit, batch["done"])
        reward_loss = 0.5 * ((batch["rew"] - pred_rew) ** 2).mean()
        next_obs_loss = 0.5 * ((next_obs - pred_next) ** 2).sum(-1).mean()
        info = {"model/done_loss": done_loss.detach(), "model/reward_loss": reward_loss.detach(),
                "model/next_obs_loss": next_obs_loss.detach()}
        return done_loss + reward_loss + next_obs_loss, info


class STEVE(OnlineAlgorithm):
    cfg: STEVEConfig

    def __init__(self, cfg: STEVEConfig, ctx: Context):
        super().__init__(cfg, ctx)
        if cfg.layers < 2 or cfg.transition_layers < 2 or cfg.aux_layers < 2:
            raise ValueError("steve: every network needs at least 2 layers")
        o, a = ctx.obs_dim, ctx.act_dim
        self.policy = ensemble(1, o, a, cfg.hidden, cfg.layers)  # initialised from the run's seeded stream
        self.q = ensemble(cfg.num_q, o + a, 1, cfg.hidden, cfg.layers)
        self.model = WorldModel(o, a, cfg)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        for net in (self.policy, self.q, self.q_target, self.model):
            net.to(self.device)
        self.actor_optim = torch.optim.Adam(self.policy.parameters(), lr=cfg.actor_lr)
        self.q_optim = torch.optim.Adam(self.q.parameters(), lr=cfg.critic_lr)
        self.model_optim = torch.optim.Adam(self.model.parameters(), lr=cfg.model_lr,
                                            weight_decay=cfg.model_l2_coef, fused=True)
        self.act_scale = float(ctx.act_scale)
        # own streams: exploration noise (CPU) and per-row ensemble members (on the device)
        self.explore_generator = torch.Generator().manual_seed(int(cfg.seed) + 1)
        self.member_generator = torch.Generator(device=self.device).manual_seed(int(cfg.seed) + 2)
        self.value_updates = 0
        self.model_updates = 0

    # ----- policy -------------------------------------------------------------------------------
    def pre_tanh(self, obs: Tensor) -> Tensor:
        return self.policy(obs.reshape(-1, obs.shape[-1]))[0].reshape(*obs.shape[:-1], -1)

    def action(self, obs: Tensor) -> Tensor:
        return self.act_scale * torch.tanh(self.pre_tanh(obs))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        pre = self.pre_tanh(t).cpu()
        action = torch.tanh(pre)
        if not deterministic:  # official explore mode: per dimension, with probability explore_chance
            noisy = torch.tanh(pre + torch.randn(pre.shape, generator=self.explore_generator))
            swap = torch.rand(pre.shape, generator=self.explore_generator) < self.cfg.explore_chance
            action = torch.where(swap, noisy, action)
        return (self.act_scale * action).numpy()

    # ----- model ------------------------------------------------------------------------------
    def members(self, n: int, batch: int) -> Tensor:
        return torch.randint(n, (batch,), generator=self.member_generator, device=self.device)

    def model_update(self) -> dict[str, float]:
        batch = self.real.sample(self.cfg.batch_size, self.batch_generator)
        loss, info = self.model.loss(batch, self.members(self.cfg.num_models, len(batch["obs"])))
        self.model_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.model_optim.step()
        self.model_updates += 1
        return info

    def before_step(self, it: int) -> dict:
        if it != 0:
            return {}
        # model pre-training on the random frames before value learning starts (learner.py: _pretrain)
        info: dict = {}
        for _ in range(self.cfg.model_pretrain_steps):
            info = self.model_update()
        return {f"pretrain/{k}": float(v) for k, v in info.items()}  # once, after the pre-training

    # ----- target -------------------------------------------------------------------------------
    @torch.no_grad()
    def target(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """STEVE's target for every replayed transition and the mean weight per horizon."""
        model, horizon = self.model, self.cfg.rollout_horizon
        obs = batch["next_obs"].unsqueeze(0).expand(self.cfg.num_models, -1, -1)  # [T, B, o]
        frames, rewards, dones = [obs], [], []
        for _ in range(horizon):
            act = self.action(obs)
            x = torch.cat([obs, act], -1)
            next_obs = obs + model.transition(x)  # member t along branch t
            nx = torch.cat([next_obs, x], -1)
            dones.append(torch.sigmoid(model.done(nx)).squeeze(-1))  # [T, B]
            # every reward member on every branch: [R, T * B] -> [T, B, R]
            r = model.reward(nx.reshape(-1, nx.shape[-1])).squeeze(-1)
            rewards.append(r.reshape(-1, *obs.shape[:2]).permute(1, 2, 0))
            frames.append(next_obs)
            obs = next_obs
        states = torch.stack(frames, 0)  # [H + 1, T, B, o]
        q = self.q_target(torch.cat([states, self.action(states)], -1).reshape(-1, states.shape[-1] +
                                                                              self.ctx.act_dim))
        q = q.squeeze(-1).reshape(-1, *states.shape[:3]).permute(3, 1, 2, 0)  # [B, H + 1, T, Q]
        mean, var = steve_candidates(
            batch["rew"].squeeze(-1), batch["done"].squeeze(-1),
            torch.stack(rewards, 0).permute(2, 0, 1, 3), torch.stack(dones, 0).permute(2, 0, 1), q,
            self.cfg.gamma)
        target, weights = steve_combine(mean, var)
        return target, weights.mean(0)

    # ----- learning -----------------------------------------------------------------------------
    def learn(self, batch: Batch) -> dict:
        cfg = self.cfg
        info = self.model_update()
        target, weights = self.target(batch)
        q_all = self.q(torch.cat([batch["obs"], batch["act"]], -1)).squeeze(-1)  # [Q, B]
        q_guess = pick_member(q_all, self.members(cfg.num_q, len(target)))
        q_loss = 0.5 * ((q_guess - target) ** 2).mean()
        pre = self.pre_tanh(batch["obs"])
        q_pi = self.q(torch.cat([batch["obs"], self.act_scale * torch.tanh(pre)], -1)).mean(0)
        policy_loss = -q_pi.mean() + cfg.pre_tanh_coef * (pre**2).mean()
        self.q_optim.zero_grad(set_to_none=True)
        self.actor_optim.zero_grad(set_to_none=True)
        q_loss.backward(inputs=list(self.q.parameters()))
        policy_loss.backward(inputs=list(self.policy.parameters()))  # Q parameters held fixed
        self.q_optim.step()
        self.actor_optim.step()
        self.value_updates += 1
        if self.value_updates % cfg.target_update_interval == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        info.update({"q_loss": q_loss.detach(), "policy_loss": policy_loss.detach(),
                     "q_mean": q_all.mean().detach(), "target_mean": target.mean().detach(),
                     "model_use": 1.0 - weights[0].detach().double()})  # float64: as 1.0 - a float
        return info


register(
    AlgorithmSpec(
        name="steve",
        config_cls=STEVEConfig,
        factory=STEVE,
        kind="online",
        config_dir=Path(__file__).parent / "configs" / "steve",
        description="STEVE: DDPG with ensemble value expansion, horizons weighted by inverse variance "
        "(synchronous)",
        paper="Buckman et al., Sample-Efficient Reinforcement Learning with Stochastic Ensemble Value "
        "Expansion, NeurIPS 2018",
        module=__name__,
    )
)
