"""The online contract: a real transition, the real env buffer and :class:`OnlineAlgorithm` (what
:func:`benchmark.rl.online.trainers.train_online` calls), built from the one
:class:`benchmark.rl.algorithm.Context` (its ``dataset`` is None online)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.data.dataset import OfflineDataset
from benchmark.rl.algorithm import Context
from benchmark.rl.buffers import Batch, TransitionBuffer
from benchmark.rl.online.configs import OnlineTrainConfig
from benchmark.rl.sac import SAC


# ----- transitions, real buffer ---------------------------------------------------------------------
@dataclass
class Transition:
    obs: np.ndarray
    act: np.ndarray
    rew: float
    next_obs: np.ndarray
    terminated: bool  # true termination: no bootstrap
    truncated: bool  # time limit: the episode ends but s' is not terminal


class EnvReplay:
    """The real env buffer: a device :class:`TransitionBuffer` plus the timeout flags that
    k-step-window models need to keep windows inside one episode (the official ``seq-sample`` buffer)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu"):
        self.buffer = TransitionBuffer(capacity, obs_dim, act_dim, device)
        self.timeouts = np.zeros(capacity, dtype=bool)
        self.total_added = 0

    def __len__(self) -> int:
        return len(self.buffer)

    def add(self, t: Transition) -> None:
        slot = self.buffer.ptr
        self.buffer.add(
            obs=np.asarray(t.obs, dtype=np.float32)[None],
            act=np.asarray(t.act, dtype=np.float32)[None],
            rew=np.array([[t.rew]], dtype=np.float32),
            next_obs=np.asarray(t.next_obs, dtype=np.float32)[None],
            done=np.array([[float(t.terminated)]], dtype=np.float32),
        )
        self.timeouts[slot] = bool(t.truncated) and not bool(t.terminated)
        self.total_added += 1

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        return self.buffer.sample(batch_size, generator)

    def sample_recent(self, batch_size: int, last_n: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform draws from the newest ``last_n`` transitions (softlearning's ``last_n_random_batch``:
        indices ``randint(ptr - min(size, last_n), ptr) % capacity``)."""
        b = self.buffer
        if b.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        window = min(b.size, last_n)
        offsets = torch.randint(0, window, (batch_size,), generator=generator, device="cpu")
        idx = ((b.ptr - window + offsets) % b.capacity).to(b.device)
        return {k: v[idx] for k, v in b.data.items()}

    def to_dataset(self, name: str = "online-replay", env_key: str = "") -> OfflineDataset:
        """Every stored transition, oldest first, as an :class:`OfflineDataset` (the episode in
        progress ends at the last row; ``OfflineDataset.episode_ends`` marks it)."""
        data = self.buffer.all()
        b = self.buffer
        order = np.arange(b.size) if b.size < b.capacity else (np.arange(b.capacity) + b.ptr) % b.capacity
        return OfflineDataset(
            observations=data["obs"].cpu().numpy(),
            actions=data["act"].cpu().numpy(),
            rewards=data["rew"].reshape(-1).cpu().numpy(),
            next_observations=data["next_obs"].cpu().numpy(),
            terminals=data["done"].reshape(-1).cpu().numpy() > 0.5,
            timeouts=self.timeouts[order],
            name=name,
            env_key=env_key,
        )


# ----- algorithm contracts ------------------------------------------------------------------------
class OnlineAlgorithm:
    """What :func:`train_online` calls. Subclasses implement ``act`` and ``learn``.

    * ``setup() -> dict``: one-off work before the warm-up.
    * ``before_step(it) -> dict``: hooks run before env step ``it`` (model training and rollouts).
    * ``act(obs, deterministic) -> action``: numpy in, numpy out.
    * ``observe(transition)``: store a real transition (warm-up ones included).
    * ``next_batch(it) -> batch`` and ``learn(batch) -> dict``: one gradient step.
    """

    def __init__(self, cfg: OnlineTrainConfig, ctx: Context):
        self.cfg = cfg
        self.ctx = ctx
        self.device = ctx.device
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        self.real = EnvReplay(cfg.buffer_size, ctx.obs_dim, ctx.act_dim, ctx.device)

    def setup(self) -> dict:
        return {}

    def before_step(self, it: int) -> dict:
        return {}

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        raise NotImplementedError

    def observe(self, transition: Transition) -> None:
        self.real.add(transition)

    def next_batch(self, it: int) -> Batch:
        return self.real.sample(self.cfg.batch_size, self.generator)

    def learn(self, batch: Batch) -> dict:
        raise NotImplementedError




class SACAgent:
    """Mixin (listed before the base class) for learners whose policy is one :class:`benchmark.rl.sac.SAC`
    in ``self.sac``: acting, one update per ``learn``, and the stochastic policy for model rollouts
    (SAC, ADMPO-ON and MBPO sample their rollout actions, as their official code)."""

    sac: SAC

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.sac.act(obs, deterministic)

    def learn(self, batch: Batch) -> dict:
        return self.sac.update(batch)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.sac.actor.sample(obs)[0]
