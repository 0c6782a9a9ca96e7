"""What one report is written with: its folder and budget line (:class:`ReportOutput`), and the suite's
presentation choices (:class:`ReportSettings`).

Every table caption and figure of a report carries the report's budget line, so a table or figure copied
out of the report still says what budget it came from. ``figures=False`` writes the same tables, CSVs and
README without drawing the PNGs (the figures are the slow part).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from benchmark.reporting.figures import save_figure
from benchmark.reporting.tables import latex_table, markdown_table

SMOKE_WARNING = (
    "smoke runs are untrained plumbing checks (tens of gradient steps), not results: "
    "their scores say nothing about the methods"
)


@dataclass(frozen=True)
class ReportSettings:
    """How a suite's report reads its runs, from the suite YAML (``benchmark/suites/<name>.yaml``):
    the plan (cells, seeds, note) and the ``report:`` mapping. The paper-presentation choices live
    there, not in code: ``highlight`` (drawn with a thicker line), ``improvement_of`` (probability of
    improvement of these over every other algorithm), ``asymptote`` (the algorithm whose mean final
    return is the dashed line of the online curves: the paper's SAC) and ``return_thresholds``."""

    cells: frozenset[tuple[str, str]] | None = None  # planned (algo, task) cells; None: not known
    seeds: int | None = None  # the plan's seed count
    note: str = ""  # how to read the suite's numbers
    highlight: tuple[str, ...] = ()
    improvement_of: tuple[str, ...] = ()
    asymptote: str | None = None
    return_thresholds: Mapping[str, Sequence[float]] = field(default_factory=dict)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def budget_label(runs: pd.DataFrame) -> str:
    """``Budget `short` (5000 training steps per run).`` for the runs' budgets; smoke adds the warning
    that such runs are untrained. Steps are the last evaluation's step: gradient steps offline,
    environment steps after warm-up online."""
    parts = []
    runs = runs[runs["status"] == "ok"]
    for budget in sorted(set(runs["budget"].dropna())):
        of_budget = runs[runs["budget"] == budget]
        lengths = sorted({length for length in of_budget.get("length", []) if isinstance(length, str)})
        if lengths:  # from the configs: env steps after warm-up online, gradient steps offline
            parts.append(f"`{budget}` ({' / '.join(lengths)} per run)")
            continue
        steps = sorted({int(c[-1]["step"]) for c in of_budget["curve"] if c})
        span = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}" if steps else "no"
        parts.append(f"`{budget}` ({span} training steps per run)")
    text = f"Budget {', '.join(parts)}." if parts else ""
    if "smoke" in set(runs["budget"]):
        text += f" {SMOKE_WARNING[0].upper()}{SMOKE_WARNING[1:]}."
    return text


@dataclass(frozen=True)
class ReportOutput:
    """The folder a report is written into, the budget line its artefacts carry, and whether figures
    are drawn."""

    out_dir: Path
    budget: str = ""  # :func:`budget_label` of the report's runs
    figures: bool = True

    def table(self, stem: str, header, rows, caption: str) -> str:
        """The table as markdown (returned, and in ``stem.md``) and LaTeX, both with the budget line."""
        caption = f"{caption} {self.budget}".strip()
        md = markdown_table(header, rows) + f"\n*{caption}*\n"
        (self.out_dir / f"{stem}.md").write_text(md)
        (self.out_dir / f"{stem}.tex").write_text(latex_table(header, rows, caption, f"tab:{stem}"))
        return md

    def figure(self, build: Callable[[], Figure], name: str) -> None:
        if self.figures:
            fig = build()
            label = self.budget.replace("`", "")
            if label:  # every figure names its budget, also when it is copied out of the report
                text = textwrap.fill(label, width=int(fig.get_figwidth() * 18))
                fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=7, color="0.3")  # below the figure
            save_figure(fig, self.out_dir / name, tight=bool(label))

    def csv(self, frame: pd.DataFrame, name: str) -> None:
        write_csv(frame, self.out_dir / name)
