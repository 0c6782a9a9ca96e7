"""Reports: a suite's records -> ``reports/<suite>/`` (README.md, tables .md/.tex, CSVs, figures).

:func:`write_report` is a pure function of the records: the same records, ``bootstrap_reps`` and
``seed`` give byte-identical tables and CSVs (no timestamps, sorted everything, seeded bootstraps).
The paper's published numbers come from ``results/paper/`` (copied from REFERENCE.md 4.3/4.4) and are
always labelled "paper"; every other number is from our records.
"""

from __future__ import annotations

import contextvars
import math
import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import aggregate as agg
from benchmark import plots
from benchmark.atomic import default_dir_mode

REPO_ROOT = Path(__file__).resolve().parent.parent
# write_report(figures=False) sets this: tables and CSVs only (the figures are the slow part)
_DRAW_FIGURES: contextvars.ContextVar[bool] = contextvars.ContextVar("draw_figures", default=True)
# the budget line every table caption and figure of a report carries (set by write_report)
_BUDGET_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("budget_label", default="")
SMOKE_WARNING = (
    "smoke runs are untrained plumbing checks (tens of gradient steps), not results: "
    "their scores say nothing about the methods"
)
PAPER_DIR = REPO_ROOT / "results" / "paper"
MISSING = "—"
DECIMALS = 1  # the paper's tables use one decimal


@dataclass(frozen=True)
class PaperTable:
    name: str  # d4rl_table1 | neorl_table2
    title: str
    values: pd.DataFrame  # task, algo, paper_column, score, std
    average: pd.DataFrame  # algo, paper_column, average
    sources: pd.DataFrame  # algo, paper_column, source

    @property
    def algo_order(self) -> list[str]:
        return list(dict.fromkeys(self.values["algo"]))

    @property
    def row_order(self) -> list[str]:
        return list(dict.fromkeys(self.values["task"]))

    def value(self, row: str, algo: str) -> float | None:
        hit = self.values[(self.values["task"] == row) & (self.values["algo"] == algo)]
        return float(hit["score"].iloc[0]) if len(hit) else None


PAPER_TITLES = {"d4rl_table1": "Table 1 (D4RL)", "neorl_table2": "Table 2 (NeoRL)"}


def load_paper_table(name: str, paper_dir: Path = PAPER_DIR) -> PaperTable:
    """Read ``<name>.csv``, ``<name>_average.csv`` and the table's rows of ``sources.csv``."""
    try:
        values = pd.read_csv(paper_dir / f"{name}.csv")
        average = pd.read_csv(paper_dir / f"{name}_average.csv")
        sources = pd.read_csv(paper_dir / "sources.csv")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"paper data missing: {e.filename} (expected under {paper_dir})") from None
    expected = {"task", "algo", "paper_column", "score", "std"}
    if not expected <= set(values.columns):
        raise ValueError(
            f"{paper_dir / (name + '.csv')}: expected columns {sorted(expected)}, got {list(values.columns)}"
        )
    sources = sources[sources["table"] == name].drop(columns="table").reset_index(drop=True)
    return PaperTable(name, PAPER_TITLES.get(name, name), values, average, sources)


def paper_row(task: str) -> tuple[str, str, bool] | None:
    """Our task id -> (paper table, paper row, is-local-data) or None if the paper has no such row.

    ``d4rl/hopper-medium-v2`` and ``local/hopper-medium`` -> Table 1 row ``hopper-medium`` (the latter
    flagged as our locally built data); ``neorl/Hopper-v3-low`` -> Table 2 row ``neorl-hopper-low``."""
    family, _, name = task.partition("/")
    if family == "d4rl" and name.endswith("-v2"):
        return "d4rl_table1", name[: -len("-v2")], False
    if family == "local":
        return "d4rl_table1", name, True
    if family == "neorl":
        m = re.fullmatch(r"([A-Za-z0-9]+)-v3-(low|medium|high)", name)
        if m:
            return "neorl_table2", f"neorl-{m.group(1).lower()}-{m.group(2)}", False
    return None


# ----------------------------------------------------------------------------------------------------
# Formatting helpers
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


def _cell(stat: pd.Series | None, requested: int | None) -> str:
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


