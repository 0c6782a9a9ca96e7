"""Probabilistic ensemble dynamics model shared by the model-based baselines (MOPO, MOBILE, RAMBO,
COMBO, CBOP).

The design is MBPO's, with the defaults of OfflineRL-Kit (yihaosun1124/OfflineRL-Kit,
``offlinerlkit/modules/dynamics_module.py``, ``offlinerlkit/dynamics/ensemble_dynamics.py`` and the
``run_example/run_*.py`` argument defaults); the ADMPO paper only says "MBPO-style":

* 7 members, 5 elites; 4 hidden layers of 200 Swish units; per-layer weight decay
  (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) on the weights; Adam with lr 1e-3; batch 256.
* Input ``[obs, act]`` standardised with the mean/std of the training split (std < 1e-12 -> 1).
* Each member outputs a diagonal Gaussian over ``[next_obs - obs, reward]``. The log-variance is
  soft-clamped between learnable bounds (max initialised at 0.5, min at -10) that get a 0.01 penalty
  ``0.01 * (sum(max_logvar) - sum(min_logvar))``.
* Loss: per member the mean over batch and dims of ``(mean - y)^2 exp(-logvar) + logvar``, summed
  over members, plus weight decay and the bound penalty.
* Training: a random holdout of ``min(int(0.2 n), 1000)`` transitions; every member trains on its own
  bootstrap of the rest, reshuffled each epoch. After each epoch a member whose holdout MSE improved
  by more than 1% (relative) keeps a snapshot of its weights; training stops after 5 epochs without any
  improvement (or at ``max_epochs`` / ``max_steps``, the budget knobs). The snapshots are restored and
  the 5 members with the lowest holdout MSE become the elites.
* A model step samples every member's Gaussian and, per transition, picks one elite at random.

All members are evaluated in one batched matmul per layer (:class:`benchmark.rl.nets.EnsembleMLP`).
Weights are initialised from a normal with std ``1 / (2 sqrt(in))`` truncated at two standard
deviations and zero biases (MBPO's TensorFlow initialiser). OfflineRL-Kit calls
``torch.nn.init.trunc_normal_`` with its default bounds of +-2 in absolute terms
(``offlinerlkit/nets/ensemble_linear.py:23``), i.e. effectively untruncated for these small stds; the
difference is in initialisation noise only.

Rollout termination uses the reference's functions (``termination``, default ``offlinerlkit``: OfflineRL-Kit's
and MOBILE's, whose walker2d also requires every ``|s_i| < 100``; ``admpo``: the ADMPO/CBOP ones), see
:mod:`benchmark.rl.termination`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.progress import Progress
from benchmark.rl.dataset import OfflineDataset
from benchmark.rl.model_based import ModelBasedConfig
from benchmark.rl.nets import EnsembleMLP
from benchmark.rl.termination import TERMINATION_SOURCES, get_termination_fn
from benchmark.rl.trainers import read_once

Tensor = torch.Tensor


@dataclass
class EnsembleDynamicsConfig:
    """Ensemble architecture and training (defaults: OfflineRL-Kit, see module docstring)."""

    members: int = 7
    elites: int = 5
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    lr: float = 1e-3
    batch_size: int = 256
    holdout_fraction: float = 0.2
    max_holdout: int = 1000
    max_epochs: int | None = None  # None: stop by early stopping only (OfflineRL-Kit MOPO/RAMBO)
    max_steps: int | None = None  # cap on gradient steps in total (budgets); None: no cap
    max_epochs_since_update: int = 5
    improvement_threshold: float = 0.01  # relative holdout-MSE improvement that counts
    logvar_loss_coef: float = 0.01
    max_logvar_init: float = 0.5
    min_logvar_init: float = -10.0
    termination: str = "offlinerlkit"  # whose termination functions the rollouts use

    def validate(self) -> None:
        if self.termination not in TERMINATION_SOURCES:
            raise ValueError(
                f"dynamics: termination must be one of {TERMINATION_SOURCES}, got {self.termination!r}"
            )
        if not 0 < self.elites <= self.members:
            raise ValueError(
                f"dynamics: need 0 < elites <= members, got elites={self.elites}, members={self.members}"
            )
        if len(self.weight_decays) != len(self.hidden) + 1:
            raise ValueError(
                f"dynamics: weight_decays needs {len(self.hidden) + 1} entries (one per layer), "
                f"got {len(self.weight_decays)}"
            )


@dataclass
class EnsembleDynamicsFields:
    """The ensemble's fields, flat (``dynamics_<field>``) so a YAML or ``--set dynamics_max_epochs=30`` can
    set them; :meth:`dynamics_config` gathers them. Mixed into offline and online model-based configs."""

    dynamics_members: int = 7
    dynamics_elites: int = 5
    dynamics_hidden: tuple[int, ...] = (200, 200, 200, 200)
    dynamics_weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    dynamics_lr: float = 1e-3
    dynamics_batch_size: int = 256
    dynamics_holdout_fraction: float = 0.2
    dynamics_max_holdout: int = 1000
    dynamics_max_epochs: int | None = None
    dynamics_max_steps: int | None = None
    dynamics_max_epochs_since_update: int = 5
    dynamics_improvement_threshold: float = 0.01
    dynamics_logvar_loss_coef: float = 0.01
    dynamics_termination: str = "offlinerlkit"  # OfflineRL-Kit/MOBILE termination functions

    def dynamics_config(self) -> EnsembleDynamicsConfig:
        names = {f.name for f in fields(EnsembleDynamicsConfig)}
        values = {n: getattr(self, f"dynamics_{n}") for n in names if hasattr(self, f"dynamics_{n}")}
        return EnsembleDynamicsConfig(**values)


@dataclass
class EnsembleModelBasedConfig(ModelBasedConfig, EnsembleDynamicsFields):
    """:class:`ModelBasedConfig` (offline) plus the ensemble's fields."""

    # budgets bound the dynamics training (sizes only): smoke a few hundred steps, short a few thousand
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"dynamics_max_epochs": 5, "dynamics_max_steps": 200},
        "short": {"dynamics_max_epochs": 100, "dynamics_max_steps": 4000},
    }


