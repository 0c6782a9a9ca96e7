"""Result store: one self-describing JSON record per run, written atomically.

Layout: ``<results>/<suite>/<algo>/<task with / as __>/seed-<n>.json``. The schema is documented in
README.md ("Result records"); :func:`validate_record` checks it for records imported from elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write_text, default_mode

SCHEMA = "admbench.record/1"
REQUIRED_FIELDS = {
    "algo": str,
    "task": str,
    "seed": int,
    "budget": str,
    "config": dict,
    "versions": dict,
    "commit": str,
    "wall_time_s": (int, float),
    "status": str,
    "curve": list,
}
CURVE_FIELDS = ("step", "return_mean", "return_std", "score")
# a resumed run's `time_covers` when its wall/CPU times include the segments before the resume
WHOLE_RUN = "the whole run, across resumes"


def times_whole_run(record: dict) -> bool:
    """Whether a record's wall and CPU times cover its whole run: its ``time_covers`` says so, or it has
    none and never resumed (a resumed record older than ``time_covers`` timed its last segment only)."""
    covers = record.get("time_covers")
    return covers == WHOLE_RUN if covers is not None else record.get("resumed_from") is None


REPO_ROOT = Path(__file__).resolve().parent.parent


class RecordError(ValueError):
    pass


class RunBusy(RuntimeError):
    """Another live process holds the run's claim (see :func:`claim_run`)."""

    def __init__(self, path: Path, owner: str):
        self.path, self.owner = path, owner
        super().__init__(f"{path} is being produced by {owner}; skipped here")


def record_path(results_dir: Path, suite: str, algo: str, task: str, seed: int) -> Path:
    return Path(results_dir) / suite / algo / task.replace("/", "__") / f"seed-{seed}.json"


def _json_safe(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def write_record(path: Path, record: dict) -> Path:
    """Write atomically (:func:`benchmark.atomic.atomic_write_text`: temp file, fsync, rename), mode 0644."""
    text = json.dumps(_json_safe(record), indent=1, sort_keys=True)
    return atomic_write_text(path, text + "\n")


def lock_path(path: Path) -> Path:
    """The claim file of a record path (hidden, beside the record; never matches ``seed-*.json``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def claim_run(path: Path):
    """Hold the exclusive claim on producing the record at ``path``, or raise :class:`RunBusy`.

    The claim is an ``flock`` on a lock file beside the record, whose text names the owner (pid@host,
    start time) for the message another process prints. The kernel drops an flock when its process dies
    (kill -9, OOM), so a stale claim cannot outlive its owner; on network file systems flock maps to the
    server's byte-range locks. The lock file is removed on release."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, default_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunBusy(Path(path), owner) from None
        try:  # the file we locked may have been unlinked by its previous owner between open and flock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}Z\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # closing releases the flock


def is_finished(record: dict | None) -> bool:
    """An ``ok`` record with a finite final value: the only kind ``reproduce`` takes as done. (A run with a
    NaN, inf or missing final score is recorded ``failed`` by the runner; this also guards records written
    by older versions or by hand.)"""
    if not isinstance(record, dict) or record.get("status") != "ok":
        return False
    if record.get("schema", SCHEMA) != SCHEMA:  # analysis records carry a result, not a score
        return isinstance(record.get("result"), dict)
    def finite(v):
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    if not finite(record.get("final_return")):
        return False
    if record.get("final_score") is None:  # only tasks without a normalizer have no score at all
        return not any(p.get("score") is not None for p in record.get("curve") or [] if isinstance(p, dict))
    return finite(record["final_score"])


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e})") from None
    validate_record(record, str(path))
    return record


def validate_record(record: dict, where: str = "record") -> None:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record must be a JSON object")
    for key, tp in REQUIRED_FIELDS.items():
        if key not in record:
            raise RecordError(f"{where}: missing field {key!r}")
        if not isinstance(record[key], tp):
            raise RecordError(f"{where}: field {key!r} has type {type(record[key]).__name__}")
    if record["status"] not in ("ok", "failed"):
        raise RecordError(f"{where}: status must be 'ok' or 'failed', got {record['status']!r}")
    for i, point in enumerate(record["curve"]):
        missing = [k for k in CURVE_FIELDS if k not in point]
        if missing:
            raise RecordError(f"{where}: curve[{i}] is missing {missing}")


def final_value(curve: list[dict], key: str, k: int) -> float | None:
    """The documented rule: mean of ``key`` over the last ``k`` evaluations (None if unavailable)."""
    vals = [p.get(key) for p in curve[-k:]] if curve else []
    vals = [v for v in vals if v is not None]
    return float(sum(vals) / len(vals)) if vals else None


def versions() -> dict[str, str]:
    import gymnasium
    import mujoco
    import numpy
    import torch

    from benchmark import __version__

    return {
        "admbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        "platform": f"{platform.system()}-{platform.machine()}",
        "cpu": cpu_model(),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        # results/ and reports/ are outputs, not code: rewriting a committed record must not make the
        # next record "-dirty"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results", ":!reports"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
