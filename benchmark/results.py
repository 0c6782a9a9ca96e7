"""Result store: one self-describing JSON record per run, written atomically.

Layout: ``<results>/<suite>/<algo>/<task with / as __>/seed-<n>.json``. The schema is documented in
README.md ("Result records"); :func:`validate_record` checks it for records imported from elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

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
REPO_ROOT = Path(__file__).resolve().parent.parent


class RecordError(ValueError):
    pass


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
    """Write atomically: a temp file in the same directory, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_safe(record), indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