def _stats_lookup(stats: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
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
    lookup = _stats_lookup(stats)
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
            cell = _cell(here[a], requested)
            is_best = best is not None and a in means and fmt(means[a]) == fmt(best)
            cells.append(bold(cell) if is_best and len(means) > 1 else cell)
        rows.append([task, "normalized score" if unit == "score" else "raw return", *cells])
    return header, rows


def paper_comparison_rows(
    stats: pd.DataFrame, table: PaperTable, requested: int | None
) -> tuple[list[str], list[list[str]]] | None:
    """Table 1/2 layout: per algorithm 'ours', 'paper' and 'Δ' (ours - paper); best ours and best paper
    per row in bold. Only tasks that map to a row of ``table`` and algorithms with cells there are shown;
    ablation variants (``algo@variant``) get no paper value, since the paper ran the default setting."""
    lookup = _stats_lookup(stats)
    tasks = [t for t in sorted(set(stats["task"])) if (pr := paper_row(t)) and pr[0] == table.name]
    if not tasks:
        return None
    ours = sorted({a for a, t in lookup if t in tasks})
    algos = [a for a in table.algo_order if a in ours] + [a for a in ours if a not in table.algo_order]
    order = {row: i for i, row in enumerate(table.row_order)}
    tasks.sort(key=lambda t: (order.get(paper_row(t)[1], len(order)), t))
    header = ["Task"]
    for a in algos:
        header += [f"{a} ours", f"{a} paper", f"{a} Δ"]
    rows = []
    ours_cols: dict[str, list[float]] = {a: [] for a in algos}
    paper_cols: dict[str, list[float]] = {a: [] for a in algos}
    for task in tasks:
        _, row_name, local = paper_row(task)
        label = f"{row_name} (our local data, not D4RL)" if local else row_name
        here = {a: lookup[(a, task)] for a in algos if (a, task) in lookup}
        our_means = {a: st["mean"] for a, st in here.items() if st["n_seeds"] > 0}
        paper_vals = {a: v for a in algos if (v := table.value(row_name, a)) is not None}
        best_ours = max(our_means.values()) if our_means else None
        best_paper = max(paper_vals.values()) if paper_vals else None
        cells = [label]
        for a in algos:
            ours_cell = _cell(here[a], requested) if a in here else ""
            if a in our_means and len(our_means) > 1 and fmt(our_means[a]) == fmt(best_ours):
                ours_cell = bold(ours_cell)
            paper_val = paper_vals.get(a)
            paper_cell = fmt(paper_val) if paper_val is not None else "n/a"
            if paper_val is not None and len(paper_vals) > 1 and fmt(paper_val) == fmt(best_paper):
                paper_cell = bold(paper_cell)
            diff = our_means[a] - paper_val if a in our_means and paper_val is not None else None
            cells += [ours_cell, paper_cell, fmt_signed(diff)]
            ours_cols[a].append(our_means.get(a, float("nan")))
            paper_cols[a].append(paper_val if paper_val is not None else float("nan"))
        rows.append(cells)
    avg = [bold(f"Average over these {len(tasks)} rows" if len(tasks) > 1 else "Average (1 row)")]
    for a in algos:
        o, p = np.array(ours_cols[a]), np.array(paper_cols[a])
        o_text = (
            fmt(float(o.mean()))
            if np.isfinite(o).all()
            else f"{MISSING} ({int(np.isfinite(o).sum())}/{len(o)} rows)"
        )
        p_text = fmt(float(p.mean())) if np.isfinite(p).all() else "n/a"
        d_text = (
            fmt_signed(float(o.mean() - p.mean()))
            if np.isfinite(o).all() and np.isfinite(p).all()
            else MISSING
        )
        avg += [o_text, p_text, d_text]
    rows.append(avg)
    return header, rows


def aggregate_rows(
    aggregates: pd.DataFrame, matrices: dict[str, agg.ScoreMatrix]
) -> tuple[list[str], list[list[str]]]:
    header = ["Algorithm", "tasks", "runs/task", "Mean", "Median", "IQM", "Optimality gap (γ=100)"]
    rows = []
    for algo in sorted(set(aggregates["algo"])):
        sub = aggregates[aggregates["algo"] == algo].set_index("metric")
        cells = [algo, str(len(matrices[algo].tasks)), str(matrices[algo].n_runs)]
        for metric in agg.METRICS:
            r = sub.loc[metric]
            cells.append(f"{fmt(r['estimate'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]")
        rows.append(cells)
    return header, rows


def _write_table(out_dir: Path, stem: str, header, rows, caption: str) -> str:
    """The table as markdown (returned, and in ``stem.md``) and LaTeX; both carry the caption with the
    report's budget line, so a table copied out of the report still says what budget it came from."""
    caption = f"{caption} {_BUDGET_LABEL.get()}".strip()
    md = markdown_table(header, rows) + f"\n*{caption}*\n"
    (out_dir / f"{stem}.md").write_text(md)
    (out_dir / f"{stem}.tex").write_text(latex_table(header, rows, caption, f"tab:{stem}"))
    return md


def budget_label(runs: pd.DataFrame) -> str:
    """``Budget `short` (5000 training steps per run).`` for the runs' budgets; smoke adds the warning
    that such runs are untrained. Steps are the last evaluation's step: gradient steps offline,
    environment steps after warm-up online."""
    parts = []
    runs = runs[runs["status"] == "ok"]
    for budget in sorted(set(runs["budget"].dropna())):
        steps = sorted({int(c[-1]["step"]) for c in runs[runs["budget"] == budget]["curve"] if c})
        span = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}" if steps else "no"
        parts.append(f"`{budget}` ({span} training steps per run)")
    text = f"Budget {', '.join(parts)}." if parts else ""
    if "smoke" in set(runs["budget"]):
        text += f" {SMOKE_WARNING[0].upper()}{SMOKE_WARNING[1:]}."
    return text


