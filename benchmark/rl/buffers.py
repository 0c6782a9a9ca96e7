"""Replay buffers and samplers shared by every algorithm.

* :class:`TransitionBuffer`: a FIFO ring of transitions kept as tensors on one device (real data,
  model rollouts); ``sample`` is O(batch).
* :class:`WindowSampler`: k-step windows that never cross an episode end, for any k in 1..m. The
  per-index distance to the episode end is computed once; valid start indices per (k, end) are
  cached, so a call costs O(batch) whatever the dataset size.
* :func:`tail_holdout_split`: the holdout rule the dynamics trainers share.
* :class:`EnvReplay` of :class:`Transition`: the online real env buffer, with the timeout flags k-step
  windows need.
* :func:`mix`: the real/model batch of the model-based loops (offline and online), labelled by source.
* :func:`index_generator`: the generator that draws batch indices on the data's device.

Indices are drawn on the device of the generator passed in (:func:`draw_indices`), so a buffer on a GPU
sampled with a generator on that GPU never waits for a host-to-device copy of its indices.

Batches are dicts ``obs, act, rew, next_obs, done`` with ``rew``/``done`` shaped ``[B, 1]``;
``done`` is the true termination (no bootstrap), never a timeout.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.rl.dataset import OfflineDataset

Batch = dict[str, torch.Tensor]


_LEAVE_CONTENTS_OUT = False


@contextlib.contextmanager
def contents_left_out():
    """Pickle buffers empty within the block (used to write policy files)."""
    global _LEAVE_CONTENTS_OUT
    _LEAVE_CONTENTS_OUT = True
    try:
        yield
    finally:
        _LEAVE_CONTENTS_OUT = False


def index_generator(generator: torch.Generator, device: str | torch.device) -> torch.Generator:
    """The generator that draws indices into data on ``device``: on the CPU ``generator`` itself (the same
    object, so CPU runs keep one random stream, exactly as before devices were considered), on any other
    device a generator there seeded with ``generator``'s seed."""
    device = torch.device(device)
    if device.type == "cpu":
        return generator
    return torch.Generator(device=device).manual_seed(generator.initial_seed())


