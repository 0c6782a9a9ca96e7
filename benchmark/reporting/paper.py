"""The paper's published numbers beside ours: Tables 1 (D4RL) and 2 (NeoRL) from ``results/paper/``.

The paper's values are copied from REFERENCE.md 4.3/4.4 into ``results/paper/`` and are always labelled
"paper"; every other number is from our records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.reporting.output import ReportOutput
from benchmark.reporting.tables import MISSING, bold, fmt, fmt_signed, markdown_table, stat_cell, stats_lookup

REPO_ROOT = Path(__file__).resolve().parents[2]
PAPER_DIR = REPO_ROOT / "results" / "paper"


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


def paper_comparison_rows(
    stats: pd.DataFrame, table: PaperTable, requested: int | None
) -> tuple[list[str], list[list[str]]] | None:
    """Table 1/2 layout: per algorithm 'ours', 'paper' and 'Δ' (ours - paper); best ours and best paper
    per row in bold. Only tasks that map to a row of ``table`` and algorithms with cells there are shown;
    ablation variants (``algo@variant``) get no paper value, since the paper ran the default setting."""
    lookup = stats_lookup(stats)
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
            ours_cell = stat_cell(here[a], requested) if a in here else ""
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


def paper_sections(out: ReportOutput, stats: pd.DataFrame, requested: int | None) -> list[str]:
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
                md.append(out.table(name, header, rows, caption))
                continue
            keep = [i for i, h in enumerate(header) if not h.endswith(" Δ")]
            header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
            md.append(f"## {table.title} layout on our locally built data (not comparable with the paper)\n")
            md.append(
                "**These rows use our locally built datasets, not D4RL: they are not comparable with the "
                "paper's D4RL numbers**, which are shown only to place the scale (other behaviour policies, "
                'dataset sizes and MuJoCo versions; see the repository README, "Data"). No difference '
                "column for that reason. `ours` = our runs (mean ± std over seeds); `paper` = the paper's "
                "value on the D4RL dataset of the same name (arXiv v1, paper budget).\n"
            )
            caption = f"{table.title} layout on our local data (not D4RL), paper values for scale only."
            md.append(out.table(f"{name}_local", header, rows, caption))
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
