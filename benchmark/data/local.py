"""Locally built D4RL-style datasets (``local/<env>-<level>``), the embedded default.

Built the way D4RL built its MuJoCo sets, on gymnasium MuJoCo v4:

* ``random``: a uniform-random policy;
* ``medium``: a SAC policy stopped at about one third of the expert return (stochastic actions, as
  D4RL sampled its behaviour policies);
* ``medium-replay``: the replay buffer of that SAC run up to the medium snapshot;
* ``expert``: the strongest SAC snapshot we trained (its card states the return actually reached);
* ``medium-expert``: ``medium`` followed by ``expert``.

Policies and replay buffers ship in ``benchmark/data/behavior_policies/`` with a card each. A dataset
is generated deterministically from (policy, seed, size) and cached under ``$ADMBENCH_DATA``
(default ``~/.cache/admbench``) as ``.npz`` plus a manifest (sizes, sha256, returns); a cached file is
reused only if its sha256 matches the manifest and it was built from the same shipped files and
MuJoCo version (``sources`` in the manifest); a manifest that cannot be read is stale too (a warning
names it) and the set is rebuilt. Nothing is cached from a failed build: files are published by
atomic rename from unique temp files, and a lock file next to each entry lets one process build while
others wait and reuse it. Building or loading never moves the global random streams.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from benchmark.data import policies
from benchmark.data.files import (
    atomic_write,
    atomic_write_text,
    exclusive_lock,
    io_error,
    remove_stale_temp_files,
)
from benchmark.envs import make_env
from benchmark.progress import track
from benchmark.rl.dataset import ARRAY_FIELDS, DatasetError, OfflineDataset, store_transition
from benchmark.seeding import preserved_rng

DEFAULT_SIZES = {
    "random": 50_000, "medium": 50_000, "expert": 50_000, "medium-replay": None, "medium-expert": None
}
BUILD_SEED = 0
FORMAT_VERSION = 1
log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("ADMBENCH_DATA", Path.home() / ".cache" / "admbench"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rollout_dataset(env_key: str, policy, size: int, seed: int, name: str) -> OfflineDataset:
    """Collect ``size`` transitions with ``policy(obs, rng) -> action``; the last one is a timeout."""
    env = make_env(env_key)
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    data = {
        "observations": np.zeros((size, obs_dim), np.float32),
        "actions": np.zeros((size, act_dim), np.float32),
        "rewards": np.zeros(size, np.float32),
        "next_observations": np.zeros((size, obs_dim), np.float32),
        "terminals": np.zeros(size, bool),
        "timeouts": np.zeros(size, bool),
    }
    episode = 0
    obs, _ = env.reset(seed=seed)
    for i in track(range(size), f"building {name}", unit="transition"):
        action = np.asarray(policy(obs, rng), dtype=np.float32)
        next_obs, rew, term, trunc, _ = env.step(action)
        store_transition(data, i, obs, action, rew, next_obs, term, trunc)
        obs = next_obs
        if term or trunc:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    data["timeouts"][-1] |= not data["terminals"][-1]
    env.close()
    return OfflineDataset(**data, name=name, env_key=env_key)


def load_replay(env_key: str) -> OfflineDataset:
    """The medium-replay set: the shipped SAC replay buffer up to the medium snapshot."""
    path = policies.POLICY_DIR / f"{env_key}-medium-replay.npz"
    if not path.exists():
        raise DatasetError(f"no replay buffer {path} for local/{env_key}-medium-replay")
    arrays = policies.load_training_replay(path)  # full D4RL arrays or the compact shipped layout
    return OfflineDataset(**{k: arrays[k] for k in ARRAY_FIELDS}, name=f"local/{env_key}-medium-replay",
                          env_key=env_key)


def concat(a: OfflineDataset, b: OfflineDataset, name: str) -> OfflineDataset:
    a_time = a.timeouts.copy()
    a_time[-1] |= not a.terminals[-1]  # the first part's last episode ends at the seam
    arrays = {k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in ARRAY_FIELDS}
    arrays["timeouts"] = np.concatenate([a_time, b.timeouts])
    return OfflineDataset(**arrays, name=name, env_key=a.env_key)


@preserved_rng()
def build_local_dataset(
    env_key: str, level: str, size: int | None = None, seed: int = BUILD_SEED
) -> OfflineDataset:
    """Generate (without caching) ``local/<env>-<level>``."""
    name = f"local/{env_key}-{level}"
    size = size or DEFAULT_SIZES.get(level)
    if level == "random":
        env = make_env(env_key)
        scale = float(env.action_space.high[0])
        policy = policies.uniform_policy(env.action_space.shape[0], scale)
        return rollout_dataset(env_key, policy, size, seed, name)
    if level in ("medium", "expert"):
        actor, _ = policies.load_behavior_actor(env_key, level)
        return rollout_dataset(env_key, policies.actor_policy(actor, seed), size, seed, name)
    if level == "medium-replay":
        ds = load_replay(env_key)
        if size is not None and size < len(ds):
            ds = OfflineDataset(**{k: v[:size] for k, v in ds.arrays().items()}, name=name, env_key=env_key)
            ds.timeouts[-1] |= not ds.terminals[-1]
        return ds
    if level == "medium-expert":
        half = None if size is None else size // 2
        return concat(build_local_dataset(env_key, "medium", half, seed),
                      build_local_dataset(env_key, "expert", half, seed + 1), name)
    raise DatasetError(f"unknown local level {level!r}")


def _paths(env_key: str, level: str, size: int | None, seed: int) -> tuple[Path, Path]:
    stem = f"{env_key}-{level}-n{size or 'all'}-s{seed}-v{FORMAT_VERSION}"
    d = cache_dir() / "local"
    return d / f"{stem}.npz", d / f"{stem}.manifest.json"


LEVEL_FILES = {
    "random": (),
    "medium": ("medium.pt",),
    "expert": ("expert.pt",),
    "medium-replay": ("medium-replay.npz",),
    "medium-expert": ("medium.pt", "expert.pt"),
}


def build_sources(env_key: str, level: str) -> dict[str, str]:
    """What a build depends on besides (size, seed): the shipped files' sha256 and the MuJoCo version.

    A cached dataset whose manifest lists other sources is stale (new policies, another simulator)
    and is rebuilt.
    """
    import mujoco

    sources = {"mujoco": mujoco.__version__}
    for suffix in LEVEL_FILES.get(level, ()):
        path = policies.POLICY_DIR / f"{env_key}-{suffix}"
        sources[path.name] = sha256_file(path) if path.exists() else "missing"
    return sources


MANIFEST_KEYS = ("id", "size", "seed", "format_version", "sha256", "sources")


def read_manifest(path: Path, warn: bool = True) -> dict | None:
    """The manifest at ``path``; ``None`` when it is absent, and also (with a warning naming the file)
    when it cannot be read, is not a JSON object or lacks a key: the cached dataset is then stale."""
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problem = f"unreadable ({err})"
    else:
        missing = [k for k in MANIFEST_KEYS if k not in manifest] if isinstance(manifest, dict) else None
        if missing == []:
            return manifest
        problem = (f"not a JSON object ({type(manifest).__name__})" if missing is None
                   else f"missing {', '.join(missing)}")
    if warn:
        log.warning("%s: manifest %s; rebuilding the cached dataset", path, problem)
    return None


def cached_transitions(env_key: str, level: str, size: int | None = None, seed: int = BUILD_SEED
                       ) -> int | None:
    """How many transitions the cached build of ``local/<env>-<level>`` has, from its manifest alone (no
    build, no hashing, no warning), or ``None`` when none is cached: what ``--plan`` scales a measured cost
    by; nothing that trains reads it."""
    if size is None:
        size = DEFAULT_SIZES.get(level)
    manifest = read_manifest(_paths(env_key, level, size, seed)[1], warn=False)
    transitions = manifest.get("transitions") if manifest else None
    return transitions if isinstance(transitions, int) and transitions > 0 else None


def _load_verified(data_path: Path, manifest: dict | None, expected: dict, name: str,
                   env_key: str) -> OfflineDataset | None:
    """The cached dataset if its manifest matches ``expected`` and the file its sha256, else ``None``."""
    if manifest is None or any(manifest.get(k) != v for k, v in expected.items()):
        return None
    try:
        with open(data_path, "rb") as f:  # hash and parse one open file: a rename cannot come between
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            if digest != manifest["sha256"]:
                return None
            f.seek(0)
            with np.load(f) as z:
                arrays = {k: z[k] for k in ARRAY_FIELDS}
    except FileNotFoundError:
        return None
    except OSError as err:
        raise io_error(data_path, "read", err) from err
    return OfflineDataset(**arrays, name=name, env_key=env_key, meta=manifest)


def load_local_dataset(env_key: str, level: str, size: int | None = None, seed: int = BUILD_SEED,
                       rebuild: bool = False) -> OfflineDataset:
    """Load ``local/<env>-<level>`` from the cache, building it first if needed (idempotent).

    Safe to call from several processes at once: one builds while the others wait on a lock next to
    the cache entry, then reuse what it published. Never moves the global random streams.
    """
    name = f"local/{env_key}-{level}"
    if size is None:
        size = DEFAULT_SIZES.get(level)
    elif isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise DatasetError(f"{name}: size must be a positive integer, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"{name}: build seed must be a non-negative integer, got {seed!r}")
    data_path, manifest_path = _paths(env_key, level, size, seed)
    expected = {"id": name, "size": size, "seed": seed, "format_version": FORMAT_VERSION,
                "sources": build_sources(env_key, level)}

    def cached(warn: bool) -> OfflineDataset | None:
        return _load_verified(data_path, read_manifest(manifest_path, warn), expected, name, env_key)

    with preserved_rng():
        if not rebuild and (ds := cached(warn=True)) is not None:
            return ds
        with exclusive_lock(data_path.with_name(data_path.name.removesuffix(".npz") + ".lock")):
            # another process may have published it while this one waited (already warned about a bad one)
            if not rebuild and (ds := cached(warn=False)) is not None:
                return ds
            for path in (data_path, manifest_path):  # left by a builder that was killed
                remove_stale_temp_files(path)
            ds = build_local_dataset(env_key, level, size, seed)
            atomic_write(data_path, lambda f: np.savez(f, **ds.arrays()))
            manifest = {"id": name, "size": size, "seed": seed, "format_version": FORMAT_VERSION,
                        "sha256": sha256_file(data_path), "sources": expected["sources"], **ds.summary()}
            atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    ds.meta = manifest
    return ds
