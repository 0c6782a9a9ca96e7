"""Figures as pure functions: pandas frames in, a matplotlib ``Figure`` out (no pyplot state).

Each function documents the columns it reads, so the analysis code (compounding error, uncertainty,
ablations, online curves) can call them directly. :func:`save_figure` writes a PNG; figures are drawn
on ``matplotlib.figure.Figure`` objects, so nothing leaks between calls and no display is needed.
Algorithms named in ``highlight`` (the suite's ``report.highlight``: the paper's method) are drawn with a
thicker line; no algorithm is named here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.colors
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from benchmark.metrics import read_metrics
from benchmark.reporting.stats import correlations

STYLE = "whitegrid"
METRIC_TITLES = {"mean": "Mean", "median": "Median", "iqm": "IQM", "optimality_gap": "Optimality gap"}


def algo_palette(algos: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per algorithm (sorted names -> tab10/husl), the same in every figure."""
    names = sorted(set(algos))
    colours = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colours))


def save_figure(fig: Figure, path: Path, dpi: int = 110, tight: bool = False) -> Path:
    """``tight``: grow the image to take in artists placed outside the figure (a caption below it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software"/date metadata: the same data gives the same bytes.
    fig.savefig(path, dpi=dpi, metadata={"Software": None}, **({"bbox_inches": "tight"} if tight else {}))
    return path


def _grid(n_panels: int, ncols: int = 4, size: tuple[float, float] = (4.0, 3.0)):
    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    with sns.axes_style(STYLE):
        # at least 6.5 inches wide, so titles and the legend row fit when there is a single panel
        fig = Figure(figsize=(max(6.5, size[0] * ncols), max(4.0, size[1] * nrows + 0.8)))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _move_legend_entries(ax, handles: list, labels: list) -> None:
    """Take the panel's legend entries into the figure's shared ones (each label once); drop its legend."""
    for h, lab in zip(*ax.get_legend_handles_labels()):
        if lab not in labels:
            handles.append(h)
            labels.append(lab)
    if ax.get_legend() is not None:
        ax.get_legend().remove()


def _legend_below(fig: Figure, handles, labels) -> float:
    """One legend for all panels, under them; returns the figure fraction it takes (for the
    ``rect`` of ``tight_layout``), so a long legend of many rows is never cut off."""
    if not handles:
        return 0.0
    ncol = max(1, min(len(labels), 6, int(fig.get_figwidth() / 1.4)))
    rows = math.ceil(len(labels) / ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return min(0.5, (0.15 + 0.28 * rows) / fig.get_figheight())


# ----------------------------------------------------------------------------------------------------
# rliable figures
# ----------------------------------------------------------------------------------------------------


def interval_estimates_figure(
    aggregates: pd.DataFrame, metrics: Sequence[str] = tuple(METRIC_TITLES), xlabel: str = "Normalized score"
) -> Figure:
    """rliable-style interval plot. Reads ``algo, metric, estimate, ci_low, ci_high``; one panel per
    metric, one row per algorithm: a bar spanning the 95% CI and a tick at the point estimate."""
    present = [m for m in metrics if m in set(aggregates["metric"])]
    algos = sorted(set(aggregates["algo"]))
    palette = algo_palette(algos)
    fig, axes = _grid(len(present), ncols=4, size=(3.4, 0.45 * len(algos) + 1.2))
    for ax, metric in zip(axes, present):
        sub = aggregates[aggregates["metric"] == metric].set_index("algo")
        for y, algo in enumerate(algos):
            if algo not in sub.index:
                continue
            row = sub.loc[algo]
            ax.barh(
                y,
                row["ci_high"] - row["ci_low"],
                left=row["ci_low"],
                height=0.6,
                color=palette[algo],
                alpha=0.75,
            )
            ax.vlines(row["estimate"], y - 0.3, y + 0.3, color="black", linewidth=1.5)
        ax.set_yticks(range(len(algos)))
        ax.set_yticklabels(algos if ax is axes[0] else [])
        ax.set_ylim(-0.6, len(algos) - 0.4)
        ax.invert_yaxis()
        ax.set_title(METRIC_TITLES.get(metric, metric))
        ax.set_xlabel(xlabel)
    fig.suptitle("Aggregate metrics (95% stratified-bootstrap CIs)")
    fig.tight_layout()
    return fig


def _band(ax, x, y, low, high, colour, label: str, linewidth: float, edge: float | None = None) -> None:
    """One algorithm's line with its shaded band (a CI or ±1 standard error)."""
    ax.plot(x, y, color=colour, label=label, linewidth=linewidth)
    ax.fill_between(x, low, high, color=colour, alpha=0.2, **({} if edge is None else {"linewidth": edge}))


