"""RAMBO-RL: Robust Adversarial Model-Based Offline RL (Rigter, Lacerda & Hawes, NeurIPS 2022,
arXiv 2204.12581).

SAC on real + model data (MOPO's loop, no reward penalty) where the model itself is trained to be
pessimistic: every ``adv_update_freq`` policy steps the ensemble takes ``adv_train_steps`` gradient
steps on

    L = adv_weight * E[ log P_T(s', r | s, a) * A(s, a, s', r) ] + L_MLE(real batch),
    A = r + gamma (1 - d) min_j Q_j(s', pi_det(s')) - min_j Q_j(s, a),  normalised over the batch,

on ``adv_rollout_length``-step rollouts of the current (stochastic) policy from dataset states, where
``(s', r)`` is a sample of a random elite and ``log P_T`` is its log-density under the equal mixture of
the elites (computed with logsumexp). Lowering the probability of transitions with a high advantage
makes the model adversarial to the policy's value; the maximum-likelihood term on real transitions
keeps it consistent with the data. Before policy learning the actor is pre-trained by behaviour
cloning (MSE between its sampled action and the dataset action).

Sources: the loss and loop follow the paper, the official code (marc-rigter/rambo@be635eb) and
OfflineRL-Kit (``offlinerlkit/policy/model_based/rambo.py``, ``run_example/run_rambo.py``: 50% real data,
model lr 3e-4, holdout 10%, log-variance bound coefficient 1e-3, 10 epochs of patience, adversary lr
3e-4, 1000 adversarial steps of batch 256 every 1000 policy steps, 50 BC epochs at lr 1e-4, 2000
epochs, no actor lr schedule, automatic temperature clamped at 1 by its ``SACPolicy``). Per-dataset
``rollout_length`` and ``adv_weight`` come from the official code
(``examples/config/rambo/mujoco/*.py``), see ``configs/rambo/``.

Like both references, the whole method works on standardised states (``normalize_states``): the real
data's observations are z-scored with the dataset mean and std (+1e-3, OfflineRL-Kit's
``ReplayBuffer.normalize_obs``; the official code uses a 10,000-row subsample and +1e-6), so the model,
its rollouts, the critics and the policy all see standardised states; termination is tested on the
de-standardised state (OfflineRL-Kit's ``obs_unnormalization``) and the policy standardises the
environment's observations when acting. The default model-rollout schedule is the official one
(``model_train_freq`` 1000, ``model_retain_epochs`` 5: a rollout every 1000 steps, a buffer of 5);
OfflineRL-Kit's (every 250 steps, a buffer of ``1000 // 250 * 5 = 20`` rollouts, i.e. four times the
model data) is ``--set rollout_freq=250 model_retain_epochs=20``.

Remaining differences, stated: (1) the model head follows OfflineRL-Kit (shared mean/log-variance head,
bounds 0.5 / -10), not the official separate variance head. (2) OfflineRL-Kit's BC loop shuffles an
index array it then does not use; we shuffle the data each BC epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from baselines.bc import StateNormalizer
from baselines.mopo import MOPO, ModelBasedSACConfig
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import Batch


@dataclass
class RAMBOConfig(ModelBasedSACConfig):
    epochs: int = 2000
    lr_schedule: bool = False
    rollout_freq: int = 1000  # official model_train_freq (OfflineRL-Kit: 250)
    rollout_length: int = 5
    real_ratio: float = 0.5
    model_retain_epochs: int = 5  # official model_retain_epochs (OfflineRL-Kit: 1000 // 250 * 5 = 20)
    normalize_states: bool = True  # standardise states for model, critics and policy (both references)
    dynamics_lr: float = 3e-4
    dynamics_holdout_fraction: float = 0.1
    dynamics_logvar_loss_coef: float = 1e-3
    dynamics_max_epochs_since_update: int = 10
    adv_weight: float = 3e-4  # lambda, weight of the adversarial term
    adv_lr: float = 3e-4
    adv_update_freq: int = 1000  # policy steps between adversarial model updates
    adv_train_steps: int = 1000  # model gradient steps per adversarial update
    adv_batch_size: int = 256
    include_ent_in_adv: bool = False  # subtract alpha log pi at s' in the advantage
    bc_epochs: int = 50  # behaviour-cloning pre-training of the actor
    bc_lr: float = 1e-4
    bc_batch_size: int = 256

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"adv_update_freq": 25, "adv_train_steps": 5, "bc_epochs": 1},
        "short": {"adv_update_freq": 1000, "adv_train_steps": 100, "bc_epochs": 2},
    }


def mixture_log_prob(mean: torch.Tensor, std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log-density of ``x [B, d]`` under the equal-weight mixture of diagonal Gaussians ``[E, B, d]``."""
    comp = torch.distributions.Normal(mean, std).log_prob(x.unsqueeze(0)).sum(-1)  # [E, B]
    return torch.logsumexp(comp, dim=0) - math.log(mean.shape[0])


