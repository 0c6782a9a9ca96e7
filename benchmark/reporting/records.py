"""Run records -> a pandas frame: one row per ``seed-*.json`` record, malformed files as failed rows.

Everything here is a pure function of the records. Scores are the records' ``final_score`` (normalized,
0-100 scale: the mean of the last ``final_k`` evaluations, the rule written in each record's
``final_rule``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from benchmark.results import RecordError, times_whole_run, validate_record

log = logging.getLogger(__name__)

RECORD_COLUMNS = (
    "suite",
    "algo",
    "task",
    "seed",
    "budget",
    "status",
    "reason",
    "malformed",
    "final_score",
    "final_return",
    "final_rule",
    "final_k",
    "config_hash",
    "commit",
    "commits",
    "wall_time_s",
    "cpu_time_s",
    "length",
    "n_evals",
    "curve",
    "path",
    "algo_id",
    "variant",
    "kind",
    "result",
    "versions",
    "dataset",
    "train_info",
    "setup_info",
    "time_covers",
    "timed_whole_run",
    "shared_stages",
)


def finite_or_none(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def run_length(config: dict) -> str | None:
    """What a run trained for, from its config: environment steps after the warm-up (online) or gradient
    steps (offline)."""
    if config.get("env_steps"):
        return f"{int(config['env_steps'])} env steps after {int(config.get('start_learning') or 0)} warm-up"
    if config.get("epochs") and config.get("steps_per_epoch"):
        return f"{int(config['epochs']) * int(config['steps_per_epoch'])} gradient steps"
    return None


def _identity_from_path(path: Path, root: Path, suite: str | None) -> dict:
    """Best-effort algo/task/seed/suite from ``<suite>/<algo>/<task slug>/seed-<n>.json``."""
    parts = path.relative_to(root).parts
    seed_text = path.stem.removeprefix("seed-")
    return {
        "suite": parts[-4] if len(parts) >= 4 else (suite or root.name),
        "algo": parts[-3] if len(parts) >= 3 else "?",
        "task": parts[-2].replace("__", "/") if len(parts) >= 2 else "?",
        "seed": int(seed_text) if seed_text.lstrip("-").isdigit() else -1,
    }


def _split_algo(algo: str) -> tuple[str, str]:
    """``"admpo-off@m=2"`` -> ``("admpo-off", "m=2")``: the runner names ablation variants this way."""
    algo_id, _, variant = algo.partition("@")
    return algo_id, variant


def _kind(record_or_algo) -> str:
    """``analysis`` for analysis-job records (``algo = "analysis-<name>"``), else ``run``."""
    if isinstance(record_or_algo, dict):
        if record_or_algo.get("analysis"):
            return "analysis"
        record_or_algo = record_or_algo.get("algo", "")
    return "analysis" if str(record_or_algo).startswith("analysis-") else "run"


def _row_from_file(path: Path, root: Path, suite: str | None) -> dict:
    ident = _identity_from_path(path, root, suite)
    algo_id, variant = _split_algo(ident["algo"])
    try:
        record = json.loads(path.read_text())
        validate_record(record, str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecordError) as e:
        reason = str(e) if isinstance(e, RecordError) else f"{path}: unreadable record ({e})"
        log.warning("malformed record reported as failed: %s", reason)
        return {
            **ident,
            "status": "failed",
            "reason": f"malformed record: {reason}",
            "malformed": True,
            "budget": None,
            "final_score": None,
            "final_return": None,
            "final_rule": None,
            "final_k": None,
            "config_hash": None,
            "commit": None,
            "commits": None,
            "wall_time_s": None,
            "n_evals": 0,
            "curve": [],
            "path": str(path),
            "algo_id": algo_id,
            "variant": variant,
            "kind": _kind(ident["algo"]),
            "result": None,
            "versions": None,
            "dataset": None,
            "cpu_time_s": None,
            "length": None,
            "train_info": None,
            "setup_info": None,
            "time_covers": None,
            "timed_whole_run": None,
            "shared_stages": None,
        }
    config = record.get("config") or {}
    algo_id, variant = _split_algo(record["algo"])
    return {
        "suite": record.get("suite") or ident["suite"],
        "algo": record["algo"],
        "task": record["task"],
        "seed": int(record["seed"]),
        "budget": record["budget"],
        "status": record["status"],
        "reason": record.get("reason"),
        "malformed": False,
        "final_score": finite_or_none(record.get("final_score")),
        "final_return": finite_or_none(record.get("final_return")),
        "final_rule": record.get("final_rule"),
        "final_k": config.get("final_k"),
        "config_hash": record.get("config_hash"),
        "commit": record["commit"],
        # every commit whose code produced part of the result (a run resumed under newer code)
        "commits": list(record.get("commits") or [record["commit"]]),
        "wall_time_s": float(record["wall_time_s"]),
        "cpu_time_s": finite_or_none(record.get("cpu_time_s")),
        "length": run_length(config),
        "n_evals": len(record["curve"]),
        "curve": record["curve"],
        "path": str(path),
        "algo_id": record.get("algo_id") or algo_id,
        "variant": record.get("variant") or variant,
        "kind": _kind(record),
        "result": record.get("result"),
        "versions": record.get("versions"),
        "dataset": record.get("dataset"),
        "train_info": record.get("train_info"),
        "setup_info": record.get("setup_info"),
        "time_covers": record.get("time_covers"),
        "timed_whole_run": times_whole_run(record),  # False: its times are a lower bound
        "shared_stages": record.get("shared_stages"),  # analysis stages loaded from another job's fit
    }


def load_records(results_dir: Path, suite: str | None = None) -> pd.DataFrame:
    """One row per ``seed-*.json`` record under ``results_dir`` (columns :data:`RECORD_COLUMNS`).

    With ``suite``, reads ``results_dir/suite`` when it exists, otherwise ``results_dir`` keeping
    records whose ``suite`` is ``suite``. A file that is not valid JSON or breaks the record schema is
    a row with ``status="failed"``, ``malformed=True`` and a ``reason`` naming the file: one bad file
    never stops a report. Rows are sorted (algo, task, seed, path), so frames are reproducible.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results directory {results_dir} does not exist")
    root, filter_suite = results_dir, suite
    if suite is not None and (results_dir / suite).is_dir():
        root, filter_suite = results_dir / suite, None
    rows = [_row_from_file(p, root, suite) for p in sorted(root.rglob("seed-*.json"))]
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    if filter_suite is not None:
        frame = frame[frame["suite"] == filter_suite]
    frame = frame.sort_values(["algo", "task", "seed", "path"], kind="mergesort").reset_index(drop=True)
    return frame


def runs_only(records: pd.DataFrame) -> pd.DataFrame:
    """Training-run records (drops analysis-job records, which carry a ``result`` instead of a score)."""
    return records[records["kind"] == "run"].reset_index(drop=True)


def analyses_only(records: pd.DataFrame) -> pd.DataFrame:
    return records[records["kind"] == "analysis"].reset_index(drop=True)


def usable(records: pd.DataFrame, value: str = "final_score") -> pd.DataFrame:
    """Rows of finished training runs that have a finite ``value``."""
    ok = (records["status"] == "ok") & records[value].notna() & (records["kind"] == "run")
    return records[ok]


def task_unit(records: pd.DataFrame, task: str) -> str:
    """``score`` if the task's finished runs carry normalized scores, otherwise raw ``return``."""
    rows = records[(records["task"] == task) & (records["status"] == "ok")]
    return "score" if rows["final_score"].notna().any() else "return"


def task_kind(task: str) -> str:
    """``online`` for environment tasks (``mujoco/...``), ``offline`` for dataset tasks."""
    return "online" if task.startswith("mujoco/") else "offline"