def _band_figure(
    frame: pd.DataFrame,
    x: str,
    y: str,
    xlabel: str,
    ylabel: str,
    title: str,
    highlight: Collection[str],
    legend_loc: str,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """One panel, one banded line per algorithm: reads ``algo, <x>, <y>, ci_low, ci_high``."""
    palette = algo_palette(frame["algo"])
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(6.0, 4.0))
        ax = fig.subplots()
    for algo in sorted(set(frame["algo"])):
        sub = frame[frame["algo"] == algo]
        width = 2.5 if algo in highlight else 1.5
        _band(ax, sub[x], sub[y], sub["ci_low"], sub["ci_high"], palette[algo], algo, width)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend(loc=legend_loc, fontsize="small")
    fig.tight_layout()
    return fig


def performance_profile_figure(
    profiles: pd.DataFrame, xlabel: str = "Normalized score (tau)", highlight: Collection[str] = ()
) -> Figure:
    """Reads ``algo, tau, fraction, ci_low, ci_high``: fraction of runs scoring above tau, CI band."""
    return _band_figure(
        profiles,
        "tau",
        "fraction",
        xlabel,
        "Fraction of runs with score > tau",
        "Performance profiles (score distributions)",
        highlight,
        legend_loc="upper right",
        ylim=(-0.02, 1.02),
    )