def _save(build: Callable[[], object], path: Path) -> None:
    if _DRAW_FIGURES.get():
        fig = build()
        label = _BUDGET_LABEL.get().replace("`", "")
        if label:  # every figure names its budget, also when it is copied out of the report
            text = textwrap.fill(label, width=int(fig.get_figwidth() * 18))
            fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=7, color="0.3")  # below the figure
        plots.save_figure(fig, path, tight=bool(label))


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


# ----------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------


def _sac_asymptotes(records: pd.DataFrame) -> dict[str, float]:
    """Mean final return of our SAC runs per online task (the dashed line of the paper's Figure 3)."""
    sac = records[(records["algo"] == "sac") & (records["status"] == "ok") & records["final_return"].notna()]
    return {task: float(g["final_return"].mean()) for task, g in sac.groupby("task")}


def _join(values) -> str:
    vals = sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))})
    return ", ".join(f"`{v}`" for v in vals) if vals else MISSING


def _versions_text(records: pd.DataFrame) -> str:
    """Every distinct value of every ``versions`` field across the records, e.g. ``torch `2.13.0```."""
    seen: dict[str, set[str]] = {}
    for versions in records["versions"]:
        if isinstance(versions, dict):
            for key, value in versions.items():
                seen.setdefault(str(key), set()).add(str(value))
    if not seen:
        return MISSING
    return "; ".join(f"{k} " + ", ".join(f"`{v}`" for v in sorted(vals)) for k, vals in sorted(seen.items()))


def _dataset_section(runs: pd.DataFrame) -> list[str]:
    """The datasets the runs trained on, as their records describe them (size, episodes, checksum)."""
    rows = {}
    for rec in runs.itertuples(index=False):
        ds = rec.dataset
        if not isinstance(ds, dict):
            continue
        sha = str(ds.get("sha256") or "")
        cells = (
            rec.task,
            str(ds.get("transitions", MISSING)),
            str(ds.get("episodes", MISSING)),
            fmt(ds.get("return_mean")) if isinstance(ds.get("return_mean"), int | float) else MISSING,
            f"`{sha[:16]}`" if sha else MISSING,
        )
        rows[cells] = None
    if not rows:
        return []
    header = ["task", "transitions", "episodes", "mean episode return", "sha256 (first 16)"]
    return [
        "## Datasets (as recorded by the runs)\n",
        "Several rows for one task mean the runs did not all see the same data.\n",
        markdown_table(header, [list(r) for r in sorted(rows)]),
    ]


def _header_section(suite, results_dir, records, runs, stats, requested, bootstrap_reps, seed) -> list[str]:
    n_ok = int((records["status"] == "ok").sum())
    n_failed = len(records) - n_ok
    n_analyses = int((records["kind"] == "analysis").sum())
    md = [
        f"Generated by `admbench report {suite}` from {len(records)} records ({n_ok} ok, {n_failed} failed"
        + (f"; {n_analyses} analysis records" if n_analyses else "")
        + f") under `{results_dir}`.\n"
    ]
    if "smoke" in set(records["budget"]):
        md.append(f"**Smoke budget: {SMOKE_WARNING}.** Rerun with `--budget short` or `paper` for numbers.\n")
    lines = [
        f"- **Budget(s):** {_BUDGET_LABEL.get().removeprefix('Budget ') or _join(records['budget'])}",
        f"- **Commit(s) of the runs:** {_join(records['commit'])}",
        f"- **Versions:** {_versions_text(records)}",
    ]
    analyses = records[(records["kind"] == "analysis") & (records["status"] == "ok")]
    if len(analyses):
        per_job = analyses.groupby(["algo", "task"])["seed"].nunique()
        lines.append(
            f"- **Analysis seeds:** {int(per_job.min())} to {int(per_job.max())} finished per "
            "(analysis, task)"
        )
    if len(stats):
        counts = stats.groupby(["algo", "task"])["n_seeds"].sum()
        lines += [
            f"- **Seeds requested:** {requested}; finished seeds per (algorithm, task): "
            f"{int(counts.min())} to {int(counts.max())}",
            f"- **Final-score rule:** {_join(runs['final_rule'])}",
        ]
    lines += [
        "- **Ours vs the paper's:** every number in this folder comes from our records, except columns and "
        "lines labelled *paper*, which are copied from the ADMPO paper (arXiv v1; Tables 1-2 are in "
        "`results/paper/` with each column's source). Rows for `local/...` tasks use **our locally built "
        "data, not D4RL**, and sit in their own table: they are not comparable with the paper's D4RL "
        "numbers.",
        "- **Statistics:** per-task cells are mean ± sample standard deviation (ddof=1) over seeds; "
        "aggregates are rliable's mean, median, IQM and optimality gap (γ = 100 on the 0-100 normalized "
        f"scale) with 95% stratified-bootstrap CIs ({bootstrap_reps} resamples, NumPy global seed {seed}).",
    ]
    md.append("\n".join(lines) + "\n")
    short = stats[stats["n_seeds"] < requested] if len(stats) else stats
    if len(short):
        md.append(
            f"**Fewer seeds than requested ({requested})** in {len(short)} of {len(stats)} "
            f"(algorithm, task) cells; those cells show `n/{requested} seeds`, and cells with no "
            f"finished run show `{MISSING}`, never zero.\n"
        )
    return md


