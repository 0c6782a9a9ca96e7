"""Run records -> pandas frames -> score matrices (runs x tasks) -> rliable aggregates.

Everything here is a pure function of the records. Point estimates are rliable's metric functions.
Intervals are rliable's stratified percentile bootstrap (95%), reproduced exactly in bulk (see
:func:`bootstrap_resamples`): rliable draws its resamples from NumPy's *global* generator, so its
intervals repeat only after ``np.random.seed(seed)``; ours equal ``rly.get_interval_estimates`` called
right after ``np.random.seed(seed)``, use a private ``RandomState(seed)`` (the global state is left
alone), and restart from ``seed`` for every algorithm (or pair), so the same records give the same
numbers and one algorithm's interval does not depend on which others are present.

Scores are the records' ``final_score`` (normalized, 0-100 scale: the mean of the last ``final_k``
evaluations, the rule written in each record's ``final_rule``). The optimality gap uses
``gamma = 100`` on that scale (``100 - mean(min(score, 100))``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
from rliable import metrics

from benchmark.results import RecordError, validate_record

log = logging.getLogger(__name__)

METRICS = ("mean", "median", "iqm", "optimality_gap")
OPTIMALITY_GAP_GAMMA = 100.0  # scores are on the 0-100 normalized scale
CONFIDENCE = 0.95

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
    "wall_time_s",
    "n_evals",
    "curve",
    "path",
    "algo_id",
    "variant",
    "kind",
    "result",
    "versions",
    "dataset",
)


# ----------------------------------------------------------------------------------------------------
# Loading records
# ----------------------------------------------------------------------------------------------------


def _finite_or_none(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


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
        "final_score": _finite_or_none(record.get("final_score")),
        "final_return": _finite_or_none(record.get("final_return")),
        "final_rule": record.get("final_rule"),
        "final_k": config.get("final_k"),
        "config_hash": record.get("config_hash"),
        "commit": record["commit"],
        "wall_time_s": float(record["wall_time_s"]),
        "n_evals": len(record["curve"]),
        "curve": record["curve"],
        "path": str(path),
        "algo_id": record.get("algo_id") or algo_id,
        "variant": record.get("variant") or variant,
        "kind": _kind(record),
        "result": record.get("result"),
        "versions": record.get("versions"),
        "dataset": record.get("dataset"),
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


# ----------------------------------------------------------------------------------------------------
# Score matrices
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreMatrix:
    """``scores[run, task]`` for one algorithm; rliable needs the same number of runs on every task,
    so tasks with more seeds than the scarcest task keep their lowest seeds (``dropped`` counts the
    rest)."""

    algo: str
    tasks: tuple[str, ...]
    seeds: tuple[tuple[int, ...], ...]  # seeds used, per task
    scores: np.ndarray  # (runs, tasks)
    dropped: int

    @property
    def n_runs(self) -> int:
        return int(self.scores.shape[0])


def score_matrix(
    records: pd.DataFrame, algo: str, tasks: Iterable[str] | None = None, value: str = "final_score"
) -> ScoreMatrix | None:
    """The (runs x tasks) matrix of ``value`` for ``algo``; None if some requested task has no run."""
    rows = usable(records, value)
    rows = rows[rows["algo"] == algo]
    task_list = tuple(sorted(set(rows["task"]))) if tasks is None else tuple(tasks)
    if not task_list:
        return None
    per_task = []
    for task in task_list:
        sub = rows[rows["task"] == task].sort_values("seed", kind="mergesort")
        if sub.empty:
            return None
        per_task.append((tuple(int(s) for s in sub["seed"]), sub[value].to_numpy(dtype=float)))
    n = min(len(vals) for _, vals in per_task)
    scores = np.stack([vals[:n] for _, vals in per_task], axis=1)
    dropped = sum(len(vals) - n for _, vals in per_task)
    return ScoreMatrix(algo, task_list, tuple(seeds[:n] for seeds, _ in per_task), scores, dropped)


def common_tasks(records: pd.DataFrame, value: str = "final_score") -> tuple[str, ...]:
    """Tasks on which every algorithm with a usable run has at least one usable run."""
    rows = usable(records, value)
    sets = [set(g["task"]) for _, g in rows.groupby("algo")]
    return tuple(sorted(set.intersection(*sets))) if sets else ()


def score_matrices(
    records: pd.DataFrame, value: str = "final_score", tasks: Iterable[str] | None = None
) -> dict[str, ScoreMatrix]:
    """One matrix per algorithm. By default over :func:`common_tasks` so that aggregates compare the
    same tasks; if the algorithms share no task, each algorithm's own tasks are used instead."""
    if tasks is None:
        tasks = common_tasks(records, value) or None
    out = {}
    for algo in sorted(set(usable(records, value)["algo"])):
        m = score_matrix(records, algo, tasks=tasks, value=value)
        if m is not None:
            out[algo] = m
    return out


