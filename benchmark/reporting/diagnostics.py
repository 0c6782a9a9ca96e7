"""Did each method learn at this budget, and if not, what its training looked like (issue 20's rule: a
method that does not learn is reported with its diagnostics, never rescued by tuning its budget).

Per (algorithm, task), over the finished seeds: the first evaluation (the untrained policy after any
warm-up or pre-training), the best and the final score, a plain reading of the three, and the run's last
training diagnostics (Q-value, critic loss, policy entropy, model holdout error, rollout reward) as the
records store them (``train_info``, ``setup_info``, the last curve point).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.reporting.output import ReportOutput
from benchmark.reporting.tables import markdown_table

MODEL_COLUMN = "model holdout MSE"  # its note (MODEL_METRIC_NOTE) goes under the table when it is shown
# what a run stores -> the column it fills (first key found wins: algorithms name their metrics differently)
DIAGNOSTIC_KEYS: dict[str, tuple[str, ...]] = {
    "policy loss": ("actor_loss", "train/actor_loss", "bc_loss"),
    "Q mean": ("q_mean", "train/q_mean"),
    "critic loss": ("critic_loss", "train/critic_loss"),
    "entropy": ("entropy", "train/entropy"),
    MODEL_COLUMN: ("model/holdout_mse", "dynamics/holdout_mse", "model_holdout_mse"),
    "rollout reward": ("rollout/reward_mean", "rollout/reward", "train/rollout/reward_mean"),
}
# the model column holds each method's own validation metric, which differ in kind
MODEL_METRIC_NOTE = (
    "*model holdout MSE* is each method's own model-validation metric, so it compares seeds of one method, "
    "not methods: an ensemble's (MBPO, MOPO and kin) is the one-step error of its elite members; ADM's "
    "(ADMPO) is the mean over backtracking lengths k = 1..m of its k-step errors, which grow with k.\n"
)
# the reading's thresholds (ours): a gain under 10% of the first evaluation's score (or 1 point) is "no
# gain"; a final score under half the best one is "fell back"
MIN_GAIN_FRACTION, MIN_GAIN_POINTS, FELL_BACK_FRACTION = 0.10, 1.0, 0.5
# "best" is the best mean of this many consecutive evaluations: one lucky set of episodes is not a peak
BEST_WINDOW = 3


def reading(first: float, best: float, final: float) -> str:
    """``learned``, ``no gain over its first evaluation`` or ``peaked at X, then fell back`` (scores are the
    means over seeds)."""
    if any(math.isnan(v) for v in (first, best, final)):
        return "no evaluation"
    gain = final - first
    min_gain = max(MIN_GAIN_POINTS, MIN_GAIN_FRACTION * abs(first))
    if final < FELL_BACK_FRACTION * best and best - first > min_gain:
        return f"peaked at {best:.1f}, then fell back"
    if gain <= min_gain:
        return "no gain over its first evaluation"
    return "learned"


def _score(point: dict) -> float:
    value = point.get("score")
    return float(value) if isinstance(value, (int, float)) else math.nan


def best_window_mean(scores: list[float], window: int = BEST_WINDOW) -> float:
    """The best mean of ``window`` consecutive evaluations (all of them if the curve is shorter)."""
    values = np.asarray(scores, dtype=float)
    window = min(window, len(values))
    if window == 0:
        return math.nan
    return float(np.max(np.convolve(values, np.ones(window) / window, mode="valid")))


def _diagnostic(run, keys: tuple[str, ...]) -> float:
    """The first of ``keys`` in the run's final train_info, setup_info or last curve point (NaN if none)."""
    last = run.curve[-1] if run.curve else {}
    for source in (run.train_info or {}, run.setup_info or {}, last):
        for key in keys:
            value = source.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
    return math.nan


def diagnostics_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (algo, task): seeds, first/best/final score means, the reading and the diagnostics."""
    rows = []
    ok = runs[(runs["status"] == "ok") & runs["curve"].map(bool)]
    for (algo, task), group in ok.groupby(["algo", "task"], sort=True):
        first = np.mean([_score(c[0]) for c in group["curve"]])
        best = np.mean([best_window_mean([_score(p) for p in c]) for c in group["curve"]])
        final = float(pd.to_numeric(group["final_score"], errors="coerce").mean())
        row = {"algo": algo, "task": task, "seeds": len(group), "first": float(first), "best": float(best),
               "final": final, "reading": reading(float(first), float(best), final)}
        for column, keys in DIAGNOSTIC_KEYS.items():
            values = [v for r in group.itertuples(index=False) if not math.isnan(v := _diagnostic(r, keys))]
            row[column] = float(np.mean(values)) if values else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["algo", "task", "seeds", "first", "best", "final", "reading",
                                       *DIAGNOSTIC_KEYS])


def _cell(value: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def diagnostics_section(out: ReportOutput, runs: pd.DataFrame) -> list[str]:
    frame = diagnostics_frame(runs)
    if frame.empty:
        return []
    out.csv(frame, "diagnostics.csv")
    shown = [c for c in DIAGNOSTIC_KEYS if frame[c].notna().any()]
    header = ["algo", "task", "seeds", "first eval", "best eval", "final", "reading", *shown]
    rows = [[r["algo"], r["task"], str(r["seeds"]), f"{r['first']:.1f}", f"{r['best']:.1f}",
             f"{r['final']:.1f}", r["reading"], *[_cell(r[c]) for c in shown]]
            for _, r in frame.iterrows()]
    flagged = frame[frame["reading"] != "learned"]
    lines = [
        "## Did each method learn at this budget? (ours)\n",
        "Normalized scores, means over the finished seeds: the first evaluation (online: the policy right "
        "after the warm-up; offline: after the first epoch), the best mean of "
        f"{BEST_WINDOW} consecutive evaluations and the final score. Reading (our rule): "
        f"*no gain* when the final score is within max({MIN_GAIN_POINTS:g} point, "
        f"{MIN_GAIN_FRACTION:.0%}) of the first evaluation; *fell back* when it ends under "
        f"{FELL_BACK_FRACTION:.0%} of its best. The diagnostics are the runs' last training values (their "
        "mean over seeds); the budget is not tuned per method.\n",
        markdown_table(header, rows, align="llrrrrl" + "r" * len(shown)),
    ]
    if MODEL_COLUMN in shown:
        lines.append(MODEL_METRIC_NOTE)
    if len(flagged):
        names = ", ".join(f"{r.algo} ({r.reading})" for r in flagged.itertuples(index=False))
        lines.append(f"Flagged by the rule above (not learning, or not keeping what it learned, at this "
                     f"budget): {names}.\n")
    return lines