def _per_task_section(suite, out_dir, stats, requested) -> list[str]:
    _csv(stats[["algo", "task", "n_seeds", "mean", "std", "unit", "n_failed"]], out_dir / "per_task.csv")
    header, rows = per_task_rows(stats, requested)
    caption = f"Suite {suite}: final performance per task, mean ± std over seeds (ours)."
    return [
        "## Per-task final performance (ours)\n",
        _write_table(out_dir, "per_task", header, rows, caption),
        f"Empty cell: not part of this suite; `{MISSING}`: planned, but no finished run (with the count). "
        "Also as `per_task.md`, `per_task.tex` and `per_task.csv`.\n",
    ]


def _paper_sections(out_dir, stats, requested) -> list[str]:
    md = []
    for name in ("d4rl_table1", "neorl_table2"):
        if not any((pr := paper_row(t)) and pr[0] == name for t in stats["task"]):
            continue
        table = load_paper_table(name)
        # rows on the benchmark's own data and rows on our locally built look-alikes are never mixed
        is_local = stats["task"].map(lambda t: bool((pr := paper_row(t)) and pr[2]))
        shown = False
        for local, part in ((False, stats[~is_local]), (True, stats[is_local])):
            built = paper_comparison_rows(part, table, requested) if len(part) else None
            if built is None:
                continue
            header, rows = built
            shown = True
            if not local:
                md.append(f"## {table.title}: ours beside the paper's\n")
                md.append(
                    "`ours` = our runs (mean ± std over seeds); `paper` = the paper's published value "
                    "(arXiv v1, paper budget); `Δ` = ours − paper. Best per row in bold, separately for "
                    "ours and for the paper's. n/a: the paper has no value for this algorithm.\n"
                )
                caption = f"{table.title}: normalized scores, ours beside the ADMPO paper's."
                md.append(_write_table(out_dir, name, header, rows, caption))
                continue
            keep = [i for i, h in enumerate(header) if not h.endswith(" Δ")]
            header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
            md.append(f"## {table.title} layout on our locally built data (not comparable with the paper)\n")
            md.append(
                "**These rows use our locally built datasets, not D4RL: they are not comparable with the "
                "paper's D4RL numbers**, which are shown only to place the scale (other behaviour policies, "
                "dataset sizes and MuJoCo versions; see the repository README, \"Data\"). No difference "
                "column for that reason. `ours` = our runs (mean ± std over seeds); `paper` = the paper's "
                "value on the D4RL dataset of the same name (arXiv v1, paper budget).\n"
            )
            caption = f"{table.title} layout on our local data (not D4RL), paper values for scale only."
            md.append(_write_table(out_dir, f"{name}_local", header, rows, caption))
        if not shown:
            continue
        ours = set(stats["algo"]) | set(stats["algo"].str.partition("@")[0])
        src_rows = [
            [r["paper_column"], r["algo"], r["source"]]
            for _, r in table.sources.iterrows()
            if r["algo"] in ours
        ]
        if src_rows:
            md.append("Where the paper's columns come from:\n")
            md.append(markdown_table(["paper column", "our id", "source"], src_rows, align="lll"))
    return md