def probability_of_improvement_figure(poi: pd.DataFrame) -> Figure:
    """Reads ``algo_x, algo_y, estimate, ci_low, ci_high``: P(X > Y) with 95% CIs, one row per pair."""
    labels = [f"P({x} > {y})" for x, y in zip(poi["algo_x"], poi["algo_y"])]
    palette = algo_palette(poi["algo_y"])
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(6.0, 0.45 * len(poi) + 1.4))
        ax = fig.subplots()
    for i, row in enumerate(poi.itertuples(index=False)):
        ax.barh(
            i, row.ci_high - row.ci_low, left=row.ci_low, height=0.6, color=palette[row.algo_y], alpha=0.75
        )
        ax.vlines(row.estimate, i - 0.3, i + 0.3, color="black", linewidth=1.5)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(poi)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("Probability of improvement")
    ax.set_title("Probability of improvement (95% CIs)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------
# Learning curves
# ----------------------------------------------------------------------------------------------------


def mean_and_standard_error(data: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """``keys + [mean, se, n]`` per group; ``se`` = sample std / sqrt(n), 0 for a single seed."""
    grouped = data.groupby(keys, sort=True)[value].agg(["mean", "std", "count"]).reset_index()
    grouped["se"] = (grouped["std"] / np.sqrt(grouped["count"])).fillna(0.0)
    return grouped.rename(columns={"count": "n"}).drop(columns="std")


def learning_curves_figure(
    curves: pd.DataFrame,
    value: str = "score",
    ylabel: str | None = None,
    asymptotes: Mapping[str, float] | None = None,
    asymptote_label: str = "reference",
    highlight: Collection[str] = (),
    xlabel: str = "step",
) -> Figure:
    """One panel per task. Reads ``algo, task, seed, step, <value>``; draws the mean over seeds with a
    ±1 standard-error band (sample std / sqrt(n), as seaborn's ``errorbar="se"``; computed with one
    pandas groupby, which is much faster than seaborn on long curves). ``asymptotes`` maps task -> a
    horizontal dashed reference line named ``asymptote_label`` in the legend."""
    data = curves.dropna(subset=[value])
    tasks = sorted(set(data["task"]))
    palette = algo_palette(data["algo"])
    stats = mean_and_standard_error(data, ["task", "algo", "step"], value)
    fig, axes = _grid(max(1, len(tasks)), ncols=4)
    handles, labels = [], []
    for ax, task in zip(axes, tasks):
        sub = stats[stats["task"] == task]
        for algo in sorted(set(sub["algo"])):
            line = sub[sub["algo"] == algo]
            low, high = line["mean"] - line["se"], line["mean"] + line["se"]
            width = 2.0 if algo in highlight else 1.5
            _band(ax, line["step"], line["mean"], low, high, palette[algo], algo, width, edge=0)
        if asymptotes and task in asymptotes:
            ax.axhline(
                asymptotes[task], color="dimgray", linestyle="--", linewidth=1.2, label=asymptote_label
            )
        ax.set_title(task)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel or value)
        _move_legend_entries(ax, handles, labels)
    bottom = _legend_below(fig, handles, labels)
    fig.suptitle("Learning curves (mean ± standard error over seeds)")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def iqm_curve_figure(
    iqm: pd.DataFrame, ylabel: str = "IQM normalized score", highlight: Collection[str] = ()
) -> Figure:
    """Reads ``algo, step, iqm, ci_low, ci_high`` (from :func:`benchmark.reporting.frames.iqm_curve`)."""
    return _band_figure(
        iqm,
        "step",
        "iqm",
        "step",
        ylabel,
        "IQM over runs and tasks (95% stratified-bootstrap CIs)",
        highlight,
        legend_loc="best",
    )


def online_curves_figure(
    curves: pd.DataFrame,
    sac_asymptote: Mapping[str, float] | None = None,
    value: str = "return",
    highlight: Collection[str] = (),
    asymptote_label: str = "SAC final return (ours)",
) -> Figure:
    """The paper's Figure 3 layout: online return vs environment steps after the warm-up per task, mean ±
    standard error over seeds, with a dashed reference line where the paper draws SAC's asymptotic
    performance. Ours is our SAC runs' mean final return at the suite's budget, which is an asymptote only
    if that budget trains SAC to convergence, so the legend says what it is. Reads ``algo, task, seed,
    step, <value>``."""
    return learning_curves_figure(
        curves,
        value=value,
        ylabel="average return",
        asymptotes=sac_asymptote,
        asymptote_label=asymptote_label,
        highlight=highlight,
        xlabel="env steps after warm-up",
    )


# ----------------------------------------------------------------------------------------------------
# Analysis figures (Figure 2, Figure 4, m ablation)
# ----------------------------------------------------------------------------------------------------


def compounding_error_figure(
    errors: pd.DataFrame, x: str = "rollout_length", y: str = "error", hue: str = "model", col: str = "task",
    dashed: frozenset[str] = frozenset(),
) -> Figure:
    """The paper's Figure 2: compounding error vs rollout length (log y), one panel per ``col``; mean ±
    standard error over the other rows (seeds). Overflow (non-finite) is drawn at float32's maximum, as the
    paper does; the ``dashed`` hue values (predictors without a model: a yardstick) are drawn dashed."""
    data = errors.copy()
    overflow = np.finfo(np.float32).max
    data[y] = data[y].astype(float).where(np.isfinite(data[y].astype(float)), overflow).clip(upper=overflow)
    return log_curves_figure(data, x, y, hue, col, "rollout length", "compounding error (log scale)",
                             dashed=dashed)


def _dash(ax, handles: list, labels: list, colors: dict, dashed: frozenset[str]) -> None:
    """Dash the ``dashed`` hue values' lines (found by colour) and legend entries."""
    targets = {matplotlib.colors.to_hex(colors[name]) for name in dashed if name in colors}
    lines = [line for line in ax.get_lines() if matplotlib.colors.to_hex(line.get_color()) in targets]
    entries = [h for h, lab in zip(handles, labels) if lab in dashed and hasattr(h, "set_linestyle")]
    for artist in lines + entries:
        artist.set_linestyle("--")


def log_curves_figure(data: pd.DataFrame, x: str, y: str, hue: str, col: str, xlabel: str, ylabel: str,
                      dashed: frozenset[str] = frozenset()) -> Figure:
    """Curves of ``y`` vs ``x`` on a log y axis, one panel per ``col`` value, one line per ``hue`` value:
    mean ± standard error over the remaining rows (seeds); the ``dashed`` hue values drawn dashed."""
    panels = sorted(set(data[col])) if col in data else [None]
    palette = algo_palette(data[hue])
    fig, axes = _grid(len(panels), ncols=4)
    handles, labels = [], []
    for ax, panel in zip(axes, panels):
        sub = data if panel is None else data[data[col] == panel]
        sns.lineplot(data=sub, x=x, y=y, hue=hue, palette=palette, errorbar="se", ax=ax,
                     marker="o" if sub[x].nunique() <= 25 else None, hue_order=sorted(set(sub[hue])))
        ax.set_yscale("log")
        ax.set_title(str(panel) if panel is not None else "")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _move_legend_entries(ax, handles, labels)
        _dash(ax, handles, labels, palette, dashed)
    bottom = _legend_below(fig, handles, labels)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def uncertainty_error_figure(
    points: pd.DataFrame,
    x: str = "uncertainty",
    y: str = "error",
    hue: str = "source",
    col: str = "model",
    row: str | None = "task",
    max_points: int = 5000,
    seed: int = 0,
    annotations: Mapping[tuple, tuple[float, float]] | None = None,
) -> Figure:
    """The paper's Figure 4: model uncertainty vs model error, one panel per (row, col) (e.g. task x
    model), points coloured by ``hue`` (the rollout policy that produced them), Pearson r and Spearman
    rho in each title: computed on the panel's points, or taken from ``annotations[(row value, col
    value)] = (pearson, spearman)`` when the caller has them over more points than it stored. At most
    ``max_points`` points per panel are drawn (seeded subsample)."""
    rows_ = sorted(set(points[row])) if row and row in points else [None]
    cols_ = sorted(set(points[col])) if col in points else [None]
    hues = sorted(set(points[hue])) if hue in points else []
    palette = dict(zip(hues, sns.color_palette("Set2", max(1, len(hues)))))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(4.2 * len(cols_), 3.6 * len(rows_)))
        axes = fig.subplots(len(rows_), len(cols_), squeeze=False)
    handles, labels = [], []
    for i, r in enumerate(rows_):
        for j, c in enumerate(cols_):
            ax = axes[i, j]
            sub = points
            if r is not None:
                sub = sub[sub[row] == r]
            if c is not None:
                sub = sub[sub[col] == c]
            given = (annotations or {}).get((r, c))
            pearson, spearman = given if given is not None else correlations(sub, x, y)
            shown = sub.sample(n=max_points, random_state=seed) if len(sub) > max_points else sub
            sns.scatterplot(
                data=shown,
                x=x,
                y=y,
                hue=hue if hues else None,
                palette=palette if hues else None,
                hue_order=hues or None,
                s=8,
                alpha=0.5,
                linewidth=0,
                ax=ax,
            )
            title = " / ".join(str(v) for v in (r, c) if v is not None)
            where = " (all points)" if given is not None else ""
            ax.set_title(
                f"{title}\nPearson r={pearson:.3f}, Spearman ρ={spearman:.3f}{where}", fontsize="medium"
            )
            ax.set_xlabel("model uncertainty")
            ax.set_ylabel("model error")
            _move_legend_entries(ax, handles, labels)
    bottom = _legend_below(fig, handles, labels)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def m_ablation_figure(
    results: pd.DataFrame, x: str = "m", y: str = "score", col: str = "task", hue: str | None = None
) -> Figure:
    """Score vs the maximum backtracking length m (paper App E.2 / E.7): mean ± standard error over
    seeds per m, one panel per ``col``."""
    panels = sorted(set(results[col])) if col in results else [None]
    fig, axes = _grid(len(panels), ncols=4)
    for ax, panel in zip(axes, panels):
        sub = results if panel is None else results[results[col] == panel]
        sns.lineplot(data=sub, x=x, y=y, hue=hue, errorbar="se", marker="o", ax=ax)
        ax.set_xticks(sorted(set(sub[x])))
        ax.set_title(str(panel) if panel is not None else "")
        ax.set_xlabel("maximum backtracking length m")
        ax.set_ylabel("normalized score")
    fig.tight_layout()
    return fig


