"""Records -> frames the report reads: score matrices and their rliable aggregates, per-task statistics,
learning curves, steps to fixed returns and the m ablation. Pure functions of the records frame
(:mod:`benchmark.reporting.records`); the statistics are :mod:`benchmark.reporting.stats`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rliable import metrics

from benchmark.reporting.records import finite_or_none, task_kind, task_unit, usable
from benchmark.reporting.stats import (
    METRICS,
    all_metrics,
    batched_metrics,
    batched_probability_of_improvement,
    bootstrap_indices,
    bootstrap_resamples,
    percentile_interval,
    trimmed_iqm,
)


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
    records: pd.DataFrame, candidates: Iterable[str], reps: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """P(candidate > baseline) for every candidate present against every other algorithm, on the tasks
    both finished (columns ``algo_x, algo_y, n_tasks, estimate, ci_low, ci_high``). The candidates are
    the suite's ``report.improvement_of`` (the paper's method), never named here."""
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
                    "score": finite_or_none(point.get("score")),
                    "return": finite_or_none(point.get("return_mean")),
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
            rows.append(
                {
                    "algo": algo,
                    "task": task,
                    "threshold": float(threshold),
                    "steps_mean": float(np.mean(first)) if first else float("nan"),
                    "reached": len(first),
                    "seeds": int(runs["seed"].nunique()),
                }
            )
    return pd.DataFrame(rows, columns=["algo", "task", "threshold", "steps_mean", "reached", "seeds"])


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
        point = trimmed_iqm(cube.reshape(len(steps), -1))
        (idx,) = bootstrap_indices([cube.shape[1:]], reps, seed)
        lo, hi = np.empty(len(steps)), np.empty(len(steps))
        for start in range(0, len(steps), chunk):
            block = cube[start : start + chunk]  # [steps, runs, tasks]
            resampled = block[:, idx, np.arange(len(tasks))]  # [steps, reps, runs, tasks]
            replicates = trimmed_iqm(resampled.reshape(len(block), reps, -1)).T  # [reps, steps]
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
