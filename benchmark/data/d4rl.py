"""D4RL MuJoCo v2 datasets read from the published HDF5 files with h5py (no ``d4rl`` package).

Files are looked up in ``$D4RL_DATASET_DIR`` (default ``~/.d4rl/datasets``), under the names D4RL
itself saves them as (the basename of the URL, e.g. ``hopper_medium-v2.hdf5``), so a directory users
already filled with ``d4rl`` works as is. ``admbench data fetch d4rl/<name>`` downloads a missing file.

Read: ``observations``, ``actions``, ``rewards``, ``terminals``, ``timeouts`` and, when present,
``next_observations``; ``infos/*`` and ``metadata/*`` are ignored. Without ``next_observations``,
``s'`` is taken from ``obs[i+1]`` only inside an episode: transitions that end an episode
(terminal, timeout or last row) have no recorded successor and are dropped, and the transition
before each of them is marked as the end of its episode.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmark.data.fetch import RemoteFile
from benchmark.rl.dataset import DatasetError, OfflineDataset
from benchmark.seeding import preserved_rng

D4RL_ENVS = ("hopper", "halfcheetah", "walker2d")
D4RL_LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")

# URL scheme of the v2 gym-mujoco sets, from the loop at the end of D4RL's d4rl/infos.py
# (github.com/Farama-Foundation/D4RL, commit 61b0d257d375f9e1db07d0f474d9e7caf1df7347):
#   "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/%s.hdf5" % dset_name
#   with dset_name = env + "_" + dset.replace("-", "_") + "-v2"
# D4RL publishes no sizes or checksums for these files: size/sha256 are None (UNVERIFIED downloads;
# a fetched file is only checked to be a readable HDF5 file with the expected keys and shapes).
D4RL_MIRROR_ENV = "ADMBENCH_D4RL_URL"  # ours: a mirror of the gym_mujoco_v2 folder
D4RL_URL_SOURCE = "Farama-Foundation/D4RL d4rl/infos.py @ 61b0d257d375f9e1db07d0f474d9e7caf1df7347"
D4RL_BASE_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/"


def d4rl_filename(name: str) -> str:
    """``hopper-medium-replay-v2`` -> ``hopper_medium_replay-v2.hdf5`` (D4RL's own file name)."""
    env, level = parse_d4rl_name(name)
    return f"{env}_{level.replace('-', '_')}-v2.hdf5"


def parse_d4rl_name(name: str) -> tuple[str, str]:
    stem = name.removeprefix("d4rl/")
    if not stem.endswith("-v2"):
        raise DatasetError(f"unknown D4RL dataset {name!r}: expected <env>-<level>-v2")
    env, _, level = stem[: -len("-v2")].partition("-")
    if env not in D4RL_ENVS or level not in D4RL_LEVELS:
        raise DatasetError(
            f"unknown D4RL dataset {name!r}: env must be one of {', '.join(D4RL_ENVS)} and level one of "
            f"{', '.join(D4RL_LEVELS)}"
        )
    return env, level


D4RL_FILES: dict[str, RemoteFile] = {
    f"{env}-{level}-v2": RemoteFile(
        url=D4RL_BASE_URL + d4rl_filename(f"{env}-{level}-v2"),
        filename=d4rl_filename(f"{env}-{level}-v2"),
        size=None,
        sha256=None,
        source=D4RL_URL_SOURCE,
    )
    for env in D4RL_ENVS
    for level in D4RL_LEVELS
}


def d4rl_dir() -> Path:
    return Path(os.environ.get("D4RL_DATASET_DIR", Path.home() / ".d4rl" / "datasets")).expanduser()


def read_hdf5_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], bool]:
    """The D4RL arrays of an HDF5 file and whether it stored ``next_observations``."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in REQUIRED_KEYS if k not in f]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing} (has {sorted(f.keys())})")
            keys = list(REQUIRED_KEYS) + (["next_observations"] if "next_observations" in f else [])
            arrays = {k: np.asarray(f[k][()]) for k in keys}
    except DatasetError:
        raise
    except OSError as err:  # h5py reports non-HDF5 and truncated files as OSError
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or another format): {err}") from err
    return arrays, "next_observations" in arrays


def arrays_to_dataset(
    arrays: dict[str, np.ndarray], has_next: bool, name: str, env_key: str
) -> OfflineDataset:
    """Check row counts, then build explicit ``next_observations`` where the file has none.

    With ``next_observations`` in the file every row is kept, the last one included; the ADMPO official
    loader iterates ``range(N - 1)`` and so drops the file's last transition (``buffer/buffer.py:66``):
    one row in >= 200k, kept here because its successor is stored.
    """
    n = len(arrays["observations"])
    for key, arr in arrays.items():
        if len(arr) != n:
            raise DatasetError(f"{name}: field '{key}' has {len(arr)} rows, 'observations' has {n}")
    terminals = arrays["terminals"].reshape(-1).astype(bool)
    timeouts = arrays["timeouts"].reshape(-1).astype(bool)
    if has_next:
        next_obs = arrays["next_observations"]
        keep = np.arange(n)
    else:
        # i has a recorded successor only if it does not end an episode and is not the last row
        has_successor = ~(terminals | timeouts)
        has_successor[-1] = False
        keep = np.flatnonzero(has_successor)
        if len(keep) == 0:
            raise DatasetError(f"{name}: no transition has a successor (no 'next_observations' in the file)")
        next_obs = arrays["observations"][keep + 1]
        # the kept transition right before a dropped one is now the end of its episode
        timeouts = ~has_successor[keep + 1]
        terminals = np.zeros(len(keep), bool)
    return OfflineDataset(
        observations=arrays["observations"][keep],
        actions=arrays["actions"][keep],
        rewards=arrays["rewards"].reshape(-1)[keep],
        next_observations=next_obs,
        terminals=terminals[keep] if has_next else terminals,
        timeouts=timeouts[keep] if has_next else timeouts,
        name=name,
        env_key=env_key,
        meta={"next_observations_in_file": has_next, "dropped_rows": int(n - len(keep))},
    )


def load_hdf5_dataset(path: str | Path, env_key: str = "", name: str | None = None) -> OfflineDataset:
    """Read any D4RL-layout HDF5 file; check dims against ``env_key``'s env when given."""
    arrays, has_next = read_hdf5_arrays(path)
    ds = arrays_to_dataset(arrays, has_next, name or str(path), env_key)
    check_env_dims(ds, env_key, str(path))
    return ds