def metrics_figure(rows: Sequence[dict], names: Sequence[str], title: str = "") -> Figure:
    """One panel per metric of a run's metrics file (``benchmark.metrics``) against its step."""
    fig, axes = _grid(len(names), ncols=3, size=(4.0, 2.6))
    for ax, name in zip(axes, names):
        points = [(r["step"], r[name]) for r in rows if name in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 50 else None)
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metrics(path: Path, out: Path | None = None, keys: Iterable[str] | None = None) -> Path:
    """One panel per metric of a run's metrics file against ``step`` (the metrics that change over the
    run, or ``keys``); returns the PNG path (default: the metrics file with ``.png``)."""
    path = Path(path)
    rows = read_metrics(path)
    if not rows:
        raise ValueError(f"{path}: no metrics lines")
    names = sorted({k for r in rows for k in r} - {"step"})
    if keys:
        wanted = list(keys)
        unknown = [k for k in wanted if k not in names]
        if unknown:
            raise ValueError(f"{path}: no metric {unknown[0]!r}; available: {', '.join(names)}")
        names = wanted
    else:  # constants (setup-only values, fixed config numbers) would be flat panels
        names = [k for k in names if len({r[k] for r in rows if k in r}) > 1]
    if not names:
        raise ValueError(f"{path}: no metric changes over the run (pass the names to plot)")
    fig = metrics_figure(rows, names, title=path.name)
    target = Path(out) if out else path.with_name(path.name.removesuffix(".partial").removesuffix(".jsonl")
                                                  + ".png")
    save_figure(fig, target)
    return target
