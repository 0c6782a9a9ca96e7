"""Markdown and LaTeX tables from cells: number formatting, the per-task and aggregate layouts.

The cells are plain strings (``**bold**`` only), so the markdown and the LaTeX table of a report are
written from the same rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from benchmark.reporting.frames import ScoreMatrix
from benchmark.reporting.stats import METRICS

MISSING = "—"
DECIMALS = 1  # the paper's tables use one decimal


def fmt(x: float | None, decimals: int = DECIMALS) -> str:
    if x is None or not math.isfinite(x):
        return MISSING
    text = f"{x:.{decimals}f}"
    return "0.0" if text in ("-0.0", "-0") else text


def fmt_signed(x: float | None, decimals: int = DECIMALS) -> str:
    if x is None or not math.isfinite(x):
        return MISSING
    text = f"{x:+.{decimals}f}"
    return text.replace("-0.0", "0.0").replace("+0.0", "0.0") if abs(x) < 0.5 * 10**-decimals else text


_NUMERIC_CELL = re.compile(r"^(\*\*)?([-+]?\d|—|n/a|overflow|$)")


def auto_align(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``l`` for the first column and text columns, ``r`` for columns of numbers (and their gaps)."""
    cols = []
    for j in range(len(header)):
        numeric = j > 0 and all(_NUMERIC_CELL.match(r[j]) for r in rows if j < len(r))
        cols.append("r" if numeric else "l")
    return "".join(cols)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    align = align or auto_align(header, rows)
    sep = ["---:" if a == "r" else ":---" if a == "l" else ":---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


# non-ASCII symbols the tables use, as plain-LaTeX math (no unicode packages needed)
_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "---", "−": "$-$", "Δ": r"$\Delta$", "γ": r"$\gamma$", "ρ": r"$\rho$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c) or _LATEX_SYMBOLS.get(c, c) for c in text)


def md_to_latex_cell(cell: str) -> str:
    """Markdown cell (``**bold**`` only) -> LaTeX cell."""
    bold = cell.startswith("**") and cell.endswith("**") and len(cell) > 4
    body = latex_escape(cell[2:-2] if bold else cell)
    return rf"\textbf{{{body}}}" if bold else body


def latex_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], caption: str, label: str, align: str | None = None
) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``) from the same cells as the markdown table."""
    align = align or auto_align(header, rows)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\linewidth}{!}{%",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(md_to_latex_cell(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for r in rows:
        if r and r[0].startswith("**Average"):
            lines.append(r"\midrule")
        lines.append(" & ".join(md_to_latex_cell(c) for c in r) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def bold(cell: str) -> str:
    return f"**{cell}**"


def stat_cell(stat: pd.Series | None, requested: int | None) -> str:
    """``mean ± std``; a seed count when below ``requested``; ``— (0/N)`` when nothing finished."""
    n = 0 if stat is None else int(stat["n_seeds"])
    failed = 0 if stat is None else int(stat["n_failed"])
    want = requested or n
    notes = []
    if n < want:
        notes.append(f"{n}/{want} seeds")
    if failed:
        notes.append(f"{failed} failed")
    suffix = f" ({', '.join(notes)})" if notes else ""
    if n == 0:
        return f"{MISSING} (0/{want} seeds{', ' + str(failed) + ' failed' if failed else ''})"
    text = fmt(stat["mean"]) if n == 1 else f"{fmt(stat['mean'])} ± {fmt(stat['std'])}"
    return text + suffix


def stats_lookup(stats: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    return {(r["algo"], r["task"]): r for _, r in stats.iterrows()}


_LEVEL_ORDER = ("random", "low", "medium", "medium-replay", "high", "medium-expert", "expert")


_ENV_ORDER = ("hopper", "halfcheetah", "walker2d", "ant", "humanoid")


def task_order(task: str) -> tuple:
    """Sort key in the paper's order: family, then level (random, medium, medium-replay,
    medium-expert / low, medium, high), then environment (hopper, halfcheetah, walker2d)."""
    family, _, name = task.partition("/")
    low = name.lower().removesuffix("-v2").replace("-v3-", "-")
    env = next((e for e in _ENV_ORDER if low.startswith(e)), "")
    level = low[len(env) :].lstrip("-") if env else ""
    level_rank = _LEVEL_ORDER.index(level) if level in _LEVEL_ORDER else len(_LEVEL_ORDER)
    env_rank = _ENV_ORDER.index(env) if env else len(_ENV_ORDER)
    return (family, level_rank, env_rank, task)


def per_task_rows(stats: pd.DataFrame, requested: int | None) -> tuple[list[str], list[list[str]]]:
    """Rows = tasks, columns = algorithms; the best mean of each row in bold."""
    algos = sorted(set(stats["algo"]))
    lookup = stats_lookup(stats)
    header = ["Task", "unit", *algos]
    rows = []
    for task in sorted(set(stats["task"]), key=task_order):
        here = {a: lookup[(a, task)] for a in algos if (a, task) in lookup}
        means = {a: st["mean"] for a, st in here.items() if st["n_seeds"] > 0}
        best = max(means.values()) if means else None
        unit = next(iter(here.values()))["unit"]
        cells = []
        for a in algos:
            if a not in here:  # not part of this suite: blank, unlike a missing run
                cells.append("")
                continue
            cell = stat_cell(here[a], requested)
            is_best = best is not None and a in means and fmt(means[a]) == fmt(best)
            cells.append(bold(cell) if is_best and len(means) > 1 else cell)
        rows.append([task, "normalized score" if unit == "score" else "raw return", *cells])
    return header, rows


def aggregate_rows(
    aggregates: pd.DataFrame, matrices: dict[str, ScoreMatrix]
) -> tuple[list[str], list[list[str]]]:
    header = ["Algorithm", "tasks", "runs/task", "Mean", "Median", "IQM", "Optimality gap (γ=100)"]
    rows = []
    for algo in sorted(set(aggregates["algo"])):
        sub = aggregates[aggregates["algo"] == algo].set_index("metric")
        cells = [algo, str(len(matrices[algo].tasks)), str(matrices[algo].n_runs)]
        for metric in METRICS:
            r = sub.loc[metric]
            cells.append(f"{fmt(r['estimate'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]")
        rows.append(cells)
    return header, rows