# ----------------------------------------------------------------------------------------------------
# Aggregate metrics with stratified-bootstrap CIs (rliable)
# ----------------------------------------------------------------------------------------------------


def optimality_gap(scores: np.ndarray) -> float:
    return metrics.aggregate_optimality_gap(scores, gamma=OPTIMALITY_GAP_GAMMA)


METRIC_FUNCS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": metrics.aggregate_mean,
    "median": metrics.aggregate_median,
    "iqm": metrics.aggregate_iqm,
    "optimality_gap": optimality_gap,
}


def all_metrics(scores: np.ndarray) -> np.ndarray:
    """The four aggregates in :data:`METRICS` order (one bootstrap serves all four)."""
    return np.array([METRIC_FUNCS[m](scores) for m in METRICS])


# The bootstrap below is rliable's, replayed in bulk. rliable's ``StratifiedBootstrap`` and
# ``StratifiedIndependentBootstrap`` draw, for every replicate and every score array in turn,
# ``np.random.choice(n_runs, (n_runs, n_tasks))`` from NumPy's global generator, evaluate the metric on
# ``scores[idx, task]``, and take ``np.percentile`` of the replicates (arch's "percentile" interval).
# Drawing the same indices in the same order and evaluating the metric on all replicates at once gives
# the same intervals as ``rly.get_interval_estimates`` after ``np.random.seed(seed)`` (the tests check
# this against direct rliable calls) in a fraction of the time: the per-replicate Python calls, above
# all probability of improvement's per-task Mann-Whitney U, made a 10-algorithm report take minutes.


def bootstrap_indices(shapes: Sequence[tuple[int, ...]], reps: int, seed: int) -> list[np.ndarray]:
    """rliable's run indices for arrays of the given (runs, tasks) shapes: ``[reps, runs, tasks]`` each."""
    rng = np.random.RandomState(seed)  # the same stream as the global one after np.random.seed(seed)
    indices = [np.empty((reps, *shape), dtype=np.int64) for shape in shapes]
    for rep in range(reps):
        for i, shape in enumerate(shapes):
            indices[i][rep] = rng.choice(shape[0], shape, replace=True)
    return indices


def bootstrap_resamples(arrays: Sequence[np.ndarray], reps: int, seed: int) -> list[np.ndarray]:
    """rliable's stratified (independent) resamples of each (runs, tasks) array: ``[reps, runs, tasks]``."""
    indices = bootstrap_indices([a.shape for a in arrays], reps, seed)
    return [a[idx, np.arange(a.shape[1])] for a, idx in zip(arrays, indices)]