def check_env_dims(ds: OfflineDataset, env_key: str, source: str) -> None:
    if not env_key:
        return
    from benchmark.envs import env_dims

    obs_dim, act_dim = env_dims(env_key)
    if ds.obs_dim != obs_dim or ds.act_dim != act_dim:
        raise DatasetError(
            f"{source}: observations/actions have dims {ds.obs_dim}/{ds.act_dim}, the {env_key!r} env "
            f"expects {obs_dim}/{act_dim}"
        )


@preserved_rng()
def load_d4rl_dataset(name: str, directory: str | Path | None = None) -> OfflineDataset:
    """``d4rl/hopper-medium-v2`` (or ``hopper-medium-v2``) from the D4RL dataset directory."""
    env, _ = parse_d4rl_name(name)
    stem = name.removeprefix("d4rl/")
    path = Path(directory) if directory is not None else d4rl_dir()
    path = path / d4rl_filename(stem)
    if not path.exists():
        hint = f"`admbench data fetch d4rl/{stem}`" if stem in D4RL_FILES else "download it from D4RL"
        raise DatasetError(
            f"D4RL dataset d4rl/{stem} not found at {path}; run {hint} or set $D4RL_DATASET_DIR to the "
            "directory that holds it"
        )
    return load_hdf5_dataset(path, env_key=env, name=f"d4rl/{stem}")
