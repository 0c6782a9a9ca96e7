"""NeoRL MuJoCo datasets read from the published ``.npz`` files (no ``neorl`` package).

Layout (polixir/NeoRL ``neorl/utils.py``): arrays ``obs``, ``action``, ``reward``, ``next_obs``,
``done`` (rows in trajectory order) and ``index``, the exclusive end row of every trajectory. Like
``neorl`` with ``train_num=1000``, we read the smallest stored training file with at least 1000
trajectories (``<Task>-v3-<level>-1000-train-noise.npz``) and keep its first 1000 trajectories.
As in the ADMPO loader (REFERENCE.md 3.1), a transition is a timeout when row ``i+1`` starts a
trajectory (and it is not a terminal); ADMPO also drops the file's last row, we keep it (its ``s'``
is stored) as a timeout. The stored ``index`` holds trajectory ends: ``neorl`` prepends 0 to make
it the start rows ADMPO tests ``i + 1`` against. Observations keep the x position (Hopper 12-d,
Walker2d and HalfCheetah 18-d): env keys ``neorl-hopper``, ``neorl-walker2d``, ``neorl-halfcheetah``.

Files are looked up in ``$NEORL_DATA_DIR`` (default ``$ADMBENCH_DATA/neorl``, i.e.
``~/.cache/admbench/neorl``); ``admbench data fetch neorl/<Task>-v3-<level>`` downloads them.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from benchmark.data.fetch import RemoteFile
from benchmark.rl.dataset import DatasetError, OfflineDataset
from benchmark.seeding import preserved_rng

NEORL_TASKS = ("HalfCheetah", "Hopper", "Walker2d")
NEORL_LEVELS = ("low", "medium", "high")
TRAIN_TRAJECTORIES = 1000
REQUIRED_KEYS = ("obs", "action", "reward", "next_obs", "done", "index")

# URLs and md5 sums copied from polixir/NeoRL neorl/data_map.json at commit
# 373caf7b74ca5d474b115e8d22d9c82817c50d17 (the 1000-trajectory training files). Whether the host
# datasets.polixir.site is still reachable was not checked.
NEORL_BASE_URL = "http://datasets.polixir.site/v2/"
NEORL_MIRROR_ENV = "ADMBENCH_NEORL_URL"  # ours: a mirror of the v2 folder (md5 sums still checked)
NEORL_URL_SOURCE = "polixir/NeoRL neorl/data_map.json @ 373caf7b74ca5d474b115e8d22d9c82817c50d17"
_NEORL_MD5 = {
    "HalfCheetah-v3-high": "e253a2613de6acbbb05ad0441e4949b8",
    "HalfCheetah-v3-low": "5afc938d022d5ae6afed25397d457e8d",
    "HalfCheetah-v3-medium": "b13bd54a0466f86455939a1175762a2a",
    "Hopper-v3-high": "91e711f30d4379cd627f63acfcfeb3c7",
    "Hopper-v3-low": "95a0c17014ba9fc45e739c820f3910ef",
    "Hopper-v3-medium": "c54404ee2f9b3eeb9168b35d48dca341",
    "Walker2d-v3-high": "ad15293c78a204fa20bb05e5206d0cb4",
    "Walker2d-v3-low": "3e88129538b30400b5b2b81d7f5a0044",
    "Walker2d-v3-medium": "a93baf6c53b578cd8c2286ccc1f837d9",
}


def _train_filename(name: str, trajectories: int = TRAIN_TRAJECTORIES) -> str:
    return f"{name}-{trajectories}-train-noise.npz"


NEORL_FILES: dict[str, RemoteFile] = {
    name: RemoteFile(
        url=f"{NEORL_BASE_URL}{name.split('-')[0]}-v3/{_train_filename(name)}",
        filename=_train_filename(name),
        md5=md5,
        source=NEORL_URL_SOURCE,
    )
    for name, md5 in _NEORL_MD5.items()
}


def parse_neorl_name(name: str) -> tuple[str, str, str]:
    """``neorl/Hopper-v3-low`` -> (``Hopper-v3-low``, ``neorl-hopper``, ``low``)."""
    stem = name.removeprefix("neorl/")
    m = re.fullmatch(r"([A-Za-z0-9]+)-v3-([a-z]+)", stem)
    if not m or m.group(1) not in NEORL_TASKS or m.group(2) not in NEORL_LEVELS:
        raise DatasetError(
            f"unknown NeoRL dataset {name!r}: expected <Task>-v3-<level> with Task in "
            f"{', '.join(NEORL_TASKS)} and level in {', '.join(NEORL_LEVELS)}"
        )
    return stem, "neorl-" + m.group(1).lower(), m.group(2)


def neorl_dir() -> Path:
    from benchmark.data.local import cache_dir

    return Path(os.environ.get("NEORL_DATA_DIR", cache_dir() / "neorl")).expanduser()


def find_neorl_file(stem: str, directory: Path, trajectories: int = TRAIN_TRAJECTORIES) -> Path | None:
    """The smallest ``<stem>-<N>-train-noise.npz`` with ``N >= trajectories`` (neorl's rule)."""
    best: tuple[int, Path] | None = None
    if directory.is_dir():
        for p in directory.iterdir():
            m = re.fullmatch(re.escape(stem) + r"-(\d+)-train-noise\.npz", p.name)
            if m and int(m.group(1)) >= trajectories and (best is None or int(m.group(1)) < best[0]):
                best = (int(m.group(1)), p)
    return None if best is None else best[1]


def load_neorl_npz(path: str | Path, env_key: str = "", name: str | None = None,
                   trajectories: int | None = TRAIN_TRAJECTORIES) -> OfflineDataset:
    """Read a NeoRL ``.npz`` and keep its first ``trajectories`` trajectories (all if None)."""
    path = Path(path)
    name = name or str(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    try:
        with np.load(path) as z:
            missing = [k for k in REQUIRED_KEYS if k not in z.files]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing} (has {sorted(z.files)})")
            arrays = {k: np.asarray(z[k]) for k in REQUIRED_KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetError(f"{path}: not a readable .npz file (truncated or another format): {err}") from err
    n = len(arrays["obs"])
    for key in ("action", "reward", "next_obs", "done"):
        if len(arrays[key]) != n:
            raise DatasetError(f"{path}: field '{key}' has {len(arrays[key])} rows, 'obs' has {n}")
    ends = arrays["index"].reshape(-1).astype(np.int64)
    if len(ends) == 0 or (np.diff(ends) <= 0).any() or ends[0] <= 0 or ends[-1] != n:
        raise DatasetError(
            f"{path}: 'index' must be increasing trajectory end rows ending at {n} (the row count), got "
            f"{ends[:3].tolist()}...{ends[-3:].tolist()}"
        )
    if trajectories is not None:
        if len(ends) < trajectories:
            raise DatasetError(f"{path}: has {len(ends)} trajectories, {trajectories} requested")
        ends = ends[:trajectories]
    rows = int(ends[-1])
    terminals = arrays["done"].reshape(-1)[:rows].astype(bool)
    timeouts = np.zeros(rows, bool)
    timeouts[ends - 1] = True  # row i+1 starts a trajectory (or i is the last row)
    timeouts &= ~terminals
    ds = OfflineDataset(
        observations=arrays["obs"][:rows],
        actions=arrays["action"][:rows],
        rewards=arrays["reward"].reshape(-1)[:rows],
        next_observations=arrays["next_obs"][:rows],
        terminals=terminals,
        timeouts=timeouts,
        name=name,
        env_key=env_key,
        meta={"trajectories": len(ends), "file": str(path)},
    )
    if env_key:
        from benchmark.data.d4rl import check_env_dims

        check_env_dims(ds, env_key, str(path))
    return ds


@preserved_rng()
def load_neorl_dataset(name: str, directory: str | Path | None = None) -> OfflineDataset:
    """``neorl/Hopper-v3-low`` (or ``Hopper-v3-low``): the first 1000 training trajectories."""
    stem, env_key, _ = parse_neorl_name(name)
    directory = Path(directory) if directory is not None else neorl_dir()
    path = find_neorl_file(stem, directory)
    if path is None:
        raise DatasetError(
            f"NeoRL dataset neorl/{stem} not found: expected {directory / _train_filename(stem)}; run "
            f"`admbench data fetch neorl/{stem}` or set $NEORL_DATA_DIR to the directory that holds it"
        )
    return load_neorl_npz(path, env_key=env_key, name=f"neorl/{stem}")
