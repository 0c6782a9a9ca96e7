"""Run checkpoints: a run killed at any moment resumes from its last checkpoint to the same result.

A checkpoint is one ``torch.save`` file holding the trainer's loop position and everything the rest of the
run reads: the algorithm object itself (networks, optimisers, schedulers, temperature, models with their
normalisers and elites, model buffers, its own random generators; pickled whole, so nothing is forgotten
when an algorithm gains a field), the curve so far, python's / numpy's / torch's global random states, and
for online runs the training env's simulator state and episode counters. Only what can be rebuilt exactly
is left out: an offline algorithm's copy of the dataset (reloaded, checked by the record's config hash) and
buffer rows never written (a buffer stores its live rows only).

Files are written atomically (temp file, fsync, rename) as ``ckpt-<position>.pt`` in a folder beside the
record; the newest readable one whose config hash matches is used, an unreadable one is skipped for the
one before (the previous checkpoint is kept until a newer one is complete).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.atomic import atomic_write

FORMAT = 1
_NAME = re.compile(r"ckpt-(\d+)\.pt")
# gymnasium wrapper attributes that carry episode state (TimeLimit's step count, OrderEnforcing's flag)
_WRAPPER_COUNTERS = ("_elapsed_steps", "_has_reset", "_disable_render_order_enforcing")
# the commit of a segment whose file was written before files kept the commits of the code that wrote them
UNRECORDED_COMMIT = "unrecorded"


def merged_commits(*lists: list[str] | None) -> list[str]:
    """The commits of ``lists`` in order of first appearance, each once (None: a file from before commits
    were kept, :data:`UNRECORDED_COMMIT`)."""
    out: list[str] = []
    for commits in lists:
        for commit in [UNRECORDED_COMMIT] if commits is None else commits:
            if commit not in out:
                out.append(commit)
    return out


def global_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def env_state(env) -> dict[str, Any]:
    """A MuJoCo gymnasium env's whole ``MjData`` (time, qpos, qvel, the solver's warm start and the derived
    quantities rewards read, such as body positions), its wrappers' episode counters and its generators."""
    import copy

    base = env.unwrapped
    state = {
        "mujoco": copy.copy(base.data),
        "np_random": base.np_random.bit_generator.state,
        "action_space": env.action_space.np_random.bit_generator.state,
        "wrappers": [],
    }
    layer = env
    while layer is not base:
        state["wrappers"].append({k: v for k, v in vars(layer).items() if k in _WRAPPER_COUNTERS})
        layer = layer.env
    return state


def restore_env_state(env, state: dict[str, Any]) -> None:
    import mujoco

    base = env.unwrapped
    mujoco.mj_copyData(base.data, base.model, state["mujoco"])  # in place: the env keeps its references
    base.np_random.bit_generator.state = state["np_random"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
    layer = env
    for saved in state["wrappers"]:
        vars(layer).update(saved)
        layer = layer.env


def reachable(root: Any, kind: type) -> Iterator[Any]:
    """Every object of type ``kind`` reachable from ``root`` through attributes, dicts, lists and tuples
    (tensors and arrays are leaves), each once."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, torch.Tensor | np.ndarray):
            continue
        seen.add(id(obj))
        if isinstance(obj, kind):
            yield obj
        if isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple):
            todo.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            todo.extend(vars(obj).values())


def rewire_after_load(root: Any) -> Any:
    """Redo what unpickling cannot restore: an LR scheduler's wrapper around its optimizer's ``step``
    (torch adds it in the scheduler's ``__init__`` to check the call order; without it every scheduler step
    warns). Returns ``root``."""
    for scheduler in reachable(root, torch.optim.lr_scheduler.LRScheduler):
        _wrap_optimizer_step(scheduler.optimizer)
    return root


def _wrap_optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    if hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        return
    step = optimizer.step

    def wrapper(*args, **kwargs):
        optimizer._opt_called = True
        return step(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    optimizer.step = wrapper


def checkpoint_files(directory: Path) -> list[Path]:
    """A run's ``ckpt-<position>.pt`` files in ``directory``, oldest position first (none: empty)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.fullmatch(p.name)),
                  key=lambda p: checkpoint_position(p))


def checkpoint_position(path: Path) -> int:
    """The loop position (epoch offline, env step online) a checkpoint file was written at."""
    return int(_NAME.fullmatch(Path(path).name).group(1))


