"""The online contract: :class:`OnlineAlgorithm` (what :func:`benchmark.rl.online.trainers.train_online`
calls), built from the one :class:`benchmark.rl.algorithm.Context` (its ``dataset`` is None online) and
storing real transitions in an :class:`benchmark.rl.buffers.EnvReplay`."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.rl.algorithm import Context, ResumableState
from benchmark.rl.buffers import Batch, EnvReplay, Transition, index_generator
from benchmark.rl.online.configs import OnlineTrainConfig
from benchmark.rl.sac import SAC


# ----- algorithm contracts ------------------------------------------------------------------------
class OnlineAlgorithm(ResumableState):
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
        # batch indices into the device replay: self.generator itself on the CPU, a twin on another device
        self.batch_generator = index_generator(self.generator, ctx.device)
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
        return self.real.sample(self.cfg.batch_size, self.batch_generator)

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