def normalised_advantage(value: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    adv = value - baseline
    return (adv - adv.mean()) / (adv.std() + 1e-6)


class OnRawStates:
    """A termination function of raw states applied to standardised ones (a class, not a closure, so a
    checkpoint can pickle it)."""

    def __init__(self, fn, norm: StateNormalizer):
        self.fn, self.norm = fn, norm

    def __call__(self, obs, act, next_obs):
        return self.fn(self.norm.inverse(obs), act, self.norm.inverse(next_obs))


class RAMBO(MOPO):
    def __init__(self, cfg: RAMBOConfig, ctx):
        super().__init__(cfg, ctx)
        self.adv_optim = torch.optim.Adam(self.dynamics.parameters(), lr=cfg.adv_lr)
        self.num_learn_steps = 0
        self.obs_norm = StateNormalizer(ctx.dataset.observations, cfg.normalize_states).to(self.device)
        self._standardise_real()
        if cfg.normalize_states:
            self.dynamics.termination_fn = OnRawStates(self.dynamics.termination_fn, self.obs_norm)

    def _standardise_real(self) -> None:
        if self.cfg.normalize_states:
            for key in ("obs", "next_obs"):
                self.real.data[key] = self.obs_norm(self.real.data[key])

    def attach_data(self, ctx) -> None:
        super().attach_data(ctx)
        self._standardise_real()

    def train_dynamics(self) -> dict:
        d = self.real.data  # standardised states when normalize_states
        self.dynamics.checkpoint = self.setup_loop("model")  # a kill mid-training resumes it
        return self.dynamics.fit_arrays(
            d["obs"].cpu(), d["act"].cpu(), d["rew"].cpu(), d["next_obs"].cpu()
        )

    def act(self, obs, deterministic: bool = True):
        with torch.no_grad():
            t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
            return self.sac.act(self.obs_norm(t), deterministic)

    def reward_fn(self, reward: torch.Tensor, info: dict[str, torch.Tensor]) -> torch.Tensor:
        return reward  # no reward penalty: the pessimism lives in the adversarially trained model

    # ----- setup: model (MLE) then BC pre-training ---------------------------------------------
    def setup(self) -> dict:
        info = super().setup()
        info.update(self.pretrain_bc())
        return info

    def pretrain_bc(self) -> dict:
        """``bc_epochs`` of behaviour cloning over the real data; in a checkpointed run the loop saves at
        epoch ends now and then (and at its end) and resumes there after a kill, to the same weights."""
        cfg, actor = self.cfg, self.sac.actor
        optim = torch.optim.Adam(actor.parameters(), lr=cfg.bc_lr)
        weights = {"actor": actor, "bc_optim": optim}
        data = self.real.all()
        n, epoch, first_loss, last_loss = len(data["obs"]), 0, None, None
        loop = self.setup_loop("pretrain")
        if loop is not None:
            loop.track(self.batch_generator)
            saved = loop.load_into(weights)
            if saved is not None:
                epoch, first_loss, last_loss = saved["epoch"], saved["first_loss"], saved["last_loss"]
        while epoch < cfg.bc_epochs:
            order = torch.randperm(n, generator=self.batch_generator, device=self.batch_generator.device)
            for start in range(0, n - cfg.bc_batch_size + 1, cfg.bc_batch_size):
                idx = order[start : start + cfg.bc_batch_size]
                pred, _ = actor.sample(data["obs"][idx])
                loss = ((pred - data["act"][idx]) ** 2).mean()
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                first_loss = loss.detach() if first_loss is None else first_loss
                last_loss = loss.detach()
            epoch += 1
            if loop is not None and (epoch == cfg.bc_epochs or loop.due()):
                loop.save_objects(weights, epoch=epoch, first_loss=first_loss, last_loss=last_loss)
        return {  # read once, after the pre-training
            "bc/loss_first": first_loss.item() if first_loss is not None else float("nan"),
            "bc/loss": last_loss.item() if last_loss is not None else float("nan"),
        }

    # ----- adversarial model training ----------------------------------------------------------
    def adversarial_loss(self, obs: Tensor, sl: Batch) -> tuple[Tensor, Tensor, dict]:
        """One adversarial step: ``(loss, next_obs, info)``; next_obs continues the rollout."""
        cfg, dyn, sac = self.cfg, self.dynamics, self.sac
        with torch.no_grad():
            act, _ = sac.actor.sample(obs)
        mean, logvar = dyn.predict(obs, act)  # [M, B, o + 1], differentiable
        std = torch.exp(0.5 * logvar)
        with torch.no_grad():
            rows = torch.arange(len(obs), device=self.device)
            pick = dyn.elites[
                torch.randint(len(dyn.elites), (len(obs),), generator=dyn.generator, device=self.device)
            ]
            sample = mean[pick, rows] + std[pick, rows] * torch.randn(
                len(obs), dyn.out_dim, generator=dyn.generator, device=self.device
            )
            next_obs, rew = sample[:, :-1], sample[:, -1:]
            done = dyn.termination_fn(obs, act, next_obs).reshape(-1, 1).float()
            next_act, next_logp = sac.actor.sample(next_obs, deterministic=True)
            next_q = sac.critic(next_obs, next_act).min(0).values
            if cfg.include_ent_in_adv:
                next_q = next_q - sac.alpha * next_logp
            value = rew + (1.0 - done) * cfg.gamma * next_q
            adv = normalised_advantage(value, sac.critic(obs, act).min(0).values)
        log_prob = mixture_log_prob(mean[dyn.elites], std[dyn.elites], sample).unsqueeze(-1)
        adv_loss = (log_prob * adv).mean()
        sl_target = torch.cat([sl["next_obs"] - sl["obs"], sl["rew"]], dim=-1)
        sl_loss = dyn.loss(sl["obs"], sl["act"], sl_target)
        info = {
            "adv/adv_loss": adv_loss.detach(),
            "adv/sl_loss": sl_loss.detach(),
            "adv/log_prob": log_prob.mean().detach(),
        }
        return cfg.adv_weight * adv_loss + sl_loss, next_obs, info

    def update_dynamics_adversarially(self) -> dict:
        cfg = self.cfg
        totals: dict[str, Tensor] = {}
        steps = 0
        while steps < cfg.adv_train_steps:
            obs = self.real.sample(cfg.adv_batch_size, self.batch_generator)["obs"]
            for _ in range(cfg.rollout_length):
                loss, obs, info = self.adversarial_loss(
                    obs, self.real.sample(cfg.adv_batch_size, self.batch_generator)
                )
                self.adv_optim.zero_grad(set_to_none=True)
                loss.backward()
                self.adv_optim.step()
                for k, v in info.items():  # float64 on the device: the sums of Python floats they were
                    totals[k] = totals.get(k, 0.0) + v.double()
                steps += 1
                if steps >= cfg.adv_train_steps:
                    break
        return {k: v / steps for k, v in totals.items()}

    def learn(self, batch: Batch) -> dict:
        info = self.sac.update(batch)
        self.num_learn_steps += 1
        if self.cfg.adv_update_freq > 0 and self.num_learn_steps % self.cfg.adv_update_freq == 0:
            info.update(self.update_dynamics_adversarially())
        return info


register(
    AlgorithmSpec(
        name="rambo",
        config_cls=RAMBOConfig,
        factory=RAMBO,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "rambo",
        description="RAMBO: SAC on rollouts of an ensemble trained adversarially against the policy's value",
        paper="Rigter, Lacerda & Hawes, RAMBO-RL: Robust Adversarial Model-Based Offline RL, NeurIPS 2022",
        module=__name__,
    )
)