def draw_indices(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` uniform indices in ``[0, high)`` drawn on the generator's device (``device`` without one)."""
    where = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=where)


class MixedBatch(dict):
    """A batch of ``n_real`` real rows followed by model rows. It is the concatenated batch (a dict of
    tensors, as every learner reads it) and says which rows came from where, so a learner that treats
    model rows differently (MOBILE's penalty, COMBO's push-down states) reads the split instead of
    re-deriving it."""

    def __init__(self, data: Batch, n_real: int):
        super().__init__(data)
        self.n_real = int(n_real)

    @property
    def real_rows(self) -> slice:
        return slice(0, self.n_real)

    @property
    def model_rows(self) -> slice:
        return slice(self.n_real, None)

    @property
    def n_model(self) -> int:
        return len(self["obs"]) - self.n_real


def mix(real, model, batch_size: int, real_ratio: float, generator: torch.Generator) -> MixedBatch:
    """``int(batch_size * real_ratio)`` uniform draws from ``real`` and the rest from ``model`` (drawn in
    that order from ``generator``; OfflineRL-Kit's and the ADMPO code's layout); all ``batch_size`` from
    ``real`` while ``model`` is missing or empty. ``real`` and ``model`` are anything with
    ``sample(n, generator)`` and ``len``."""
    if model is None or len(model) == 0:
        return MixedBatch(real.sample(batch_size, generator), batch_size)
    n_real = int(batch_size * real_ratio)
    real_part = real.sample(n_real, generator)
    model_part = model.sample(batch_size - n_real, generator)
    return MixedBatch({k: torch.cat([real_part[k], model_part[k]], dim=0) for k in real_part}, n_real)


class TransitionBuffer:
    """Fixed-capacity FIFO of transitions stored as device tensors."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu"):
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.capacity, self.device = int(capacity), torch.device(device)
        f = dict(dtype=torch.float32, device=self.device)
        self.data: Batch = {
            "obs": torch.zeros(self.capacity, obs_dim, **f),
            "act": torch.zeros(self.capacity, act_dim, **f),
            "rew": torch.zeros(self.capacity, 1, **f),
            "next_obs": torch.zeros(self.capacity, obs_dim, **f),
            "done": torch.zeros(self.capacity, 1, **f),
        }
        self.ptr = 0
        self.size = 0

    @classmethod
    def from_dataset(cls, ds: OfflineDataset, device: str | torch.device = "cpu") -> TransitionBuffer:
        buf = cls(len(ds), ds.obs_dim, ds.act_dim, device)
        buf.add(
            obs=ds.observations,
            act=ds.actions,
            rew=ds.rewards,
            next_obs=ds.next_observations,
            done=ds.terminals.astype(np.float32),
        )
        return buf

    def __len__(self) -> int:
        return self.size

    def __getstate__(self) -> dict:
        """Pickle only the rows ever written (storage order kept, so sampling resumes identically); none
        at all inside :func:`contents_left_out` (a policy file needs the networks, not the data)."""
        state = self.__dict__.copy()
        rows = 0 if _LEAVE_CONTENTS_OUT else self.size
        state["data"] = {k: v[:rows].clone() for k, v in self.data.items()}
        if _LEAVE_CONTENTS_OUT:
            state["size"] = state["ptr"] = 0
        return state

    def __setstate__(self, state: dict) -> None:
        live = state.pop("data")
        self.__dict__.update(state)
        self.data = {}
        for k, v in live.items():
            full = torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype, device=v.device)
            full[: len(v)] = v
            self.data[k] = full

    def add(self, **batch) -> None:
        """Append a batch (numpy or torch, leading dim B); the oldest entries are overwritten."""
        tensors = {k: torch.as_tensor(v, dtype=torch.float32, device=self.device) for k, v in batch.items()}
        missing = set(self.data) - set(tensors)
        if missing:
            raise KeyError(f"TransitionBuffer.add is missing fields {sorted(missing)}")
        n = len(tensors["obs"])
        if n == 0:
            return
        if n > self.capacity:  # keep only the newest `capacity` rows
            tensors = {k: v[-self.capacity :] for k, v in tensors.items()}
            n = self.capacity
        idx = (torch.arange(n, device=self.device) + self.ptr) % self.capacity
        for k, v in tensors.items():
            self.data[k][idx] = v.reshape(n, -1)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def resize(self, capacity: int, storage_order: bool = False) -> None:
        """Change capacity keeping the newest transitions, re-laid oldest first (ADMPO-ON grows its model
        buffer). ``storage_order=True`` copies rows 0..size-1 as they lie instead (MBPO's and BMPO's
        ``_reallocate_model_pool``: a new pool gets ``return_all_samples()``), so once the old buffer
        had wrapped, later writes evict rows in storage order rather than the oldest."""
        if capacity == self.capacity:
            return
        kept = {k: v[: self.size] for k, v in self.data.items()} if storage_order else self.all()
        obs_dim, act_dim = self.data["obs"].shape[1], self.data["act"].shape[1]
        self.__init__(capacity, obs_dim, act_dim, self.device)
        self.add(**kept)

    def all(self) -> Batch:
        """Every stored transition, oldest first."""
        if self.size < self.capacity:
            return {k: v[: self.size] for k, v in self.data.items()}
        order = (torch.arange(self.capacity, device=self.device) + self.ptr) % self.capacity
        return {k: v[order] for k, v in self.data.items()}

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        idx = draw_indices(self.size, batch_size, generator, self.device)
        return {k: v[idx] for k, v in self.data.items()}


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
        offsets = draw_indices(window, batch_size, generator, b.device)
        idx = (b.ptr - window + offsets) % b.capacity
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


class WindowSampler:
    """Samples k consecutive transitions from one episode, as ``[B, k, ...]`` tensors."""

    def __init__(self, ds: OfflineDataset, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.n = len(ds)
        self.dist_to_end = ds.dist_to_end()
        f = dict(dtype=torch.float32, device=self.device)
        self.obs = torch.as_tensor(ds.observations, **f)
        self.act = torch.as_tensor(ds.actions, **f)
        self.rew = torch.as_tensor(ds.rewards, **f)
        self.next_obs = torch.as_tensor(ds.next_observations, **f)
        self.done = torch.as_tensor(ds.terminals, **f)
        self._starts: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def valid_starts(self, k: int, end: int | None = None,
                     device: str | torch.device = "cpu") -> torch.Tensor:
        """Start indices i < end whose k-window stays inside one episode (cached per (k, end, device))."""
        end = self.n if end is None else int(end)
        key = (int(k), end, torch.device(device))
        if key not in self._starts:
            if k < 1:
                raise ValueError(f"window length must be >= 1, got {k}")
            ok = np.flatnonzero(self.dist_to_end[:end] >= k - 1)
            if len(ok) == 0:
                raise ValueError(f"no episode of length >= {k} starts before index {end}")
            self._starts[key] = torch.as_tensor(ok, dtype=torch.long, device=device)
        return self._starts[key]

    def sample_starts(
        self, batch_size: int, k: int, end: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Window starts drawn on the generator's device (the CPU without one), returned there."""
        device = generator.device if generator is not None else torch.device("cpu")
        starts = self.valid_starts(k, end, device)
        return starts[draw_indices(len(starts), batch_size, generator, device)]

    def gather(self, starts: torch.Tensor, k: int) -> Batch:
        """Windows ``starts[b] .. starts[b]+k-1``: obs/act/next_obs ``[B, k, d]``, rew/done ``[B, k]``."""
        idx = starts.unsqueeze(1) + torch.arange(k, device=starts.device).unsqueeze(0)
        if idx.device != self.device:  # starts drawn elsewhere (a CPU generator for device data)
            idx = idx.to(self.device)
        return {
            "obs": self.obs[idx],
            "act": self.act[idx],
            "rew": self.rew[idx],
            "next_obs": self.next_obs[idx],
            "done": self.done[idx],
        }

    def sample(
        self, batch_size: int, k: int, end: int | None = None, generator: torch.Generator | None = None
    ) -> Batch:
        """``batch_size`` windows of length k starting before ``end`` (they may run past it)."""
        return self.gather(self.sample_starts(batch_size, k, end, generator), k)


def tail_holdout_split(n: int, holdout_fraction: float = 0.2, max_holdout: int = 1000) -> int:
    """ADMPO's rule: the holdout is the last ``min(int(fraction * n), max_holdout)`` indices.

    Returns ``train_size``: training windows start below it, holdout windows at or above it.
    """
    holdout = min(int(holdout_fraction * n), int(max_holdout))
    return n - holdout