def _aggregate_section(suite, out_dir, runs, bootstrap_reps, seed) -> list[str]:
    matrices = agg.score_matrices(runs)
    aggregates = agg.aggregate_metrics(matrices, reps=bootstrap_reps, seed=seed)
    _csv(aggregates, out_dir / "aggregates.csv")
    if not matrices:
        return ["No run has a normalized score, so there are no rliable aggregates.\n"]
    md = ["## Aggregate metrics (ours, rliable)\n"]
    header, rows = aggregate_rows(aggregates, matrices)
    caption = f"Suite {suite}: aggregate normalized scores with 95% stratified-bootstrap CIs."
    md.append(_write_table(out_dir, "aggregates", header, rows, caption))
    task_sets = {m.tasks for m in matrices.values()}
    scored_tasks = sorted(set(agg.usable(runs)["task"]))
    if len(task_sets) > 1:
        md.append(
            "**The algorithms share no task**, so each aggregate is over that algorithm's own tasks "
            "(see the `tasks` column) and they are not directly comparable.\n"
        )
    elif len(next(iter(task_sets))) < len(scored_tasks):
        left_out = sorted(set(scored_tasks) - set(next(iter(task_sets))))
        md.append(
            "Aggregates use only the tasks every algorithm finished at least one run on; left out: "
            + ", ".join(f"`{t}`" for t in left_out)
            + ".\n"
        )
    dropped = {a: m.dropped for a, m in matrices.items() if m.dropped}
    if dropped:
        md.append(
            "rliable needs equal runs per task: extra seeds were left out of the aggregates for "
            + ", ".join(f"{a} ({n})" for a, n in sorted(dropped.items()))
            + ".\n"
        )
    _save(lambda: plots.interval_estimates_figure(aggregates), out_dir / "aggregate_intervals.png")
    md.append("![aggregate interval estimates](aggregate_intervals.png)\n")

    profiles = agg.performance_profiles(matrices, reps=bootstrap_reps, seed=seed)
    _csv(profiles, out_dir / "performance_profiles.csv")
    _save(lambda: plots.performance_profile_figure(profiles), out_dir / "performance_profiles.png")
    md += ["### Performance profiles\n", "![performance profiles](performance_profiles.png)\n"]

    poi = agg.probability_of_improvement(runs, reps=bootstrap_reps, seed=seed)
    if len(poi):
        _csv(poi, out_dir / "probability_of_improvement.csv")
        md.append("### Probability of improvement\n")
        poi_rows = [
            [r.algo_x, r.algo_y, str(r.n_tasks), f"{r.estimate:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"]
            for r in poi.itertuples(index=False)
        ]
        md.append(markdown_table(["X", "Y", "tasks", "P(X > Y)", "95% CI"], poi_rows))
        _save(
            lambda: plots.probability_of_improvement_figure(poi), out_dir / "probability_of_improvement.png"
        )
        md.append("![probability of improvement](probability_of_improvement.png)\n")
    return md


def _curve_sections(out_dir, runs, bootstrap_reps, seed) -> list[str]:
    md = []
    curves = agg.curves_frame(runs)
    online = sorted(t for t in set(curves["task"]) if t.startswith("mujoco/"))
    offline_curves = curves[~curves["task"].isin(online)]
    if len(offline_curves.dropna(subset=["score"])):
        _save(
            lambda: plots.learning_curves_figure(offline_curves, value="score", ylabel="normalized score"),
            out_dir / "learning_curves.png",
        )
        md += ["## Learning curves (ours)\n", "![learning curves](learning_curves.png)\n"]
        shared = agg.common_tasks(runs)
        iqm_input = offline_curves[offline_curves["task"].isin(shared)] if shared else offline_curves
        iqm = agg.iqm_curve(iqm_input, value="score", reps=bootstrap_reps, seed=seed)
        if len(iqm):
            _csv(iqm, out_dir / "learning_curves_iqm.csv")
            _save(lambda: plots.iqm_curve_figure(iqm), out_dir / "learning_curves_iqm.png")
            md.append("IQM over runs and tasks at each evaluation (tasks every algorithm ran):\n")
            md.append("![IQM learning curves](learning_curves_iqm.png)\n")
    if online:
        online_curves = curves[curves["task"].isin(online)]
        sac = _sac_asymptotes(runs)
        _save(
            lambda: plots.online_curves_figure(online_curves, sac_asymptote=sac),
            out_dir / "online_curves.png",
        )
        md.append("## Online learning curves (ours; the paper's Figure 3 layout)\n")
        md.append(
            "Mean ± standard error over seeds of the evaluation return; the dashed line is *our* SAC runs' "
            "mean final return where SAC was run (the paper draws SAC's asymptotic performance). The paper "
            "gives no online numbers except ADMPO-ON reaching SAC's converged Humanoid return (about 6000) "
            "after 150k steps (REFERENCE.md 4.2).\n"
        )
        md.append("![online learning curves](online_curves.png)\n")
    return md


