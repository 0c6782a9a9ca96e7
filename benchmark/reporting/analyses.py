"""The paper's analyses in the report: compounding error (Figure 2), uncertainty vs error (Figure 4) and
the backtracking-length (m) ablation, from their records to frames to report sections.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.reporting.figures import (
    compounding_error_figure,
    correlations,
    m_ablation_figure,
    uncertainty_error_figure,
)
from benchmark.reporting.frames import m_ablation_frame
from benchmark.reporting.model_checks import (
    COMPOUNDING_LEVELS_HEADER,
    FLOAT32_MAX,
    VERSUS_REFERENCES_HEADER,
    claims_markdown,
    compounding_claims,
    compounding_levels,
    holdout_section,
    points_text,
    uncertainty_claims,
    unmatched_references,
    versus_references,
)
from benchmark.reporting.output import ReportOutput
from benchmark.reporting.records import finite_or_none
from benchmark.reporting.tables import MISSING, fmt

# What the report reads from analysis records' ``result`` (``adm.analysis.run_analysis``):
# - compounding-error: ``{"horizons": [1..H], "models": {name: {"mean": [H], "std": [H], "median": [H],
#   "overflow": [H]}}}`` (mean/std/median over held-out starts per rollout length; overflow = fraction of
#   starts that overflowed; ``median`` is optional, older records lack it);
# - uncertainty: ``{"points": [{"model", "source", "uncertainty", "error"}, ...], "correlations":
#   [{"model", "source", "pearson", "spearman", "n"}, ...]}`` (correlations over all points, the stored
#   points being a subsample).
# A plain table under ``rows``/``points``/``data`` (list of row dicts or dict of columns) with the
# columns of ANALYSIS_COLUMNS (aliases accepted) works for both. Scalar string/number entries and
# dicts of strings (metric, protocol, uncertainty definitions ...) are shown in the report as stated.
ANALYSIS_COLUMNS: dict[str, tuple[str, ...]] = {
    "compounding-error": ("model", "rollout_length", "error"),
    "compounding-references": ("model", "rollout_length", "error"),
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
            median = curve.get("median") or []
            median = median if len(median) == len(horizons) else [None] * len(horizons)
            for h, err, mid, over in zip(horizons, curve["mean"], median, overflow):
                rows.append({"model": model, "rollout_length": h, "error": err, "median_error": mid,
                             "overflow_fraction": over})
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
    for col in ("rollout_length", "error", "median_error", "uncertainty", "overflow_fraction"):
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
        entries = entries if isinstance(entries, list) else []
        entries = [e for e in entries if isinstance(e, dict) and "model" in e]
        for entry in entries:
            source = str(entry.get("source", "all"))
            dropped = entry.get("dropped_unreconstructible")
            if dropped is None and source == "all":  # the pooled row: its sources' drops summed
                parts = [e.get("dropped_unreconstructible") for e in entries
                         if e["model"] == entry["model"] and str(e.get("source", "all")) != "all"]
                dropped = sum(parts) if parts and all(isinstance(p, int) for p in parts) else None
            rows.append(
                {
                    "task": rec.task,
                    "seed": int(rec.seed),
                    "model": str(entry["model"]),
                    "source": source,
                    "pearson": finite_or_none(entry.get("pearson")),
                    "spearman": finite_or_none(entry.get("spearman")),
                    "n": entry.get("n"),
                    "dropped": dropped,
                }
            )
    columns = ["task", "seed", "model", "source", "pearson", "spearman", "n", "dropped"]
    frame = pd.DataFrame(rows, columns=columns)
    frame[["pearson", "spearman"]] = frame[["pearson", "spearman"]].astype(float)
    return frame


def ablation_section(out: ReportOutput, runs: pd.DataFrame) -> list[str]:
    """Score vs m for runs stored as ``<algo>@m=<int>`` (the ablation-m suite)."""
    frame = m_ablation_frame(runs)
    if frame.empty:
        return []
    out.csv(frame, "m_ablation.csv")
    several = frame["algo_id"].nunique() > 1
    hue = "algo_id" if several else None
    out.figure(
        lambda: m_ablation_figure(frame, x="m", y="score", col="task", hue=hue),
        "m_ablation.png",
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
        out.table("m_ablation", header, rows, "Final score vs the maximum backtracking length m."),
        "![score vs m](m_ablation.png)\n",
    ]


def _stated_lines(stated: dict[str, list[str]]) -> str:
    if not stated:
        return "The analysis records state no protocol fields (metric, horizon, ...).\n"
    lines = [f"- **{k}**: {' | '.join(v)}" for k, v in sorted(stated.items())]
    header = "As stated by the analysis records (values that differ between records are separated by |):"
    return header + "\n\n" + "\n".join(lines) + "\n"




def _fmt_sci(values: np.ndarray) -> str:
    """Errors span many orders of magnitude: 3 significant digits; overflow (non-finite, or clamped to
    float32's maximum as the analysis stores it) named."""
    finite = values[np.isfinite(values) & (values < FLOAT32_MAX)]
    over = len(values) - len(finite)
    if len(finite) == 0:
        return f"overflow ({over}/{len(values)} seeds)"
    text = f"{finite.mean():.3g}" + (f" ± {finite.std(ddof=1):.2g}" if len(finite) > 1 else "")
    return text + (f" (+{over} overflow)" if over else "")


def matched_references(analyses: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the compounding-references records (the no-model yardstick) and the problems met: a
    record scored on other segments than its compounding-error twin's would mislead, so it is left out and
    named (:func:`unmatched_references`)."""
    references, problems, _ = analysis_frame(analyses, "compounding-references")
    unmatched = unmatched_references(analyses)
    if unmatched:
        keep = ~pd.Series(list(zip(references["task"], references["seed"])), index=references.index).isin(
            [key for key, _ in unmatched])
        references = references[keep]
        problems += [f"compounding-references {task} seed {seed}: {why}; left out"
                     for (task, seed), why in unmatched]
    return references, problems


def _compounding_section(out: ReportOutput, analyses: pd.DataFrame) -> list[str]:
    frame, problems, stated = analysis_frame(analyses, "compounding-error")
    references, ref_problems = matched_references(analyses)
    problems += ref_problems
    md = []
    if len(frame):
        frame = frame.sort_values(["task", "model", "rollout_length", "seed"], kind="mergesort")
        # the no-model predictors share the table, csv and figure (their rows named as such), not the claims
        drawn = pd.concat([frame, references], ignore_index=True) if len(references) else frame
        drawn = drawn.sort_values(["task", "model", "rollout_length", "seed"], kind="mergesort")
        out.csv(drawn[["task", "model", "seed", "rollout_length", "error"]], "compounding_error.csv")
        reference_names = frozenset(references["model"]) if len(references) else frozenset()
        out.figure(lambda: compounding_error_figure(drawn, dashed=reference_names), "compounding_error.png")
        lengths = sorted(set(frame["rollout_length"].dropna().astype(int)))
        picks = [h for h in lengths if h in (1, 5, 10, 20, 50, 100, 200, 500, 1000)]
        picks = sorted(set(picks + [lengths[-1]])) if lengths else []
        header = ["task", "model", *[f"h={h}" for h in picks]]
        rows = []
        for (task, model), g in drawn.groupby(["task", "model"], sort=True):
            cells = [task, f"{model} (no model)" if model in reference_names else str(model)]
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
            "0.328 ± 0.040, BootRNN 0.317 ± 0.046, ensemble 0.694 ± 0.008 (REFERENCE.md 4.1). Rows marked "
            "*(no model)* are the `compounding-references` analysis, the yardstick: on the same segments, "
            "`last-state` holds the last real state for every h, `train-mean-state` predicts the training "
            "data's mean state.\n",
            out.table("compounding_error", header, rows, "Compounding error by rollout length h."),
            "![compounding error](compounding_error.png)\n",
        ]
        md += claims_markdown(
            out, "compounding_claims", compounding_claims(frame),
            "ADM's compounding error grows more slowly with the rollout length than the ensemble's and "
            "BootRNN's. Growth = error at the longest length / error at length 1, per seed; the ratio "
            "compares ADM's growth with the other model's on the same seed (< 1: ADM grows more slowly).",
            ["task", "models", "lengths", "ADM growth", "other growth", "growth ratio", "reading"],
            "ADM's error growth against each other model's.")
        md += claims_markdown(
            out, "compounding_levels", compounding_levels(frame),
            "ADM's compounding error stays low where the others' grow (the paper's text: ADM's curve "
            "\"remains close to zero\" while the other two grow exponentially). Each model's error at the "
            "longest rollout length; the ratio is ADM's over the other model's on the same seed (< 1: ADM "
            "ends lower). Growth (above) and level (here) can disagree: growth divides by the one-step "
            "error.",
            COMPOUNDING_LEVELS_HEADER,
            "ADM's error at the longest rollout length against each other model's.")
        md += claims_markdown(
            out, "compounding_levels_median", compounding_levels(frame, value="median_error"),
            "The same levels read on each seed's *median* over held-out starts instead of its mean. A few "
            "rollouts that diverge can carry a mean over 1000 starts by orders of magnitude; the median "
            "says whether the typical rollout agrees. Records without per-start medians are left out.",
            COMPOUNDING_LEVELS_HEADER,
            "ADM's median error over held-out starts at the longest rollout length against each other "
            "model's.")
        for value, name, what in (("error", "compounding_vs_references", "mean"),
                                  ("median_error", "compounding_vs_references_median", "median")):
            vs = versus_references(frame, references, value)
            if not vs:
                continue
            md += [
                f"**Against predicting without a model ({what} over held-out starts):** each model's error "
                "at the longest rollout length over a no-model predictor's on the same seed and segments "
                "(< 1: the model ends lower). A model that does not end below `train-mean-state` keeps no "
                "information about the state that many steps ahead. Mean [95% bootstrap interval over "
                "seeds].\n",
                out.table(name, VERSUS_REFERENCES_HEADER, vs,
                          f"Each model's {what} error at the longest length against the no-model "
                          "predictors'."),
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


def _uncertainty_section(out: ReportOutput, analyses: pd.DataFrame) -> list[str]:
    frame, problems, stated = analysis_frame(analyses, "uncertainty")
    md = []
    if len(frame):
        recorded = recorded_correlations(analyses, "uncertainty")
        have = set(zip(recorded["task"], recorded["seed"]))
        # records without correlations: computed here on their stored points, pooled over sources
        computed = pd.DataFrame(
            [
                {"task": t, "seed": sd, "model": m, "source": "all", "pearson": p, "spearman": r, "n": len(g)}
                for (t, sd, m), g in frame.groupby(["task", "seed", "model"], sort=True)
                if (t, sd) not in have
                for p, r in [correlations(g)]
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
                    points_text(g["n"], g["dropped"]),
                    _mean_std_text(pearson),
                    _mean_std_text(spearman),
                ]
            )
        out.csv(pd.DataFrame(table), "uncertainty_correlations.csv")
        overall = {
            (t["task"], t["model"]): (t["pearson_mean"], t["spearman_mean"])
            for t in table
            if t["source"] == "all"
        }
        out.figure(
            lambda: uncertainty_error_figure(frame, hue="source", annotations=overall),
            "uncertainty_vs_error.png",
        )
        header = ["task", "model", "points from", "seeds", "points per seed", "Pearson r", "Spearman ρ"]
        md += [
            "## Model uncertainty vs model error (ours; the paper's Figure 4)\n",
            _stated_lines(stated),
            f"Correlations {basis}; mean ± std over seeds; `all` pools the rollout policies. Points per "
            "seed: those a correlation used and, in brackets, their share of the points the rollouts "
            "visited; the rest had an input state with a velocity at the observation clip, to which the "
            "simulator cannot be reset (the record's `dropped_unreconstructible`). *Paper:* ADM "
            "0.98 on both tasks; the ensemble's 0.94 on Hopper was read from the figure by a third party; "
            "the paper does not say which correlation it used (REFERENCE.md 4.5).\n",
            out.table(
                "uncertainty_correlations",
                header,
                rows,
                "Correlation of model uncertainty with model error.",
            ),
            "![uncertainty vs error](uncertainty_vs_error.png)\n",
        ]
        md += claims_markdown(
            out, "uncertainty_claims", uncertainty_claims(recorded),
            "ADM's uncertainty correlates with the true model error at least as well as the ensemble's. "
            "Pearson r with all rollout sources pooled, per seed, and its difference from the ensemble's on "
            "the same seed.",
            ["task", "models", "model r", "ensemble r", "difference", "reading"],
            "ADM's correlation against the ensemble's.")
    if problems:
        md.append("Uncertainty records that could not be read:\n")
        md.append("".join(f"- {p}\n" for p in problems))
    return md


def analysis_sections(out: ReportOutput, analyses: pd.DataFrame) -> list[str]:
    if analyses.empty:
        return []
    md = _compounding_section(out, analyses) + _uncertainty_section(out, analyses) + holdout_section(
        out, analyses)
    known = {f"analysis-{n}" for n in ANALYSIS_COLUMNS}
    other = sorted(set(analyses["algo"]) - known)
    if other:
        md.append("Analysis records with no report section: " + ", ".join(f"`{o}`" for o in other) + ".\n")
    return md