class Checkpointer:
    """Writes and finds the checkpoints of one run (``directory`` beside its record).

    ``every`` is the interval in the trainer's unit (epochs offline, env steps online); 0 disables it."""

    SETUP_LOOP_EVERY_S = 300.0  # how often a training loop inside setup saves (seconds)

    def __init__(
        self, directory: Path, config_hash: str, every: int, log: Callable[[str], None] | None = None,
        commit: str | None = None,
    ):
        self.directory = Path(directory)
        self.config_hash = config_hash
        self.every = int(every)
        # the commits of the code that ran the segments so far (``commit``: this process's); a record whose
        # run spans several states them all, since the result depends on each
        self._commit = commit
        self._commits: list[str] = [commit] if commit else []
        self.log = log or (lambda msg: print(f"admbench: {msg}", file=sys.stderr))
        self.resumed_from: int | None = None
        # the run's cost so far: what the checkpoint it resumed from had spent (None: a checkpoint written
        # before costs were kept, so the earlier segments' cost is unknown) plus this process's since here
        self.spent_before: dict[str, float] | None = {"wall_s": 0.0, "cpu_s": 0.0}
        self._wall0, self._cpu0 = time.time(), time.process_time()
        self._setup_loops: list[LoopCheckpoint] = []  # handed out by setup_loop, until a checkpoint
        self._setup_resumed: list[str] = []  # setup loops resumed from their files, folded into a checkpoint

    def spent(self) -> dict[str, float] | None:
        """Wall and CPU seconds (this process, all threads) the run has cost up to now, across resumes
        (a setup loop resumed from its file included); None when a resumed-from checkpoint did not know
        its own."""
        if self.spent_before is None:
            return None
        now = {"wall_s": time.time() - self._wall0, "cpu_s": time.process_time() - self._cpu0}
        earlier_setup = self.setup_loops_cost
        return {key: round(self.spent_before[key] + now[key] + earlier_setup[key], 3) for key in now}

    def setup_loop(self, name: str) -> LoopCheckpoint | None:
        """A checkpoint for a training loop inside the algorithm's ``setup`` (a model trained to early
        stopping, the longest phase of an offline model-based run at paper sizes), so a run killed there
        resumes the loop instead of starting it again; the run's first checkpoint supersedes (and deletes)
        it. None when this run writes no checkpoints."""
        if not self.enabled:
            return None
        loop = LoopCheckpoint(self.directory / f"setup-{name}.loop.pt", self.config_hash,
                              every_s=self.SETUP_LOOP_EVERY_S, log=self.log, commit=self._commit)
        self._setup_loops.append(loop)
        return loop

    @property
    def setup_loops_cost(self) -> dict[str, float]:
        """Wall and CPU seconds the setup loops this process resumed had cost the processes before it
        (part of the run's setup time, which this process's clock alone does not see)."""
        return {key: sum(loop.resumed_cost[key] for loop in self._setup_loops) for key in ("wall_s", "cpu_s")}

    @property
    def commits(self) -> list[str]:
        """The commits whose code ran this run so far, oldest first (its checkpoints' and setup loops')."""
        # setup loops exist only before the run's first checkpoint, so theirs are the older ones
        return merged_commits(*(loop.commits for loop in self._setup_loops), self._commits)

    @property
    def resumed_setup(self) -> list[str]:
        """The setup loops this process resumed from their files (the run's time then spans processes)."""
        return self._setup_resumed + [loop.path.name for loop in self._setup_loops if loop.resumed]

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def due(self, position: int) -> bool:
        return self.enabled and position % self.every == 0

    def save(self, position: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint at ``position`` (with the global random states) atomically, then drop all
        but it and the one before it."""
        self._commits = self.commits  # the setup loops' commits outlive their files
        payload = {"format": FORMAT, "config_hash": self.config_hash, "position": position,
                   "rng": global_rng_state(), "spent": self.spent(), "commits": self._commits, **state}
        target = atomic_write(self.directory / f"ckpt-{position:010d}.pt", lambda f: torch.save(payload, f))
        for old in self._files()[:-2]:
            old.unlink(missing_ok=True)
        for loop in self._setup_loops:  # superseded by the checkpoint; their earlier cost is in `spent` now
            loop.path.unlink(missing_ok=True)
            if loop.resumed:
                self._setup_resumed.append(loop.path.name)
            if self.spent_before is not None:
                for key in ("wall_s", "cpu_s"):
                    self.spent_before[key] += loop.resumed_cost[key]
        self._setup_loops = []
        return target

    def _files(self) -> list[Path]:
        return checkpoint_files(self.directory)

    def load(self) -> dict[str, Any] | None:
        """The newest usable checkpoint, or None; loading it also puts the global random states back.
        Unreadable files and other configs' files are skipped (with a message); a checkpoint is never used
        for a config it was not written by."""
        if not self.enabled:
            return None
        for path in reversed(self._files()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as e:  # truncated, corrupt, or from an incompatible version
                self.log(f"skipping unreadable checkpoint {path} ({type(e).__name__}: {e})")
                continue
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                self.log(f"skipping checkpoint {path}: unknown format")
                continue
            if state.get("config_hash") != self.config_hash:
                self.log(f"skipping checkpoint {path}: written for config {state.get('config_hash')}, "
                         f"this run is {self.config_hash}")
                continue
            rewire_after_load(state)
            set_global_rng_state(state["rng"])
            self.resumed_from = int(state["position"])
            self.spent_before = state.get("spent")
            earlier = merged_commits(state.get("commits"))
            if self._commit and earlier[-1] != self._commit:
                writer = ("code whose commit it does not record" if earlier[-1] == UNRECORDED_COMMIT
                          else f"commit {earlier[-1]}")
                self.log(f"{path} was written by {writer}; this process runs {self._commit}: the record's "
                         "`commits` lists both")
            self._commits = merged_commits(earlier, self._commits)
            self.log(f"resuming from checkpoint {path}")
            return state
        return None

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.directory)


class LoopCheckpoint:
    """One file that a long training loop inside a stage (a model trained to early stopping) saves now and
    then and resumes from: the loop's own state plus the global random states and those of the generators it
    draws from (``track``), so a resumed loop makes exactly the draws the uninterrupted one would. Saving
    reads no random state it does not put back, so how often it saves (every ``every_s`` seconds) never
    changes the result."""

    def __init__(self, path: Path, config_hash: str, every_s: float = 300.0,
                 log: Callable[[str], None] | None = None, commit: str | None = None):
        self.path = Path(path)
        self.commits: list[str] = [commit] if commit else []  # of the processes that ran the loop
        self.config_hash = config_hash
        self.every_s = float(every_s)
        self.log = log or (lambda msg: print(f"admbench: {msg}", file=sys.stderr))
        self.generators: list[torch.Generator] = []
        self._last = time.time()
        # what the loop cost in the processes before this one (from the file it resumed from)
        self.resumed_cost = {"wall_s": 0.0, "cpu_s": 0.0}
        self.resumed = False
        self._wall0, self._cpu0 = time.time(), time.process_time()

    def track(self, *generators: torch.Generator) -> None:
        """The generators the loop draws from (their states are saved and restored with it)."""
        self.generators = list(generators)

    def due(self) -> bool:
        return time.time() - self._last >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        cost = {"wall_s": self.resumed_cost["wall_s"] + time.time() - self._wall0,
                "cpu_s": self.resumed_cost["cpu_s"] + time.process_time() - self._cpu0}
        payload = {"format": FORMAT, "config_hash": self.config_hash, "rng": global_rng_state(),
                   "generators": [g.get_state() for g in self.generators], "state": state, "cost": cost,
                   "commits": self.commits}
        atomic_write(self.path, lambda f: torch.save(payload, f))
        self._last = time.time()

    def load(self) -> dict[str, Any] | None:
        """The saved loop state (random states put back), or None when there is none usable."""
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as e:
            self.log(f"restarting the loop of {self.path.name} ({type(e).__name__}: {e})")
            return None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT or \
                payload.get("config_hash") != self.config_hash or \
                len(payload.get("generators", ())) != len(self.generators):
            self.log(f"restarting the loop of {self.path.name}: written for another config")
            return None
        set_global_rng_state(payload["rng"])
        for g, state in zip(self.generators, payload["generators"]):
            g.set_state(state)
        self.resumed_cost = dict(payload["cost"])
        self.commits = merged_commits(payload.get("commits"), self.commits)
        self.resumed = True
        self.log(f"resuming a training loop from {self.path}")
        return payload["state"]

    def save_objects(self, objects: dict[str, Any], **state: Any) -> None:
        """:meth:`save` of the state dicts of ``objects`` (modules, optimisers) with the loop's ``state``."""
        self.save({"objects": {name: obj.state_dict() for name, obj in objects.items()}, **state})

    def load_into(self, objects: dict[str, Any]) -> dict[str, Any] | None:
        """:meth:`load`, putting the state dicts that :meth:`save_objects` saved back into ``objects``;
        returns the loop's state (None: nothing usable saved, ``objects`` untouched)."""
        state = self.load()
        if state is None:
            return None
        for name, obj in objects.items():
            obj.load_state_dict(state["objects"][name])
        return state


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold a blocking ``flock`` on ``lock`` (created if missing; the kernel drops it if the process dies)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class StageCheckpoints:
    """Checkpoints of a job made of stages rather than a loop (an analysis: fit model 1, 2, 3, then
    evaluate): each finished stage's output is saved, with the global random states right after it, as
    ``stage-<name>.pt`` in ``directory``; a job killed between stages runs again, loads the finished
    stages (putting the random states back) and computes only the rest, so it ends with the same result.
    Files of another config, or unreadable ones, are recomputed, never used.

    A stage whose value depends only on what its ``share_key`` hashes (a model fitted from reset random
    states on given data with given settings) is also kept in ``shared_dir`` under that key, so another job
    that needs the same value (Figure 4's models are Figure 2's) loads it instead of computing it: the value
    and the random states after it are those the job would have computed itself. A process computing a
    shared stage holds an ``flock`` on its key, so a second one waits for the file rather than fitting the
    same model twice. A shared stage's cost is kept in :attr:`costs` (marked ``shared``) but not counted in
    :meth:`spent`: this job did not spend it. The shared file is a byte copy of the job's own (which names
    both the config hash and the share key), so git, carrying both while the job runs, stores the fit once."""

    def __init__(self, directory: Path, config_hash: str, log: Callable[[str], None] | None = None,
                 shared_dir: Path | None = None, commit: str | None = None):
        self.directory = Path(directory)
        # the commits of the code that computed the job's stages (``commit``: this process's), loaded and
        # shared ones included: a record whose stages came from several states them all
        self._commit = commit
        self.commits: list[str] = [commit] if commit else []
        self.config_hash = config_hash
        self.shared_dir = Path(shared_dir) if shared_dir is not None else None
        self.shared: dict[str, str] = {}  # stage name -> key of the shared file it was loaded from
        self.log = log or (lambda msg: print(f"admbench: {msg}", file=sys.stderr))
        self.loaded: list[str] = []  # stages taken from earlier processes
        self.costs: dict[str, dict[str, float]] = {}  # each stage's wall and CPU seconds, when computed
        self._loops: dict[str, LoopCheckpoint] = {}
        self.spent_before = {"wall_s": 0.0, "cpu_s": 0.0}  # what the loaded stages cost when computed
        self._wall0, self._cpu0 = time.time(), time.process_time()

    def spent(self) -> dict[str, float]:
        """Wall and CPU seconds of the job so far: the loaded stages' recorded cost plus this process's."""
        return {"wall_s": round(self.spent_before["wall_s"] + time.time() - self._wall0, 3),
                "cpu_s": round(self.spent_before["cpu_s"] + time.process_time() - self._cpu0, 3)}

    def _load(self, path: Path, field: str = "config_hash", expected: str | None = None
              ) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # truncated, corrupt, or pickled by code that has since changed
            self.log(f"recomputing stage {path.name} ({type(e).__name__}: {e})")
            return None
        expected = self.config_hash if expected is None else expected
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get(field) != expected:
            self.log(f"recomputing stage {path.name}: written for another config or format")
            return None
        return state

    def loop(self, name: str) -> LoopCheckpoint:
        """The mid-stage checkpoint of stage ``name``'s training loop (dropped with the folder)."""
        self._loops[name] = LoopCheckpoint(self.directory / f"stage-{name}.loop.pt", self.config_hash,
                                           log=self.log, commit=self._commit)
        return self._loops[name]

    def run(self, name: str, compute: Callable[[], Any], share_key: str | None = None) -> Any:
        """``compute()``'s value, from this stage's file when an earlier process finished it, else (given a
        ``share_key`` and a ``shared_dir``) from the shared file another job wrote for the same key."""
        path = self.directory / f"stage-{name}.pt"
        state = self._load(path)
        if state is not None:
            set_global_rng_state(state["rng"])
            for key in ("wall_s", "cpu_s"):
                self.spent_before[key] += state["cost"][key]
            self.loaded.append(name)
            self.costs[name] = dict(state["cost"])
            self.commits = merged_commits(self.commits, state.get("commits"))
            self.log(f"stage {name!r} loaded from {path}")
            if share_key is not None and self.shared_dir is not None:
                self._publish(name, share_key, state, path)
            return state["value"]
        if share_key is None or self.shared_dir is None:
            return self._compute(name, compute, path)["value"]
        shared = self.shared_path(name, share_key)
        with _exclusive(shared.with_name(shared.name + ".lock")):  # one process fits it, the others wait
            state = self._load(shared, "share_key", share_key)
            if state is None:
                state = self._compute(name, compute, path, share_key)
                self._publish(name, share_key, state, path)
                return state["value"]
        set_global_rng_state(state["rng"])
        self.shared[name] = share_key
        self.commits = merged_commits(self.commits, state.get("commits"))
        self.costs[name] = {**state["cost"], "shared": True}
        self.log(f"stage {name!r} loaded from the shared {shared}")
        return state["value"]

    def shared_path(self, name: str, share_key: str) -> Path:
        return self.shared_dir / f"{name}-{share_key}.pt"

    def _publish(self, name: str, share_key: str, state: dict[str, Any], path: Path) -> None:
        """Keep a finished stage (``state``, read from or written to ``path``) in the shared folder too,
        unless a file is already there: a byte copy of ``path`` when that file names ``share_key`` (two
        ``torch.save`` calls of one payload differ in their bytes), else the payload written again with it
        (a stage file written before it was shared, or by code that did not name the key)."""
        shared = self.shared_path(name, share_key)
        if shared.is_file():
            return
        if state.get("share_key") == share_key:
            data = path.read_bytes()
            atomic_write(shared, lambda f: f.write(data))
            return
        payload = {**state, "share_key": share_key}
        atomic_write(shared, lambda f: torch.save(payload, f))

    def _compute(self, name: str, compute: Callable[[], Any], path: Path, share_key: str | None = None
                 ) -> dict[str, Any]:
        """Compute the stage and write its file (naming ``share_key`` when the stage is shared); returns the
        file's payload (value, random states, cost)."""
        wall0, cpu0 = time.time(), time.process_time()
        value = compute()
        earlier = self._loops[name].resumed_cost if name in self._loops else {"wall_s": 0.0, "cpu_s": 0.0}
        for key in ("wall_s", "cpu_s"):  # a loop resumed mid-stage cost its earlier processes this much
            self.spent_before[key] += earlier[key]
        cost = {"wall_s": round(time.time() - wall0 + earlier["wall_s"], 3),
                "cpu_s": round(time.process_time() - cpu0 + earlier["cpu_s"], 3)}
        self.costs[name] = cost
        commits = merged_commits(self._loops[name].commits if name in self._loops else [],
                                 [self._commit] if self._commit else [])
        self.commits = merged_commits(self.commits, commits)
        payload = {"format": FORMAT, "config_hash": self.config_hash, "value": value,
                   "rng": global_rng_state(), "cost": cost, "commits": commits}
        if share_key is not None:
            payload["share_key"] = share_key
        atomic_write(path, lambda f: torch.save(payload, f))
        (self.directory / f"stage-{name}.loop.pt").unlink(missing_ok=True)  # the finished stage supersedes it
        return payload

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.directory)

    @staticmethod
    def spent_in(directory: Path, config_hash: str) -> float:
        """CPU seconds an interrupted job's files in ``directory`` hold for ``config_hash``: its finished
        stages' costs plus what its saved training loops had cost (what a resumed job will not spend again,
        up to the loop's last save); 0 without usable files."""
        total = 0.0
        for path in sorted(Path(directory).glob("stage-*.pt")):
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception:  # unreadable: the job computes it again
                continue
            if isinstance(state, dict) and state.get("format") == FORMAT and \
                    state.get("config_hash") == config_hash:
                total += float(state.get("cost", {}).get("cpu_s", 0.0))
        return total


POLICY_FORMAT = "admbench.policy/1"


def save_policy(path: Path, algo: Any, meta: dict[str, Any]) -> Path:
    """A self-describing policy file: the trained algorithm (buffers and datasets left out) with ``meta``
    (the record's algo, task, seed, budget, config, config hash, versions, commit, final score), so
    ``admbench evaluate`` can run it again without the code that trained it knowing anything else."""
    from benchmark.rl.buffers import contents_left_out

    payload = {"format": POLICY_FORMAT, "meta": meta, "algo": algo}
    with contents_left_out():
        return atomic_write(path, lambda f: torch.save(payload, f))


def load_policy(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != POLICY_FORMAT:
        raise ValueError(f"{path}: not an admbench policy file (expected format {POLICY_FORMAT})")
    rewire_after_load(state)
    return state


__all__ = ["Checkpointer", "env_state", "global_rng_state", "load_policy", "restore_env_state", "save_policy",
           "set_global_rng_state"]