def _steps_to_return_section(suite: str, out_dir: Path, runs: pd.DataFrame) -> list[str]:
    """Env steps each method needs to reach the suite's fixed returns (``report.return_thresholds``)."""
    try:
        from benchmark.suites import SuiteError, load_suite

        thresholds = load_suite(suite).report.get("return_thresholds", {})
    except (ImportError, SuiteError):
        return []
    curves = agg.curves_frame(runs)
    table = agg.steps_to_return(curves, thresholds)
    if table.empty:
        return []
    _csv(table, out_dir / "steps_to_return.csv")
    header = ["algo", "task", "return", "env steps to reach it (mean over seeds that did)",
              "seeds reaching it"]
    rows = [
        [r.algo, r.task, f"{r.threshold:g}", "—" if np.isnan(r.steps_mean) else f"{r.steps_mean:,.0f}",
         f"{r.reached}/{r.seeds}"]
        for r in table.itertuples(index=False)
    ]
    return [
        "## Env steps to reach fixed returns (ours)\n",
        "How the paper measures faster learning: the first evaluation (post-warm-up env steps, as the x "
        "axis of the curves) whose deterministic return reaches each fixed return of the suite's "
        "`report.return_thresholds`; `—` if no seed reached it within the budget.\n",
        markdown_table(header, rows, align="llrrr"),
    ]


def planned_cells(suite: str) -> tuple[set[tuple[str, str]] | None, int | None]:
    """(algo, task) cells and default seed count of a suite defined in ``benchmark/suites/``, so the
    tables show planned-but-missing runs; ``(None, None)`` for suites without a definition there."""
    try:
        from benchmark.suites import SuiteError, load_suite
    except ImportError:
        return None, None
    try:
        definition = load_suite(suite)
    except SuiteError:
        return None, None
    if definition.includes:
        return None, None
    cells = {(job.name, job.task) for job in definition.plan(seeds=1) if hasattr(job, "algo")}
    return cells, definition.seeds


def suite_note(suite: str) -> str:
    """The ``note`` of a suite defined in ``benchmark/suites/`` (how to read its numbers), or ''."""
    try:
        import yaml

        from benchmark.suites import SuiteError, load_suite

        data = yaml.safe_load(load_suite(suite).path.read_text()) or {}
    except (ImportError, SuiteError, OSError):
        return ""
    return " ".join(str(data.get("note") or "").split())


def _ablation_section(out_dir: Path, runs: pd.DataFrame) -> list[str]:
    """Score vs m for runs stored as ``<algo>@m=<int>`` (the ablation-m suite)."""
    frame = agg.m_ablation_frame(runs)
    if frame.empty:
        return []
    _csv(frame, out_dir / "m_ablation.csv")
    several = frame["algo_id"].nunique() > 1
    hue = "algo_id" if several else None
    _save(
        lambda: plots.m_ablation_figure(frame, x="m", y="score", col="task", hue=hue),
        out_dir / "m_ablation.png",
    )
    ms = sorted(set(frame["m"]))
    header = ["algo", "task", *[f"m={m}" for m in ms]]
    rows = []
    for (algo, task), g in frame.groupby(["algo_id", "task"], sort=True):
        cells = [algo, task]
        for m in ms:
            vals = g.loc[g["m"] == m, "score"].to_numpy(dtype=float)
            if len(vals) == 0:
                cells.append(f"{MISSING} (0 seeds)")
            elif len(vals) == 1:
                cells.append(f"{fmt(vals[0])} (1 seed)")
            else:
                cells.append(f"{fmt(vals.mean())} ± {fmt(vals.std(ddof=1))} ({len(vals)} seeds)")
        rows.append(cells)
    return [
        "## Ablation: maximum backtracking length m (ours)\n",
        "Final normalized score per m, mean ± std over seeds (paper: arXiv v1 App E.2 shows this on "
        'hopper/walker2d-medium without numbers and concludes "not very sensitive to m"; '
        "REFERENCE.md 4.6).\n",
        _write_table(
            out_dir, "m_ablation", header, rows, "Final score vs the maximum backtracking length m."
        ),
        "![score vs m](m_ablation.png)\n",
    ]


def _stated_lines(stated: dict[str, list[str]]) -> str:
    if not stated:
        return "The analysis records state no protocol fields (metric, horizon, ...).\n"
    lines = [f"- **{k}**: {' | '.join(v)}" for k, v in sorted(stated.items())]
    header = "As stated by the analysis records (values that differ between records are separated by |):"
    return header + "\n\n" + "\n".join(lines) + "\n"


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _fmt_sci(values: np.ndarray) -> str:
    """Errors span many orders of magnitude: 3 significant digits; overflow (non-finite, or clamped to
    float32's maximum as the analysis stores it) named."""
    finite = values[np.isfinite(values) & (values < FLOAT32_MAX)]
    over = len(values) - len(finite)
    if len(finite) == 0:
        return f"overflow ({over}/{len(values)} seeds)"
    text = f"{finite.mean():.3g}" + (f" ± {finite.std(ddof=1):.2g}" if len(finite) > 1 else "")
    return text + (f" (+{over} overflow)" if over else "")


