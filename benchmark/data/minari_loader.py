"""Local Minari datasets (``minari/<dataset_id>``) through the optional ``minari`` package.

Install with ``pip install 'admbench[minari]'``. Each Minari episode stores ``T+1`` observations and
``T`` actions, rewards, terminations and truncations; it becomes ``T`` flat transitions with
``s' = observations[t+1]`` (always inside the episode). The last transition of an episode that did
not terminate is marked as a timeout. Only flat Box observations and actions are supported.
"""

from __future__ import annotations

import importlib

import numpy as np

from benchmark.rl.dataset import DatasetError, OfflineDataset
from benchmark.seeding import preserved_rng


def _import_minari():
    try:
        return importlib.import_module("minari")
    except ImportError as err:
        raise DatasetError(
            "minari datasets need the optional 'minari' package: pip install 'admbench[minari]' "
            "(or pip install minari)"
        ) from err


def episodes_to_dataset(episodes, name: str, env_key: str = "") -> OfflineDataset:
    """Flatten Minari-style episodes (objects with observations/actions/rewards/terminations/truncations)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    for i, ep in enumerate(episodes):
        obs = ep.observations
        if isinstance(obs, dict):
            raise DatasetError(f"{name}: episode {i} has dict observations ({sorted(obs)}); only Box works")
        obs = np.asarray(obs, dtype=np.float32)
        act = np.asarray(ep.actions, dtype=np.float32)
        t = len(act)
        if len(obs) != t + 1:
            raise DatasetError(f"{name}: episode {i}: {len(obs)} observations for {t} actions (need {t + 1})")
        if t == 0:
            continue
        term = np.asarray(ep.terminations).reshape(-1).astype(bool)
        trunc = np.asarray(ep.truncations).reshape(-1).astype(bool)
        trunc[-1] |= not term[-1]  # the episode ends here either way
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(act.reshape(t, -1))
        parts["rew"].append(np.asarray(ep.rewards, dtype=np.float32).reshape(-1))
        parts["term"].append(term)
        parts["trunc"].append(trunc)
    if not parts["obs"]:
        raise DatasetError(f"{name}: no non-empty episodes")
    return OfflineDataset(
        observations=np.concatenate(parts["obs"]).reshape(sum(len(o) for o in parts["obs"]), -1),
        actions=np.concatenate(parts["act"]),
        rewards=np.concatenate(parts["rew"]),
        next_observations=np.concatenate(parts["next"]).reshape(sum(len(o) for o in parts["next"]), -1),
        terminals=np.concatenate(parts["term"]),
        timeouts=np.concatenate(parts["trunc"]),
        name=name,
        env_key=env_key,
    )


@preserved_rng()
def load_minari_dataset(dataset_id: str, env_key: str) -> OfflineDataset:
    """Load an already downloaded Minari dataset (``minari download <id>``) into the shared format;
    ``env_key`` is the task's (:func:`benchmark.tasks.resolve_task` knows it)."""
    dataset_id = dataset_id.removeprefix("minari/")
    minari = _import_minari()
    try:
        data = minari.load_dataset(dataset_id)
    except Exception as err:  # minari raises several types for a missing/broken local dataset
        raise DatasetError(
            f"minari/{dataset_id}: cannot load the local Minari dataset ({err}); download it first with "
            f"`minari download {dataset_id}`"
        ) from err
    return episodes_to_dataset(data.iterate_episodes(), f"minari/{dataset_id}", env_key)