def percentile_interval(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the 95% percentile interval over axis 0, as arch computes them."""
    alpha = 100 * (1.0 - CONFIDENCE) / 2.0
    reps = replicates.reshape(len(replicates), -1)
    ends = np.array([np.percentile(reps[:, i], [alpha, 100.0 - alpha]) for i in range(reps.shape[1])])
    return ends[:, 0], ends[:, 1]


def batched_metrics(resampled: np.ndarray) -> np.ndarray:
    """:func:`all_metrics` of every replicate of ``resampled[rep, run, task]``: ``[reps, 4]``."""
    task_means = resampled.mean(axis=1)
    flat = resampled.reshape(len(resampled), -1)
    return np.stack(
        [
            task_means.mean(axis=1),
            np.median(task_means, axis=1),
            scipy.stats.trim_mean(flat, proportiontocut=0.25, axis=1),
            OPTIMALITY_GAP_GAMMA - np.minimum(flat, OPTIMALITY_GAP_GAMMA).mean(axis=1),
        ],
        axis=1,
    )


def batched_probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rliable's probability of improvement for every replicate of ``x[rep, run, task]`` and
    ``y[rep, run, task]``: per task the Mann-Whitney ``U / (n_x n_y)`` = P(x > y) + P(x = y) / 2 over all
    run pairs, averaged over tasks."""
    diff = x[:, :, None, :] - y[:, None, :, :]  # [reps, runs_x, runs_y, tasks]
    per_task = (diff > 0).mean(axis=(1, 2)) + 0.5 * (diff == 0).mean(axis=(1, 2))
    return per_task.mean(axis=1)


def aggregate_metrics(matrices: dict[str, ScoreMatrix], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Columns ``algo, metric, estimate, ci_low, ci_high``; each algorithm's bootstrap starts from
    ``np.random.seed(seed)``, so its interval does not depend on which other algorithms are present."""
    rows = []
    for algo in sorted(matrices):
        scores = matrices[algo].scores
        point = all_metrics(scores)
        (resampled,) = bootstrap_resamples([scores], reps, seed)
        low, high = percentile_interval(batched_metrics(resampled))
        for i, metric in enumerate(METRICS):
            rows.append(
                {
                    "algo": algo,
                    "metric": metric,
                    "estimate": float(point[i]),
                    "ci_low": float(low[i]),
                    "ci_high": float(high[i]),
                }
            )
    return pd.DataFrame(rows, columns=["algo", "metric", "estimate", "ci_low", "ci_high"])


def probability_of_improvement(
    records: pd.DataFrame,
    candidates: Iterable[str] = ("admpo-off", "admpo-on"),
    reps: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """P(candidate > baseline) for every candidate present against every other algorithm, on the tasks
    both finished (columns ``algo_x, algo_y, n_tasks, estimate, ci_low, ci_high``)."""
    rows = []
    scored = usable(records)
    algos = sorted(set(scored["algo"]))
    for x in [c for c in candidates if c in algos]:
        for y in algos:
            if y == x:
                continue
            tasks_x, tasks_y = (set(scored.loc[scored["algo"] == a, "task"]) for a in (x, y))
            common = sorted(tasks_x & tasks_y)
            if not common:
                continue
            mx, my = score_matrix(records, x, common), score_matrix(records, y, common)
            point = metrics.probability_of_improvement(mx.scores, my.scores)
            rx, ry = bootstrap_resamples([mx.scores, my.scores], reps, seed)
            low, high = percentile_interval(batched_probability_of_improvement(rx, ry))
            rows.append(
                {
                    "algo_x": x,
                    "algo_y": y,
                    "n_tasks": len(common),
                    "estimate": float(point),
                    "ci_low": float(low[0]),
                    "ci_high": float(high[0]),
                }
            )
    return pd.DataFrame(rows, columns=["algo_x", "algo_y", "n_tasks", "estimate", "ci_low", "ci_high"])


def default_taus(matrices: dict[str, ScoreMatrix]) -> np.ndarray:
    """81 thresholds from 0 to the next multiple of 10 above max(100, best score)."""
    hi = max([100.0] + [float(np.max(m.scores)) for m in matrices.values()])
    return np.linspace(0.0, math.ceil(hi / 10.0) * 10.0, 81)


def performance_profiles(
    matrices: dict[str, ScoreMatrix], taus: np.ndarray | None = None, reps: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Run-score distributions ``P(score > tau)`` with CIs, as ``rly.create_performance_profile``
    (columns ``algo, tau, fraction, ci_low, ci_high``)."""
    taus = default_taus(matrices) if taus is None else np.asarray(taus, dtype=float)
    rows = []
    for algo in sorted(matrices):
        scores = matrices[algo].scores
        profile = (scores.ravel()[None, :] > taus[:, None]).mean(axis=1)
        (resampled,) = bootstrap_resamples([scores], reps, seed)
        flat = resampled.reshape(reps, -1)
        low, high = percentile_interval((flat[:, None, :] > taus[None, :, None]).mean(axis=2))
        for i, tau in enumerate(taus):
            rows.append(
                {
                    "algo": algo,
                    "tau": float(tau),
                    "fraction": float(profile[i]),
                    "ci_low": float(low[i]),
                    "ci_high": float(high[i]),
                }
            )
    return pd.DataFrame(rows, columns=["algo", "tau", "fraction", "ci_low", "ci_high"])


# ----------------------------------------------------------------------------------------------------
# Per-task statistics and learning curves
# ----------------------------------------------------------------------------------------------------


def task_unit(records: pd.DataFrame, task: str) -> str:
    """``score`` if the task's finished runs carry normalized scores, otherwise raw ``return``."""
    rows = records[(records["task"] == task) & (records["status"] == "ok")]
    return "score" if rows["final_score"].notna().any() else "return"


def task_kind(task: str) -> str:
    """``online`` for environment tasks (``mujoco/...``), ``offline`` for dataset tasks."""
    return "online" if task.startswith("mujoco/") else "offline"


def default_cells(records: pd.DataFrame) -> set[tuple[str, str]]:
    """(algo, task) cells a table should show when the suite's plan is unknown: every task of the kind
    (offline/online) the algorithm has records on, so a missing run shows up as a gap."""
    kinds = {a: {task_kind(t) for t in g["task"]} for a, g in records.groupby("algo")}
    tasks = set(records["task"])
    return {(a, t) for a, ks in kinds.items() for t in tasks if task_kind(t) in ks}


def per_task_stats(records: pd.DataFrame, cells: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Columns ``algo, task, n_seeds, mean, std, unit, n_failed``: mean and sample std (ddof=1) of the
    final score over finished seeds (final return where the task has no reference returns), one row per
    (algo, task) in ``cells`` (default :func:`default_cells`) plus every cell that has records. Cells
    without a usable run get ``n_seeds = 0`` and NaN, never zero."""
    wanted = set(cells) if cells is not None else default_cells(records)
    wanted |= set(zip(records["algo"], records["task"]))
    rows = []
    for algo, task in sorted(wanted, key=lambda c: (c[1], c[0])):
        unit = task_unit(records, task)
        value = "final_score" if unit == "score" else "final_return"
        sub = records[(records["algo"] == algo) & (records["task"] == task)]
        vals = sub.loc[(sub["status"] == "ok") & sub[value].notna(), value].to_numpy(dtype=float)
        n_failed = int(len(sub) - len(vals))
        mean = float(np.mean(vals)) if len(vals) else float("nan")
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
        rows.append(
            {
                "algo": algo,
                "task": task,
                "n_seeds": int(len(vals)),
                "mean": mean,
                "std": std,
                "unit": unit,
                "n_failed": n_failed,
            }
        )
    return pd.DataFrame(rows, columns=["algo", "task", "n_seeds", "mean", "std", "unit", "n_failed"])


def curves_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Long frame of every evaluation of finished runs: ``algo, task, seed, step, score, return``."""
    rows = []
    for rec in records[records["status"] == "ok"].itertuples(index=False):
        for point in rec.curve:
            rows.append(
                {
                    "algo": rec.algo,
                    "task": rec.task,
                    "seed": int(rec.seed),
                    "step": int(point["step"]),
                    "score": _finite_or_none(point.get("score")),
                    "return": _finite_or_none(point.get("return_mean")),
                }
            )
    frame = pd.DataFrame(rows, columns=["algo", "task", "seed", "step", "score", "return"])
    frame[["score", "return"]] = frame[["score", "return"]].astype(float)
    return frame


def steps_to_return(curves: pd.DataFrame, thresholds: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Env steps each run needs to reach fixed returns (how the paper's "faster learning" is measured):
    per (algo, task, threshold), the first evaluation step whose return is >= the threshold, averaged over
    the seeds that reached it; ``reached``/``seeds`` say how many did. ``thresholds`` maps task -> returns."""
    rows = []
    for (algo, task), runs in curves.groupby(["algo", "task"], sort=True):
        for threshold in thresholds.get(task, ()):
            first = []
            for _, run in runs.groupby("seed"):
                hit = run.sort_values("step")
                hit = hit[hit["return"] >= threshold]
                if len(hit):
                    first.append(int(hit["step"].iloc[0]))
            rows.append({"algo": algo, "task": task, "threshold": float(threshold),
                         "steps_mean": float(np.mean(first)) if first else float("nan"),
                         "reached": len(first), "seeds": int(runs["seed"].nunique())})
    return pd.DataFrame(rows, columns=["algo", "task", "threshold", "steps_mean", "reached", "seeds"])


def _trimmed_iqm(values: np.ndarray) -> np.ndarray:
    """IQM over the last axis, exactly ``scipy.stats.trim_mean(..., 0.25)`` as rliable computes it."""
    return scipy.stats.trim_mean(values, proportiontocut=0.25, axis=-1)


def iqm_curve(
    curves: pd.DataFrame, value: str = "score", reps: int = 2000, seed: int = 0, chunk: int = 8
) -> pd.DataFrame:
    """IQM over runs x tasks at each evaluation step, per algorithm, with stratified-bootstrap CIs.

    Uses only steps every run of the algorithm evaluated at, and the lowest ``n`` seeds per task
    (``n`` = the scarcest task's count), as :func:`score_matrix` does. Every step uses the same
    rliable bootstrap indices (:func:`bootstrap_indices`), so each step's interval equals
    ``rly.get_interval_estimates`` of that step's matrix after ``np.random.seed(seed)``. Columns
    ``algo, step, iqm, ci_low, ci_high, n_runs, n_tasks``.
    """
    rows = []
    data = curves.dropna(subset=[value])
    for algo in sorted(set(data["algo"])):
        sub = data[data["algo"] == algo]
        runs = sub.groupby(["task", "seed"])["step"].apply(set)
        steps = sorted(set.intersection(*runs.tolist())) if len(runs) else []
        if not steps:
            continue
        tasks = sorted(set(sub["task"]))
        seeds = {t: sorted(set(sub[sub["task"] == t]["seed"])) for t in tasks}
        n = min(len(s) for s in seeds.values())
        cube = np.empty((len(steps), n, len(tasks)))  # cube[step, run, task]
        for j, task in enumerate(tasks):
            pivot = sub[sub["task"] == task].pivot_table(
                index="step", columns="seed", values=value, aggfunc="last"
            )
            cube[:, :, j] = pivot.loc[steps, seeds[task][:n]].to_numpy(dtype=float)
        point = _trimmed_iqm(cube.reshape(len(steps), -1))
        (idx,) = bootstrap_indices([cube.shape[1:]], reps, seed)
        lo, hi = np.empty(len(steps)), np.empty(len(steps))
        for start in range(0, len(steps), chunk):
            block = cube[start : start + chunk]  # [steps, runs, tasks]
            resampled = block[:, idx, np.arange(len(tasks))]  # [steps, reps, runs, tasks]
            replicates = _trimmed_iqm(resampled.reshape(len(block), reps, -1)).T  # [reps, steps]
            lo[start : start + chunk], hi[start : start + chunk] = percentile_interval(replicates)
        n_tasks = len(tasks)
        for i, step in enumerate(steps):
            rows.append(
                {
                    "algo": algo,
                    "step": int(step),
                    "iqm": float(point[i]),
                    "ci_low": float(lo[i]),
                    "ci_high": float(hi[i]),
                    "n_runs": n,
                    "n_tasks": n_tasks,
                }
            )
    return pd.DataFrame(rows, columns=["algo", "step", "iqm", "ci_low", "ci_high", "n_runs", "n_tasks"])


# ----------------------------------------------------------------------------------------------------
# Ablations and analysis records
# ----------------------------------------------------------------------------------------------------

M_VARIANT = re.compile(r"(?:^|[,;])m=(\d+)(?:$|[,;])")


def m_ablation_frame(records: pd.DataFrame, value: str = "final_score") -> pd.DataFrame:
    """Runs whose variant sets ``m=<int>`` (the ablation suite stores ``admpo-off@m=5``): columns
    ``algo_id, task, seed, m, score``."""
    rows = usable(records, value)
    out = []
    for rec in rows.itertuples(index=False):
        hit = M_VARIANT.search(str(rec.variant or ""))
        if hit:
            out.append(
                {
                    "algo_id": rec.algo_id,
                    "task": rec.task,
                    "seed": int(rec.seed),
                    "m": int(hit.group(1)),
                    "score": float(getattr(rec, value)),
                }
            )
    frame = pd.DataFrame(out, columns=["algo_id", "task", "seed", "m", "score"])
    return frame.sort_values(["algo_id", "task", "m", "seed"], kind="mergesort").reset_index(drop=True)


# What the report reads from analysis records' ``result`` (``adm.analysis.run_analysis``):
# - compounding-error: ``{"horizons": [1..H], "models": {name: {"mean": [H], "std": [H], "overflow": [H]}}}``
#   (mean/std over held-out starts per rollout length; overflow = fraction of starts that overflowed);
# - uncertainty: ``{"points": [{"model", "source", "uncertainty", "error"}, ...], "correlations":
#   [{"model", "source", "pearson", "spearman", "n"}, ...]}`` (correlations over all points, the stored
#   points being a subsample).
# A plain table under ``rows``/``points``/``data`` (list of row dicts or dict of columns) with the
# columns of ANALYSIS_COLUMNS (aliases accepted) works for both. Scalar string/number entries and
# dicts of strings (metric, protocol, uncertainty definitions ...) are shown in the report as stated.
ANALYSIS_COLUMNS: dict[str, tuple[str, ...]] = {
    "compounding-error": ("model", "rollout_length", "error"),
    "uncertainty": ("model", "source", "uncertainty", "error"),
}
ANALYSIS_ALIASES: dict[str, tuple[str, ...]] = {
    "rollout_length": ("length", "horizon", "h", "step", "k"),
    "error": ("mse", "model_error", "compounding_error"),
    "uncertainty": ("model_uncertainty", "u"),
    "source": ("policy", "rollout_policy"),
}
_PER_RECORD_FIELDS = {"task", "seed", "budget", "analysis"}  # vary per record: not protocol statements


def _result_table(result) -> pd.DataFrame | None:
    if isinstance(result, dict) and isinstance(result.get("models"), dict) and "horizons" in result:
        horizons = list(result["horizons"])
        rows = []
        for model, curve in sorted(result["models"].items()):
            if not isinstance(curve, dict) or len(curve.get("mean") or []) != len(horizons):
                continue
            overflow = curve.get("overflow") or [None] * len(horizons)
            for h, err, over in zip(horizons, curve["mean"], overflow):
                rows.append({"model": model, "rollout_length": h, "error": err, "overflow_fraction": over})
        if rows:
            return pd.DataFrame(rows)
    table = result
    if isinstance(result, dict):
        table = next((result[k] for k in ("rows", "points", "data") if k in result), None)
    if isinstance(table, list) and table and isinstance(table[0], dict):
        return pd.DataFrame(table)
    if isinstance(table, dict) and table and all(isinstance(v, list) for v in table.values()):
        lengths = {len(v) for v in table.values()}
        return pd.DataFrame(table) if len(lengths) == 1 else None
    return None


def _stated_fields(result: dict, stated: dict[str, list[str]]) -> None:
    for key, val in sorted(result.items()):
        if key in _PER_RECORD_FIELDS:
            continue
        if isinstance(val, str | int | float) and not isinstance(val, bool):
            items = [(key, str(val))]
        elif isinstance(val, dict) and val and all(isinstance(v, str) for v in val.values()):
            items = [(f"{key}[{k}]", v) for k, v in sorted(val.items())]
        else:
            continue
        for k, v in items:
            stated.setdefault(k, [])
            if v not in stated[k]:
                stated[k].append(v)


def analysis_frame(records: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[str], dict[str, list[str]]]:
    """Rows of every finished ``analysis-<name>`` record with ``task`` and ``seed`` added.

    Returns ``(frame, problems, stated)``: ``problems`` names records whose ``result`` lacks the
    columns of :data:`ANALYSIS_COLUMNS`; ``stated`` collects their protocol fields (metric, protocol,
    definitions), each with its distinct values.
    """
    required = ANALYSIS_COLUMNS.get(name, ())
    rows = records[(records["algo"] == f"analysis-{name}") & (records["status"] == "ok")]
    frames, problems, stated = [], [], {}
    for rec in rows.itertuples(index=False):
        table = _result_table(rec.result)
        if table is None:
            problems.append(
                f"{rec.path}: `result` has no per-model curves and no table under rows/points/data"
            )
            continue
        for canonical, aliases in ANALYSIS_ALIASES.items():
            if canonical not in table:
                alias = next((a for a in aliases if a in table), None)
                if alias is not None:
                    table = table.rename(columns={alias: canonical})
        missing = [c for c in required if c not in table]
        if missing:
            problems.append(f"{rec.path}: `result` table lacks columns {missing}")
            continue
        if isinstance(rec.result, dict):
            _stated_fields(rec.result, stated)
        frames.append(table.assign(task=rec.task, seed=int(rec.seed)))
    frame = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*required, "task", "seed"])
    )
    for col in ("rollout_length", "error", "uncertainty", "overflow_fraction"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame, problems, stated


def recorded_correlations(records: pd.DataFrame, name: str = "uncertainty") -> pd.DataFrame:
    """The correlations the analysis computed over *all* its points (``result["correlations"]``):
    columns ``task, seed, model, source, pearson, spearman, n``; empty when no record has them."""
    rows = []
    finished = records[(records["algo"] == f"analysis-{name}") & (records["status"] == "ok")]
    for rec in finished.itertuples(index=False):
        entries = rec.result.get("correlations") if isinstance(rec.result, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and "model" in entry:
                rows.append(
                    {
                        "task": rec.task,
                        "seed": int(rec.seed),
                        "model": str(entry["model"]),
                        "source": str(entry.get("source", "all")),
                        "pearson": _finite_or_none(entry.get("pearson")),
                        "spearman": _finite_or_none(entry.get("spearman")),
                        "n": entry.get("n"),
                    }
                )
    frame = pd.DataFrame(rows, columns=["task", "seed", "model", "source", "pearson", "spearman", "n"])
    frame[["pearson", "spearman"]] = frame[["pearson", "spearman"]].astype(float)
    return frame
