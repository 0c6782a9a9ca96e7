"""The context every algorithm is built from, and the contract every offline algorithm fulfils (the online
one is :class:`benchmark.rl.online.OnlineAlgorithm`, built from the same context).

* ``setup() -> dict``: one-off work before policy learning (e.g. train a dynamics model).
* ``next_batch(step) -> batch``: the batch for gradient step ``step`` (real data by default; model-based
  algorithms mix in model rollouts, see :mod:`benchmark.rl.model_based`).
* ``learn(batch) -> dict``: one gradient step; returns scalar diagnostics.
* ``act(obs, deterministic) -> action``: numpy in, numpy out.
* ``end_epoch(epoch) -> dict``: per-epoch hooks (learning-rate schedules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from benchmark.rl.buffers import Batch, TransitionBuffer, index_generator
from benchmark.rl.dataset import OfflineDataset


@dataclass
class Context:
    """What an algorithm is built from besides its config: offline the dataset it learns from (None for
    online algorithms, which collect their own data), the task's env key, dims and action box, the device
    and the seed."""

    dataset: OfflineDataset | None
    env_key: str  # termination functions / scores
    obs_dim: int
    act_dim: int
    act_scale: float  # symmetric action box [-act_scale, act_scale]
    device: torch.device
    seed: int = 0
    progress: bool = False


class ResumableState:
    """Unpickling that also takes checkpoints written by older code. ``ADDED_ATTRIBUTES`` maps each
    attribute added since checkpoints were first written to the attribute an older checkpoint holds in its
    place (what the code then used in its stead), so a run resumed from such a checkpoint goes on exactly as
    it would have; without this, resuming fails and the hours before the checkpoint are lost."""

    # batch indices drawn on the data's device (issue 19): older code drew them from `generator`
    ADDED_ATTRIBUTES: ClassVar[dict[str, str]] = {"batch_generator": "generator"}

    def __setstate__(self, state: dict) -> None:
        for added, stood_in in self.ADDED_ATTRIBUTES.items():
            if added not in state and stood_in in state:
                state[added] = state[stood_in]
        self.__dict__.update(state)


class OfflineAlgorithm(ResumableState):
    """Base class with the default uniform real-data batch source.

    A checkpoint (:mod:`benchmark.rl.checkpoint`) pickles the algorithm whole except ``DATA_ATTRIBUTES``
    (the context and the device copies of the dataset), which :meth:`attach_data` rebuilds on resume."""

    DATA_ATTRIBUTES: ClassVar[tuple[str, ...]] = ("ctx", "real")
    # set by the trainer only while setup() runs (never pickled with a checkpoint): name -> a
    # benchmark.rl.checkpoint.LoopCheckpoint, or None when the run writes no checkpoints
    setup_loops: Callable[[str], Any] | None = None

    def __init__(self, cfg, ctx: Context):
        self.cfg = cfg
        self.ctx = ctx
        self.device = ctx.device
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        # batch indices into the device data: self.generator itself on the CPU, a twin on another device
        self.batch_generator = index_generator(self.generator, ctx.device)
        self.real = TransitionBuffer.from_dataset(ctx.dataset, ctx.device)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in self.DATA_ATTRIBUTES:
            state.pop(name, None)
        return state

    def attach_data(self, ctx: Context) -> None:
        """Give a resumed algorithm its dataset back (what ``__init__`` derived from it, exactly)."""
        self.ctx = ctx
        self.real = TransitionBuffer.from_dataset(ctx.dataset, ctx.device)

    def setup(self) -> dict:
        return {}

    def setup_loop(self, name: str):
        """A checkpoint for a training loop inside :meth:`setup` (a model trained to early stopping): pass it
        to the loop, which then resumes after a kill instead of starting again; None outside a checkpointed
        run."""
        return self.setup_loops(name) if self.setup_loops is not None else None

    def next_batch(self, step: int) -> Batch:
        return self.real.sample(self.cfg.batch_size, self.batch_generator)

    def learn(self, batch: Batch) -> dict:
        raise NotImplementedError

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> dict:
        return {}