def _compounding_section(out_dir: Path, analyses: pd.DataFrame) -> list[str]:
    frame, problems, stated = agg.analysis_frame(analyses, "compounding-error")
    md = []
    if len(frame):
        frame = frame.sort_values(["task", "model", "rollout_length", "seed"], kind="mergesort")
        _csv(frame[["task", "model", "seed", "rollout_length", "error"]], out_dir / "compounding_error.csv")
        _save(lambda: plots.compounding_error_figure(frame), out_dir / "compounding_error.png")
        lengths = sorted(set(frame["rollout_length"].dropna().astype(int)))
        picks = [h for h in lengths if h in (1, 5, 10, 20, 50, 100, 200, 500, 1000)]
        picks = sorted(set(picks + [lengths[-1]])) if lengths else []
        header = ["task", "model", *[f"h={h}" for h in picks]]
        rows = []
        for (task, model), g in frame.groupby(["task", "model"], sort=True):
            cells = [task, str(model)]
            for h in picks:
                vals = g.loc[g["rollout_length"] == h, "error"].to_numpy(dtype=float)
                cells.append(_fmt_sci(vals) if len(vals) else MISSING)
            rows.append(cells)
        md += [
            "## Compounding error vs rollout length (ours; the paper's Figure 2)\n",
            _stated_lines(stated),
            "Mean ± std over seeds of each seed's error (itself a mean over held-out starts). An overflow "
            "(non-finite, or clamped to float32's maximum) is drawn at float32's maximum, as the paper "
            "does. The paper gives this only as a figure (no numbers); a third-party reproduction "
            "reports 100-step raw-state MSE on hopper-medium-replay of ADM "
            "0.328 ± 0.040, BootRNN 0.317 ± 0.046, ensemble 0.694 ± 0.008 (REFERENCE.md 4.1).\n",
            _write_table(
                out_dir, "compounding_error", header, rows, "Compounding error by rollout length h."
            ),
            "![compounding error](compounding_error.png)\n",
        ]
    if problems:
        md.append("Compounding-error records that could not be read:\n")
        md.append("".join(f"- {p}\n" for p in problems))
    return md


