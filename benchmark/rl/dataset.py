"""The one in-memory format every offline algorithm reads: D4RL-style flat transition arrays, and its
episode-level slicing (:func:`split_episodes`, :func:`subset`, :func:`truncate`, :func:`segment_starts`), and
the synthetic Hopper-shaped data that speed and exactness checks run on (:func:`standing_hopper_data`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ARRAY_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def store_transition(arrays: dict, i: int, obs, action, reward, next_obs, terminal, timeout) -> None:
    """Write one transition into row ``i`` of preallocated :data:`ARRAY_FIELDS` arrays (the dataset
    builders and the behaviour-policy replay fill them step by step)."""
    for key, value in zip(ARRAY_FIELDS, (obs, action, reward, next_obs, terminal, timeout)):
        arrays[key][i] = value


class DatasetError(ValueError):
    """A dataset file or array is malformed; the message names the source and the problem."""


@dataclass
class OfflineDataset:
    """Flat transitions ``(s, a, r, s', terminal, timeout)`` in episode order.

    ``terminals`` marks true environment terminations (no bootstrap); ``timeouts`` marks episodes cut
    off without termination (time limit, end of file). ``obs[i+1]`` is never used as ``s'`` across
    an episode end: ``next_observations`` is always explicit.
    """

    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, act_dim] float32
    rewards: np.ndarray  # [N] float32
    next_observations: np.ndarray  # [N, obs_dim] float32
    terminals: np.ndarray  # [N] bool
    timeouts: np.ndarray  # [N] bool
    name: str = "dataset"  # task id or path, used in error messages
    env_key: str = ""  # key of the env family (termination functions, scores), e.g. "hopper"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        self.next_observations = np.asarray(self.next_observations, dtype=np.float32)
        self.terminals = np.asarray(self.terminals).reshape(-1).astype(bool)
        self.timeouts = np.asarray(self.timeouts).reshape(-1).astype(bool)
        self.validate()

    # ----- checks -------------------------------------------------------------------------------
    def validate(self, obs_dim: int | None = None, act_dim: int | None = None) -> None:
        n = len(self.observations)
        if n == 0:
            raise DatasetError(f"{self.name}: dataset is empty")
        for key in ARRAY_FIELDS:
            arr = getattr(self, key)
            if len(arr) != n:
                raise DatasetError(
                    f"{self.name}: field '{key}' has {len(arr)} rows, expected {n} (as 'observations')"
                )
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = int(np.argwhere(~np.isfinite(arr.reshape(n, -1)).all(axis=1))[0, 0])
                raise DatasetError(f"{self.name}: field '{key}' has NaN/inf values (first at row {bad})")
        if self.observations.ndim != 2 or self.next_observations.shape != self.observations.shape:
            raise DatasetError(
                f"{self.name}: 'observations' {self.observations.shape} and 'next_observations' "
                f"{self.next_observations.shape} must both be [N, obs_dim]"
            )
        if self.actions.ndim != 2:
            raise DatasetError(f"{self.name}: 'actions' must be [N, act_dim], got shape {self.actions.shape}")
        if obs_dim is not None and self.obs_dim != obs_dim:
            raise DatasetError(
                f"{self.name}: observations have dim {self.obs_dim}, the env expects {obs_dim}"
            )
        if act_dim is not None and self.act_dim != act_dim:
            raise DatasetError(f"{self.name}: actions have dim {self.act_dim}, the env expects {act_dim}")

    # ----- structure ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    @property
    def episode_ends(self) -> np.ndarray:
        """Bool ``[N]``: transition i is the last of its episode (terminal, timeout or end of data)."""
        ends = self.terminals | self.timeouts
        ends[-1] = True
        return ends

    def dist_to_end(self) -> np.ndarray:
        """Int ``[N]``: number of transitions after i in the same episode (0 at an episode's end).

        A k-step window starting at i stays inside one episode iff ``dist_to_end[i] >= k - 1``.
        """
        ends = self.episode_ends
        end_idx = np.flatnonzero(ends)
        # index of the episode end at or after i
        next_end = end_idx[np.searchsorted(end_idx, np.arange(len(self)))]
        return (next_end - np.arange(len(self))).astype(np.int64)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, in order."""
        ends = self.episode_ends
        episode_id = np.concatenate([[0], np.cumsum(ends[:-1])])
        return np.bincount(episode_id, weights=self.rewards.astype(np.float64))

    def summary(self) -> dict:
        rets = self.episode_returns()
        return {
            "name": self.name,
            "transitions": len(self),
            "episodes": len(rets),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "terminals": int(self.terminals.sum()),
            "return_mean": float(rets.mean()),
            "return_std": float(rets.std()),
            "return_min": float(rets.min()),
            "return_max": float(rets.max()),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ARRAY_FIELDS}


def standing_hopper_data(n: int, seed: int = 0) -> OfflineDataset:
    """``n`` synthetic Hopper-sized transitions (11-d states, 3-d actions, episodes of 1000 steps) around a
    standing hopper (torso height 1.25, so model rollouts rarely terminate), with small state changes and
    rewards near 1: for speed and exactness checks whose numbers do not depend on the values, without
    MuJoCo. The one home of such data (tests, profiling and GPU benchmark scripts)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(0.0, 0.05, (n, 11)).astype(np.float32)
    obs[:, 0] += 1.25
    return OfflineDataset(
        observations=obs,
        actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rewards=rng.normal(1.0, 0.1, n).astype(np.float32),
        next_observations=obs + rng.normal(0.0, 0.01, (n, 11)).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.arange(n) % 1000 == 999,
        env_key="hopper",
        name="synthetic-standing-hopper",
    )


# ----- episode-level slicing ------------------------------------------------------------------------


def episode_ids(ds: OfflineDataset) -> np.ndarray:
    """Episode index of every transition (episodes end at a terminal, a timeout or the end of data)."""
    ends = ds.episode_ends
    return np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)


def subset(ds: OfflineDataset, keep: np.ndarray, name: str) -> OfflineDataset:
    """The transitions where ``keep`` is True, in order; each kept episode's last kept transition is marked
    as an episode end (timeout unless terminal) so no window crosses the gap left by a dropped episode."""
    if not keep.any():
        raise ValueError(f"{ds.name}: empty subset {name!r}")
    ids = episode_ids(ds)[keep]
    arrays = {k: v[keep] for k, v in ds.arrays().items()}
    last = np.append(ids[1:] != ids[:-1], True)
    arrays["timeouts"] = arrays["timeouts"] | (last & ~arrays["terminals"])
    return OfflineDataset(**arrays, name=name, env_key=ds.env_key)


def split_episodes(ds: OfflineDataset, heldout_fraction: float, seed: int
                   ) -> tuple[OfflineDataset, OfflineDataset]:
    """Random episode-level split: ``(train, heldout)``; at least one episode on each side."""
    ids = episode_ids(ds)
    n_ep = int(ids[-1]) + 1
    if n_ep < 2:
        raise ValueError(f"{ds.name}: an episode-level split needs at least 2 episodes, got {n_ep}")
    n_held = min(max(1, round(heldout_fraction * n_ep)), n_ep - 1)
    held = np.random.default_rng(seed).permutation(n_ep)[:n_held]
    is_held = np.isin(ids, held)
    return subset(ds, ~is_held, f"{ds.name}[train]"), subset(ds, is_held, f"{ds.name}[heldout]")


def truncate(ds: OfflineDataset, n: int | None) -> OfflineDataset:
    if n is None or n >= len(ds):
        return ds
    keep = np.zeros(len(ds), bool)
    keep[:n] = True
    return subset(ds, keep, ds.name)


def segment_starts(ds: OfflineDataset, length: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct start indices of ``length``-transition windows inside one episode (sorted)."""
    ok = np.flatnonzero(ds.dist_to_end() >= length - 1)
    if len(ok) == 0:
        longest = int(np.bincount(episode_ids(ds)).max())
        raise ValueError(f"{ds.name}: no episode holds {length} transitions (longest {longest}); use a "
                         "shorter horizon or smaller max_step")
    return np.sort(rng.choice(ok, size=min(n, len(ok)), replace=False))