def soft_clamp(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Differentiable clamp of ``x`` into ``(low, high)`` with softplus (MBPO/PETS; the ensemble's and the
    any-step model's log-variance): first ``high - softplus(high - x)``, then ``low + softplus(x - low)``,
    the ADMPO code's order."""
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


class EnsembleDynamics(nn.Module):
    """Gaussian ensemble over ``[delta_obs, reward]``.

    * ``forward(obs, act) -> (mean, logvar)``: raw outputs ``[members, B, obs_dim + 1]`` (delta, reward).
    * ``predict(obs, act) -> (mean, logvar)``: the same with ``obs`` added, i.e. the mean is
      ``[next_obs, reward]`` (reward in the last column).
    * ``step(obs, act, generator) -> (next_obs, reward [B,1], terminal [B,1] bool, info)``.
    * ``sample_next_obs(obs, act, num_samples, generator) -> [num_samples, elites, B, obs_dim]``.
    * ``fit(dataset) -> dict``: holdout early stopping and elite selection.
    * ``predict_mean`` / ``sample`` from a history: the :class:`benchmark.rl.dynamics_protocol.DynamicsModel`
      protocol (reads the last pair).
    """

    # a benchmark.rl.checkpoint.LoopCheckpoint for the next fit (analysis stages set it); a class default,
    # so models pickled before it existed load too
    checkpoint: Any = None

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: EnsembleDynamicsConfig | None = None,
        env_key: str | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ):
        super().__init__()
        self.cfg = cfg = cfg or EnsembleDynamicsConfig()
        cfg.validate()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.out_dim = obs_dim + 1
        self.device = torch.device(device)
        self.net = EnsembleMLP(
            cfg.members, obs_dim + act_dim, 2 * self.out_dim, cfg.hidden, nn.SiLU, cfg.weight_decays
        )
        init_gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for layer in self.net.layers:
                std = 1.0 / (2.0 * math.sqrt(layer.in_dim))
                nn.init.trunc_normal_(layer.weight, 0.0, std, -2 * std, 2 * std, generator=init_gen)
                layer.bias.zero_()
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), cfg.max_logvar_init))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), cfg.min_logvar_init))
        self.register_buffer("input_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("input_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("elites", torch.arange(cfg.elites))
        self.termination_fn = get_termination_fn(env_key, cfg.termination) if env_key is not None else None
        self.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed) + 1)
        self.optim = torch.optim.Adam(self.parameters(), lr=cfg.lr)
        self.history: list[dict[str, float]] = []  # one row per training epoch

    # ----- model --------------------------------------------------------------------------------
    def forward(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        """``obs [B, o]`` (or ``[members, B, o]``) -> mean, logvar ``[members, B, o + 1]`` (delta, reward)."""
        x = (torch.cat([obs, act], dim=-1) - self.input_mean) / self.input_std
        mean, logvar = self.net(x).chunk(2, dim=-1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def predict(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``[next_obs, reward]`` and log-variance, both ``[members, B, obs_dim + 1]``."""
        mean, logvar = self(obs, act)
        return torch.cat([mean[..., :-1] + obs, mean[..., -1:]], dim=-1), logvar

    def loss(self, obs: Tensor, act: Tensor, target: Tensor) -> Tensor:
        """Gaussian NLL (up to constants) summed over members; ``target [members, B, o + 1]``."""
        mean, logvar = self(obs, act)
        nll = ((mean - target) ** 2 * torch.exp(-logvar)).mean(dim=(1, 2)) + logvar.mean(dim=(1, 2))
        bounds = self.cfg.logvar_loss_coef * (self.max_logvar.sum() - self.min_logvar.sum())
        return nll.sum() + self.net.decay_loss() + bounds

    def train_step(self, obs: Tensor, act: Tensor, target: Tensor) -> Tensor:
        """One Adam step on per-member batches ``[members, B, ...]``; the loss stays on the device."""
        loss = self.loss(obs, act, target)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return loss.detach()

    @torch.no_grad()
    def holdout_mse(self, obs: Tensor, act: Tensor, target: Tensor) -> Tensor:
        """Per-member MSE of the mean on ``[delta, reward]`` targets ``[B, o + 1]`` -> ``[members]``."""
        mean, _ = self(obs, act)
        return ((mean - target) ** 2).mean(dim=(1, 2))

    # ----- training -----------------------------------------------------------------------------
    def fit_normalizer(self, inputs: Tensor) -> None:
        std = inputs.std(dim=0, unbiased=False)
        self.input_mean.copy_(inputs.mean(dim=0))
        self.input_std.copy_(torch.where(std < 1e-12, torch.ones_like(std), std))

    def fit(self, dataset: OfflineDataset) -> dict[str, float]:
        """Train with holdout early stopping and choose the elites; returns diagnostics.

        ``self.history`` gets one row per epoch: ``epoch, train_loss, holdout_mse`` (elite mean).
        """
        return self.fit_arrays(
            dataset.observations, dataset.actions, dataset.rewards.reshape(-1, 1), dataset.next_observations
        )

    def fit_arrays(self, obs, act, rew, next_obs) -> dict[str, float]:
        """Forward model: inputs ``(s, a)``, targets ``(s' - s, r)``."""
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)
        obs, act, rew, next_obs = t(obs), t(act), t(rew).reshape(-1, 1), t(next_obs)
        return self.fit_targets(obs, act, torch.cat([next_obs - obs, rew], dim=-1))

    def fit_targets(self, obs: Tensor, act: Tensor, target: Tensor) -> dict[str, float]:
        """Train on inputs ``(obs, act)`` and raw targets ``[B, obs_dim + 1]`` (BMPO's backward model
        trains the same class on ``(s', a) -> (s' - s, r)``)."""
        cfg, dev, gen = self.cfg, self.device, self.generator
        n = len(obs)
        holdout_size = min(int(n * cfg.holdout_fraction), cfg.max_holdout)
        train_size = n - holdout_size
        if train_size < 1 or holdout_size < 1:
            raise ValueError(f"dynamics: need at least 2 transitions to train with a holdout, got {n}")
        perm = torch.randperm(n, generator=gen, device=dev)
        tr, ho = perm[:train_size], perm[train_size:]
        self.fit_normalizer(torch.cat([obs[tr], act[tr]], dim=-1))
        members = cfg.members
        # each member trains on its own bootstrap of the training split; rows reshuffled every epoch
        boot = tr[torch.randint(train_size, (members, train_size), generator=gen, device=dev)]
        best = torch.full((members,), float("inf"), device=dev)
        saved = [p.detach().clone() for p in self.net.parameters()]
        since_update, epoch, steps = 0, 0, 0
        initial_mse = None
        self.history = []
        # a LoopCheckpoint (analysis stages): the loop resumes mid-training after a kill, to the same model;
        # the split and normaliser above are drawn again from the freshly seeded generator, then the saved
        # state (the generator's included) replaces everything the epochs have changed
        checkpoint, self.checkpoint = self.checkpoint, None  # a fitted model keeps no handle on its file
        if checkpoint is not None:
            checkpoint.track(gen)
            resumed = checkpoint.load()
            if resumed is not None:
                self.load_state_dict(resumed["model"])
                self.optim.load_state_dict(resumed["optim"])
                boot, best, saved = resumed["boot"], resumed["best"], resumed["saved"]
                since_update, epoch, steps = resumed["since_update"], resumed["epoch"], resumed["steps"]
                initial_mse, self.history = resumed["initial_mse"], resumed["history"]
        per_epoch = -(-train_size // cfg.batch_size)
        caps = [c for c in (cfg.max_steps, cfg.max_epochs and cfg.max_epochs * per_epoch) if c]
        bar = Progress("ensemble model training", total=min(caps) if caps else None, unit="step")

        def finished() -> bool:
            """The loop ends after the epoch it has just finished; also asked of a resumed state, so a file
            saved at the last epoch resumes to the finished model, not one epoch more."""
            return epoch > 0 and (
                since_update >= cfg.max_epochs_since_update
                or (cfg.max_epochs is not None and epoch >= cfg.max_epochs)
                or (cfg.max_steps is not None and steps >= cfg.max_steps)
            )

        done = finished()
        while not done:
            epoch += 1
            losses = []
            for start in range(0, train_size, cfg.batch_size):
                idx = boot[:, start : start + cfg.batch_size]
                losses.append(self.train_step(obs[idx], act[idx], target[idx]))
                steps += 1
                bar.update(1)
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break
            mse = self.holdout_mse(obs[ho], act[ho], target[ho])
            if initial_mse is None:
                initial_mse = mse.sort().values[: cfg.elites].mean().item()
            shuffle = torch.rand(boot.shape, generator=gen, device=dev).argsort(dim=1)
            boot = boot.gather(1, shuffle)
            improved = (best - mse) / best > cfg.improvement_threshold
            improved |= torch.isinf(best) & torch.isfinite(mse)
            if improved.any():
                best = torch.where(improved, mse, best)
                with torch.no_grad():
                    for s, p in zip(saved, self.net.parameters()):
                        s[improved] = p[improved]
                since_update = 0
            else:
                since_update += 1
            elite_mse = mse.sort().values[: cfg.elites].mean().item()
            losses = read_once(torch.stack(losses))  # the epoch's losses: one read
            self.history.append(
                {"epoch": epoch, "train_loss": float(np.mean(losses)), "holdout_mse": elite_mse}
            )
            bar.update(0, epoch=epoch, holdout_mse=elite_mse)
            done = finished()
            # the last epoch is always saved: a process killed between the loop's end and its caller's next
            # checkpoint resumes without training again
            if checkpoint is not None and (checkpoint.due() or done):
                checkpoint.save({"model": self.state_dict(), "optim": self.optim.state_dict(), "boot": boot,
                                 "best": best, "saved": saved, "since_update": since_update, "epoch": epoch,
                                 "steps": steps, "initial_mse": initial_mse, "history": self.history})
        bar.close()
        with torch.no_grad():
            for s, p in zip(saved, self.net.parameters()):
                p.copy_(s)
        self.elites.copy_(best.argsort()[: cfg.elites])
        final = self.holdout_mse(obs[ho], act[ho], target[ho])
        return {
            "dynamics/epochs": epoch,
            "dynamics/steps": steps,
            "dynamics/holdout_mse_first_epoch": initial_mse,
            "dynamics/holdout_mse": final[self.elites].mean().item(),
            "dynamics/train_loss": self.history[-1]["train_loss"],
        }

    # ----- sampling -----------------------------------------------------------------------------
    def _gen(self, generator: torch.Generator | None) -> torch.Generator:
        """The caller's generator if it lives on the model's device, else the model's own."""
        return generator if generator is not None and generator.device == self.device else self.generator

    def _noise(self, shape, generator: torch.Generator | None) -> Tensor:
        return torch.randn(shape, generator=self._gen(generator), device=self.device)

    @torch.no_grad()
    def step(
        self, obs: Tensor, act: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """One model step for a batch: every member's Gaussian is sampled, then one random elite
        per transition is kept (OfflineRL-Kit ``EnsembleDynamics.step``).

        Returns ``next_obs [B, o]``, ``reward [B, 1]`` (no penalty), ``terminal [B, 1]`` (bool, from
        the true termination function) and ``info`` with ``mean``/``std`` of every member
        ``[members, B, o + 1]`` (next_obs, reward) and the chosen member per transition.
        """
        if self.termination_fn is None:
            raise RuntimeError("EnsembleDynamics.step needs env_key (the termination function)")
        mean, logvar = self.predict(obs, act)
        std = torch.exp(0.5 * logvar)
        sample, pick = self.sample_random_elite(mean, std, generator)
        next_obs, reward = sample[:, :-1], sample[:, -1:]
        terminal = self.termination_fn(obs, act, next_obs).reshape(-1, 1)
        return next_obs, reward, terminal, {"mean": mean, "std": std, "member": pick}

    def sample_random_elite(
        self, mean: Tensor, std: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Per transition one elite drawn uniformly (MBPO's ``random_inds``) and a Gaussian draw from it:
        ``mean, std [members, B, d] -> (sample [B, d], member [B])``."""
        batch = mean.shape[1]
        choice = torch.randint(len(self.elites), (batch,), generator=self._gen(generator), device=self.device)
        pick = self.elites[choice]
        rows = torch.arange(batch, device=self.device)
        sample = mean[pick, rows] + std[pick, rows] * self._noise((batch, mean.shape[-1]), generator)
        return sample, pick

    @torch.no_grad()
    def sample_next_obs(
        self, obs: Tensor, act: Tensor, num_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """``num_samples`` draws from every elite: ``[num_samples, elites, B, obs_dim]`` (MOBILE)."""
        mean, logvar = self.predict(obs, act)
        mean, std = mean[self.elites, :, :-1], torch.exp(0.5 * logvar[self.elites, :, :-1])
        return mean + std * self._noise((num_samples, *mean.shape), generator)

    # ----- the DynamicsModel protocol (benchmark/rl/dynamics_protocol.py): the last (s, a) pair -------
    @torch.no_grad()
    def predict_mean(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator | None = None
                     ) -> Tensor:
        """The mean next state of one elite drawn per row (MBPO's rule): ``[B, obs_dim]``."""
        mean, _ = self.predict(obs_hist[:, -1], act_hist[:, -1])
        batch = mean.shape[1]
        pick = self.elites[torch.randint(len(self.elites), (batch,), generator=generator)]
        return mean[pick.to(mean.device), torch.arange(batch, device=mean.device), :-1]

    @torch.no_grad()
    def sample(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        """A Gaussian draw from one elite per row (:meth:`step` without termination)."""
        mean, logvar = self.predict(obs_hist[:, -1], act_hist[:, -1])
        sample, _ = self.sample_random_elite(mean, torch.exp(0.5 * logvar), generator)
        return sample[:, :-1], sample[:, -1:]


def penalty_max_std_norm(std: Tensor) -> Tensor:
    """MOPO's aleatoric penalty: ``max_i ||sigma_i(s, a)||_2`` over all members (dims: next_obs and
    reward, as OfflineRL-Kit). ``std [members, B, d] -> [B, 1]``."""
    return torch.linalg.vector_norm(std, dim=-1).amax(dim=0).unsqueeze(-1)


@torch.no_grad()
def policy_rollout(
    dynamics: EnsembleDynamics,
    policy: Callable[[Tensor], Tensor],
    init_obs: Tensor,
    horizon: int,
    reward_fn: Callable[[Tensor, dict[str, Tensor]], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Branched rollouts of ``horizon`` model steps from ``init_obs`` (MBPO/MOPO).

    ``policy(obs) -> act`` acts (stochastically for MOPO-style training); ``reward_fn(reward, info)``
    may penalise the model reward. A rollout stops at its first true-termination transition, which is
    stored with ``done = 1``. Returns transitions ``obs, act, rew, next_obs, done`` and diagnostics.
    """
    out: dict[str, list[Tensor]] = {k: [] for k in ("obs", "act", "rew", "next_obs", "done")}
    obs = init_obs
    raw_rewards, penalised, terminated = [], [], 0
    for _ in range(horizon):
        act = policy(obs)
        next_obs, reward, terminal, info = dynamics.step(obs, act, generator)
        raw_rewards.append(reward)
        if reward_fn is not None:
            reward = reward_fn(reward, info)
        penalised.append(reward)
        for k, v in zip(out, (obs, act, reward, next_obs, terminal.float())):
            out[k].append(v)
        ended = int(terminal.sum())  # the one read of a model step: which rollouts go on sets the shapes
        terminated += ended
        if ended == len(obs):
            break
        obs = next_obs[~terminal.squeeze(-1)]
    transitions = {k: torch.cat(v, dim=0) for k, v in out.items()}
    n = len(transitions["obs"])
    means = torch.stack([torch.cat(raw_rewards).mean(), torch.cat(penalised).mean()])
    raw_reward_mean, reward_mean = read_once(means)  # one read per rollout
    info = {
        "num_transitions": float(n),
        "raw_reward_mean": raw_reward_mean,
        "reward_mean": reward_mean,
        "terminated_fraction": terminated / max(len(init_obs), 1),
    }
    return transitions, info