def _mean_std_text(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return MISSING
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _uncertainty_section(out_dir: Path, analyses: pd.DataFrame) -> list[str]:
    frame, problems, stated = agg.analysis_frame(analyses, "uncertainty")
    md = []
    if len(frame):
        recorded = agg.recorded_correlations(analyses, "uncertainty")
        have = set(zip(recorded["task"], recorded["seed"]))
        # records without correlations: computed here on their stored points, pooled over sources
        computed = pd.DataFrame(
            [
                {"task": t, "seed": sd, "model": m, "source": "all", "pearson": p, "spearman": r, "n": len(g)}
                for (t, sd, m), g in frame.groupby(["task", "seed", "model"], sort=True)
                if (t, sd) not in have
                for p, r in [plots.correlations(g)]
            ],
            columns=recorded.columns,
        )
        basis = []
        if len(recorded):
            basis.append("as the analysis computed them over all its points (records store a subsample)")
        if len(computed):
            basis.append("computed here on the stored points for records that carry no correlations")
        basis = "; ".join(basis)
        recorded = pd.concat([recorded, computed], ignore_index=True) if len(computed) else recorded
        order = {"all": 0}
        recorded = recorded.assign(_o=recorded["source"].map(lambda v: order.get(v, 1)))
        rows, table = [], []
        for (task, model, _o, source), g in recorded.groupby(["task", "model", "_o", "source"], sort=True):
            pearson, spearman = g["pearson"].to_numpy(float), g["spearman"].to_numpy(float)
            table.append(
                {
                    "task": task,
                    "model": model,
                    "source": source,
                    "n_seeds": int(g["seed"].nunique()),
                    "pearson_mean": float(np.nanmean(pearson))
                    if np.isfinite(pearson).any()
                    else float("nan"),
                    "spearman_mean": float(np.nanmean(spearman))
                    if np.isfinite(spearman).any()
                    else float("nan"),
                }
            )
            rows.append(
                [
                    task,
                    str(model),
                    str(source),
                    str(g["seed"].nunique()),
                    _mean_std_text(pearson),
                    _mean_std_text(spearman),
                ]
            )
        _csv(pd.DataFrame(table), out_dir / "uncertainty_correlations.csv")
        overall = {
            (t["task"], t["model"]): (t["pearson_mean"], t["spearman_mean"])
            for t in table
            if t["source"] == "all"
        }
        _save(
            lambda: plots.uncertainty_error_figure(frame, hue="source", annotations=overall),
            out_dir / "uncertainty_vs_error.png",
        )
        header = ["task", "model", "points from", "seeds", "Pearson r", "Spearman ρ"]
        md += [
            "## Model uncertainty vs model error (ours; the paper's Figure 4)\n",
            _stated_lines(stated),
            f"Correlations {basis}; mean ± std over seeds; `all` pools the rollout policies. *Paper:* ADM "
            "0.98 on both tasks; the ensemble's 0.94 on Hopper was read from the figure by a third party; "
            "the paper does not say which correlation it used (REFERENCE.md 4.5).\n",
            _write_table(
                out_dir,
                "uncertainty_correlations",
                header,
                rows,
                "Correlation of model uncertainty with model error.",
            ),
            "![uncertainty vs error](uncertainty_vs_error.png)\n",
        ]
    if problems:
        md.append("Uncertainty records that could not be read:\n")
        md.append("".join(f"- {p}\n" for p in problems))
    return md


def _analysis_sections(out_dir: Path, analyses: pd.DataFrame) -> list[str]:
    if analyses.empty:
        return []
    md = _compounding_section(out_dir, analyses) + _uncertainty_section(out_dir, analyses)
    known = {f"analysis-{n}" for n in agg.ANALYSIS_COLUMNS}
    other = sorted(set(analyses["algo"]) - known)
    if other:
        md.append("Analysis records with no report section: " + ", ".join(f"`{o}`" for o in other) + ".\n")
    return md


def write_report(
    suite: str,
    results_dir: Path,
    out_dir: Path,
    seeds_requested: int | None = None,
    bootstrap_reps: int = 2000,
    seed: int = 0,
    *,
    figures: bool = True,
) -> Path:
    """Write the suite's report into ``out_dir`` and return the path of its README.md.

    The report is written whole into a hidden sibling folder and then swapped in (rename), so a kill or a
    full disk leaves either the previous report or the new one, never a mix. ``figures=False`` writes the
    same tables, CSVs and README without drawing the PNGs."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    token = _DRAW_FIGURES.set(figures)
    try:
        _write_report(suite, results_dir, staging, seeds_requested, bootstrap_reps, seed)
        os.chmod(staging, default_dir_mode())  # mkdtemp makes 0700; a report folder is shared output
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _DRAW_FIGURES.reset(token)
    return out_dir / "README.md"


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``staging``: the old folder is renamed aside first, then removed."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        if old is not None:  # put the previous report back
            os.replace(old / out_dir.name, out_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _write_report(suite, results_dir, out_dir, seeds_requested, bootstrap_reps, seed) -> Path:
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = agg.load_records(results_dir, suite)
    readme = out_dir / "README.md"
    md: list[str] = [f"# Report: suite `{suite}`\n"]
    if records.empty:
        md.append(f"No run records found for suite `{suite}` under `{results_dir}`.\n")
        readme.write_text("\n".join(md))
        return readme

    runs = agg.runs_only(records)
    _BUDGET_LABEL.set(budget_label(runs))
    cells, plan_seeds = planned_cells(suite)
    stats = agg.per_task_stats(runs, cells)
    requested = seeds_requested or plan_seeds or (int(stats["n_seeds"].max()) if len(stats) else 0)
    if note := suite_note(suite):
        md.append(note + "\n")
    md += _header_section(suite, results_dir, records, runs, stats, requested, bootstrap_reps, seed)
    if len(runs):
        md += _per_task_section(suite, out_dir, stats, requested)
        md += _dataset_section(runs)
        md += _paper_sections(out_dir, stats, requested)
        md += _ablation_section(out_dir, runs)
        md += _aggregate_section(suite, out_dir, runs, bootstrap_reps, seed)
        md += _curve_sections(out_dir, runs, bootstrap_reps, seed)
        md += _steps_to_return_section(suite, out_dir, runs)
    md += _analysis_sections(out_dir, agg.analyses_only(records))

    failed = records[records["status"] != "ok"]
    if len(failed):
        md.append("## Failed runs\n")
        failed_rows = [
            [r.algo, r.task, str(r.seed), str(r.reason or "").replace("|", "/").replace("\n", " ")[:300]]
            for r in failed.itertuples(index=False)
        ]
        md.append(markdown_table(["algo", "task", "seed", "reason"], failed_rows, align="llrl"))
    readme.write_text("\n".join(md))
    return readme
