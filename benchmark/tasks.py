"""Task ids -> task specs: what data or environment a run uses, and how its returns are scored.

Ids: ``local/<env>-<level>``, ``d4rl/<env>-<level>-v2``, ``neorl/<Task>-v3-<low|medium|high>``,
``minari/<dataset_id>`` (offline) and ``mujoco/<Env>`` (online).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from benchmark import scores

LOCAL_ENVS = ("hopper", "halfcheetah", "walker2d")
LOCAL_LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
D4RL_ENVS = ("hopper", "halfcheetah", "walker2d")
D4RL_LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
NEORL_TASKS = ("Hopper", "HalfCheetah", "Walker2d")
NEORL_LEVELS = ("low", "medium", "high")
ONLINE_ENVS = ("Hopper", "Walker2d", "HalfCheetah", "AntTruncatedObs", "HumanoidTruncatedObs")
FAMILIES = ("local", "d4rl", "neorl", "minari", "mujoco")


class TaskError(ValueError):
    """An unknown or malformed task id; the message lists what is valid."""


@dataclass(frozen=True)
class TaskSpec:
    id: str  # e.g. "local/hopper-medium"
    family: str  # local | d4rl | neorl | minari | mujoco
    kind: str  # offline | online
    env_key: str  # env factory / termination / score key, e.g. "hopper", "neorl-hopper"
    name: str  # id without the family prefix
    config_keys: tuple[str, ...]  # per-(algorithm, task) YAML names to try, most specific first

    @property
    def slug(self) -> str:
        """File-system name of the task (``/`` replaced by ``__``)."""
        return self.id.replace("/", "__")

    def make_env(self, seed: int | None = None):
        from benchmark.envs import make_env

        return make_env(self.env_key, seed=seed)

    def load_dataset(self):
        """The task's dataset, built or read without moving any global random stream (see
        :func:`benchmark.seeding.preserved_rng`): a cold and a warm cache give the same run."""
        from benchmark.seeding import preserved_rng

        with preserved_rng():
            return self._load_dataset()

    def _load_dataset(self):
        if self.kind != "offline":
            raise TaskError(f"task {self.id!r} is an online environment and has no dataset")
        if self.family == "local":
            from benchmark.data.local import load_local_dataset

            env, level, size = self._local_build()
            return load_local_dataset(env, level, size=size)
        if self.family == "d4rl":
            from benchmark.data.d4rl import load_d4rl_dataset

            return load_d4rl_dataset(self.name)
        if self.family == "neorl":
            from benchmark.data.neorl import load_neorl_dataset

            return load_neorl_dataset(self.name)
        if self.family == "minari":
            from benchmark.data.minari_loader import load_minari_dataset

            return load_minari_dataset(self.name, self.env_key)
        raise TaskError(f"no dataset loader for family {self.family!r}")

    def data_fingerprint(self) -> dict | None:
        """What the task's data depends on beyond its id, for the record's config hash, so a finished run
        is not taken as done after the data changed: for locally built sets the shipped behaviour files'
        sha256, the MuJoCo version, size, build seed and format (no build needed to know it); for D4RL and
        NeoRL files the file's name, size and sha256 (hashed once per process and file version). ``None``
        for environments and Minari datasets (versioned ids in Minari's own storage)."""
        if self.family in ("d4rl", "neorl"):
            return _published_file_fingerprint(self)
        if self.family != "local":
            return None
        from benchmark.data.local import BUILD_SEED, FORMAT_VERSION, build_sources

        env, level, size = self._local_build()
        return {"sources": build_sources(env, level), "size": size, "seed": BUILD_SEED,
                "format_version": FORMAT_VERSION}

    def cached_transitions(self) -> int | None:
        """The size of the task's dataset where it is known without building or reading it (a locally built
        set already in the cache); ``None`` otherwise."""
        if self.family != "local":
            return None
        from benchmark.data.local import cached_transitions

        env, level, size = self._local_build()
        return cached_transitions(env, level, size)

    def _local_build(self) -> tuple[str, str, int | None]:
        """``(env, level, size)`` of a locally built set; ADMBENCH_LOCAL_SIZE shrinks them (tests, CI), and
        the size lands in the record."""
        env, level = self.name.split("-", 1)
        size = os.environ.get("ADMBENCH_LOCAL_SIZE")
        return env, level, int(size) if size else None

    @property
    def has_score(self) -> bool:
        return scores.has_reference(self.env_key)

    def normalize(self, ret: float) -> float | None:
        return scores.normalize_return(self.env_key, ret) if self.has_score else None

    def normalize_std(self, std: float) -> float | None:
        return scores.normalize_std(self.env_key, std) if self.has_score else None


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _published_file_fingerprint(task: TaskSpec) -> dict:
    from benchmark.data.fetch import file_digest

    if task.family == "d4rl":
        from benchmark.data.d4rl import d4rl_dir, d4rl_filename

        path = d4rl_dir() / d4rl_filename(task.name)
    else:
        from benchmark.data.neorl import NEORL_FILES, find_neorl_file, neorl_dir, parse_neorl_name

        stem = parse_neorl_name(task.name)[0]
        path = find_neorl_file(stem, neorl_dir()) or neorl_dir() / NEORL_FILES[stem].filename
    if not path.is_file():  # the run itself will fail naming where the file goes
        return {"file": path.name, "missing": True}
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = file_digest(path)
    return {"file": path.name, "bytes": st.st_size, "sha256": _FILE_DIGESTS[key]}


def _minari_env_key(dataset_id: str) -> str:
    low = dataset_id.lower()
    for env in ("halfcheetah", "hopper", "walker2d"):
        if env in low:
            return env
    return ""


def resolve_task(task_id: str) -> TaskSpec:
    """Parse and check a task id; raise :class:`TaskError` naming the valid choices."""
    if "/" not in task_id:
        raise TaskError(
            f"task id {task_id!r} must look like FAMILY/NAME with FAMILY in {', '.join(FAMILIES)}"
        )
    family, name = task_id.split("/", 1)
    if family == "local":
        m = re.fullmatch(r"([a-z0-9]+)-(.+)", name)
        if not m or m.group(1) not in LOCAL_ENVS or m.group(2) not in LOCAL_LEVELS:
            raise TaskError(
                f"unknown local dataset {task_id!r}; expected local/<env>-<level> with env in "
                f"{', '.join(LOCAL_ENVS)} and level in {', '.join(LOCAL_LEVELS)}"
            )
        env, level = m.groups()
        return TaskSpec(
            task_id, family, "offline", env, name, (f"local-{name}", f"{env}-{level}-v2", "default")
        )
    if family == "d4rl":
        m = re.fullmatch(r"([a-z0-9]+)-(.+)-v2", name)
        if not m or m.group(1) not in D4RL_ENVS or m.group(2) not in D4RL_LEVELS:
            raise TaskError(
                f"unknown D4RL dataset {task_id!r}; expected d4rl/<env>-<level>-v2 with env in "
                f"{', '.join(D4RL_ENVS)} and level in {', '.join(D4RL_LEVELS)}"
            )
        return TaskSpec(task_id, family, "offline", m.group(1), name, (name, "default"))
    if family == "neorl":
        m = re.fullmatch(r"([A-Za-z0-9]+)-v3-(low|medium|high)", name)
        if not m or m.group(1) not in NEORL_TASKS:
            raise TaskError(
                f"unknown NeoRL dataset {task_id!r}; expected neorl/<Task>-v3-<level> with Task in "
                f"{', '.join(NEORL_TASKS)} and level in {', '.join(NEORL_LEVELS)}"
            )
        env_key = "neorl-" + m.group(1).lower()
        return TaskSpec(task_id, family, "offline", env_key, name, (f"neorl-{name}", "default"))
    if family == "minari":
        if not name:
            raise TaskError("minari task ids need a dataset id: minari/<dataset_id>")
        key = "minari-" + name.replace("/", "-")
        return TaskSpec(task_id, family, "offline", _minari_env_key(name), name, (key, "default"))
    if family == "mujoco":
        if name not in ONLINE_ENVS:
            raise TaskError(
                f"unknown online environment {task_id!r}; expected mujoco/<Env> with Env in "
                f"{', '.join(ONLINE_ENVS)}"
            )
        return TaskSpec(task_id, family, "online", name.lower(), name, (name, "default"))
    raise TaskError(f"unknown task family {family!r} in {task_id!r}; expected one of {', '.join(FAMILIES)}")
