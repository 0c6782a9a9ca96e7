"""Statistics on ``(runs x tasks)`` score arrays, as rliable computes them: array functions only.

Point estimates are rliable's metric functions. Intervals are rliable's stratified percentile bootstrap
(95%), reproduced exactly in bulk (see :func:`bootstrap_resamples`): rliable draws its resamples from
NumPy's *global* generator, so its intervals repeat only after ``np.random.seed(seed)``; ours equal
``rly.get_interval_estimates`` called right after ``np.random.seed(seed)``, use a private
``RandomState(seed)`` (the global state is left alone), and restart from ``seed`` for every algorithm (or
pair), so the same records give the same numbers and one algorithm's interval does not depend on which
others are present.

Scores are on the 0-100 normalized scale; the optimality gap uses ``gamma = 100`` on that scale
(``100 - mean(min(score, 100))``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.stats
from rliable import metrics

METRICS = ("mean", "median", "iqm", "optimality_gap")
OPTIMALITY_GAP_GAMMA = 100.0  # scores are on the 0-100 normalized scale
CONFIDENCE = 0.95


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


def trimmed_iqm(values: np.ndarray) -> np.ndarray:
    """IQM over the last axis, exactly ``scipy.stats.trim_mean(..., 0.25)`` as rliable computes it."""
    return scipy.stats.trim_mean(values, proportiontocut=0.25, axis=-1)


def mean_interval(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (one number per seed) with its 95% percentile-bootstrap
    interval over seeds (the same resampling as the score intervals, one task). Non-finite values are
    dropped; NaNs when none is left. With 3 seeds the interval is coarse: it can only span the seeds'
    own means of 3 draws, so it says how far apart the seeds are, not much more."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    (resampled,) = bootstrap_resamples([values.reshape(-1, 1)], reps, seed)
    low, high = percentile_interval(resampled.mean(axis=1))
    return float(values.mean()), float(low[0]), float(high[0])


def correlations(frame: pd.DataFrame, x: str = "uncertainty", y: str = "error") -> tuple[float, float]:
    """(Pearson r, Spearman rho) of two columns over finite rows; NaN when undefined."""
    data = frame[[x, y]].astype(float)
    data = data[np.isfinite(data).all(axis=1)]
    if len(data) < 2 or data[x].nunique() < 2 or data[y].nunique() < 2:
        return float("nan"), float("nan")
    return (
        float(scipy.stats.pearsonr(data[x], data[y])[0]),
        float(scipy.stats.spearmanr(data[x], data[y])[0]),
    )
