"""The paper's model claims measured on analysis records, and the models' training evidence: each model's
holdout MSE per epoch with its knee (where an epoch cap stops costing accuracy), ADM's compounding-error
growth against the other models' (Figure 2's claim) and ADM's uncertainty-error correlation against the
ensemble's (Figure 4's claim), each with a 95% bootstrap interval over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.reporting.figures import log_curves_figure
from benchmark.reporting.output import ReportOutput
from benchmark.reporting.stats import mean_interval
from benchmark.reporting.tables import MISSING

FLOAT32_MAX = float(np.finfo(np.float32).max)


def holdout_curves_figure(curves: pd.DataFrame, hue: str = "model", col: str = "panel") -> Figure:
    """Each model's holdout MSE after every training epoch (log y), one panel per ``col``; mean ± standard
    error over seeds. Where a curve flattens is where an epoch cap stops costing accuracy."""
    return log_curves_figure(curves, "epoch", "holdout_mse", hue, col, "training epoch",
                             "holdout MSE (own metric, log scale)")


KNEE_TOLERANCE = 0.05  # the knee: the first epoch whose holdout MSE is within 5% of the curve's minimum


def holdout_frame(analyses: pd.DataFrame) -> pd.DataFrame:
    """``analysis, task, seed, model, epoch, holdout_mse``: every model's holdout MSE after each training
    epoch, from the ``holdout_curve`` the analyses store under ``result["models"][model]["train"]``."""
    rows = []
    finished = analyses[analyses["status"] == "ok"]
    for rec in finished.itertuples(index=False):
        models = rec.result.get("models") if isinstance(rec.result, dict) else None
        for model, entry in sorted((models or {}).items()):
            train = entry.get("train") if isinstance(entry, dict) else None
            curve = train.get("holdout_curve") if isinstance(train, dict) else None
            for epoch, value in enumerate(curve or [], start=1):
                rows.append({"analysis": str(rec.algo).removeprefix("analysis-"), "task": rec.task,
                             "seed": int(rec.seed), "model": model, "epoch": epoch, "holdout_mse": value})
    columns = ["analysis", "task", "seed", "model", "epoch", "holdout_mse"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["holdout_mse"] = pd.to_numeric(frame["holdout_mse"], errors="coerce")
    return frame


def knee_epoch(curve: np.ndarray, tolerance: float = KNEE_TOLERANCE) -> int:
    """The first epoch (1-based) whose value is within ``tolerance`` of the curve's minimum."""
    finite = np.where(np.isfinite(curve), curve, np.inf)
    return int(np.argmax(finite <= (1.0 + tolerance) * finite.min())) + 1


KNEE_HEADER = ["analysis", "task", "model", "seeds", "epochs trained", "best epoch",
               f"knee (within {KNEE_TOLERANCE:.0%} of best)"]


def knee_rows(frame: pd.DataFrame) -> list[list[str]]:
    """Per (analysis, task, model) of a :func:`holdout_frame`: seeds, then epochs trained, best epoch and
    knee per seed (separated by /), as :data:`KNEE_HEADER` names them."""
    rows = []
    for (analysis, task, model), g in frame.groupby(["analysis", "task", "model"], sort=True):
        per_seed = [sub.sort_values("epoch")["holdout_mse"].to_numpy(float) for _, sub in g.groupby("seed")]
        epochs = [len(c) for c in per_seed]
        best = [int(np.nanargmin(c)) + 1 for c in per_seed]
        knees = [knee_epoch(c) for c in per_seed]
        rows.append([analysis, task, model, str(len(per_seed)), " / ".join(map(str, epochs)),
                     " / ".join(map(str, best)), " / ".join(map(str, knees))])
    return rows


# the sizes field that caps each model's training epochs (adm/analysis.py: ADM and BootRNN share one)
CAP_FIELDS = {"adm": "model_max_epochs", "bootrnn": "model_max_epochs", "ensemble": "ensemble_max_epochs"}
CAP_ROUNDING = 5  # ours: caps are rounded up to a multiple of this


def caps_past_knees(frame: pd.DataFrame) -> dict[str, int]:
    """Per sizes field of :data:`CAP_FIELDS`: the smallest multiple of :data:`CAP_ROUNDING` at or past every
    knee of the models it caps, over all tasks and seeds of a :func:`holdout_frame`."""
    caps: dict[str, int] = {}
    for (_, _, model, _), g in frame.groupby(["analysis", "task", "model", "seed"], sort=True):
        field = CAP_FIELDS.get(model)
        if field is None:
            continue
        knee = knee_epoch(g.sort_values("epoch")["holdout_mse"].to_numpy(float))
        caps[field] = max(caps.get(field, 0), -(-knee // CAP_ROUNDING) * CAP_ROUNDING)
    return dict(sorted(caps.items()))


def holdout_section(out: ReportOutput, analyses: pd.DataFrame) -> list[str]:
    frame = holdout_frame(analyses)
    if frame.empty:
        return []
    out.csv(frame, "holdout_curves.csv")
    panels = frame.assign(panel=frame["analysis"] + ": " + frame["task"])
    out.figure(lambda: holdout_curves_figure(panels), "holdout_curves.png")
    rows = knee_rows(frame)
    return [
        "## Model training: holdout MSE per epoch\n",
        "Each model's own holdout metric after every training epoch (ADM and BootRNN: MSE over k = 1..m on "
        "their holdout windows; the ensemble: elite-mean one-step MSE), mean ± standard error over seeds. "
        "An epoch cap past the knee of these curves costs little accuracy; a curve still falling at its last "
        "epoch says the model is undertrained at this budget. Per-seed values are separated by /.\n",
        out.table("holdout_curves", KNEE_HEADER, rows, "Epochs trained, best epoch and knee per model."),
        "Epoch caps at or past every knee above (rounded up to a multiple of "
        f"{CAP_ROUNDING}): " + ", ".join(f"`{k} = {v}`" for k, v in caps_past_knees(frame).items()) + ".\n",
        "![holdout curves](holdout_curves.png)\n",
    ]


def _interval_text(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if len(finite) == 1:  # one seed: a bootstrap interval would be the value itself, which says nothing
        return f"{finite[0]:.3g} (1 seed)"
    return _fmt_interval(*mean_interval(values))


def _fmt_interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.3g} [{low:.3g}, {high:.3g}]" if np.isfinite(mean) else MISSING


def _compared(values: np.ndarray, above: str, below: str, neutral: float) -> list[str]:
    """``[interval text, reading]`` from one bootstrap: the seeds' mean [95% interval], and which side of
    ``neutral`` the interval lies on, if it lies on one. One seed has no interval: its side is shown as
    that seed's, not as a finding."""
    finite = values[np.isfinite(values)]
    if len(finite) == 1:
        side = above if finite[0] > neutral else below if finite[0] < neutral else "neither"
        return [_interval_text(finite), f"1 seed, no interval (on it: {side})"]
    mean, low, high = mean_interval(values)
    if not np.isfinite(mean):
        return [MISSING, MISSING]
    text = _fmt_interval(mean, low, high)
    if low > neutral:
        return [text, above]
    if high < neutral:
        return [text, below]
    return [text, f"not resolved ({len(values[np.isfinite(values)])} seeds)"]


def error_ends(task_frame: pd.DataFrame, value: str = "error") -> tuple[list[int], pd.DataFrame]:
    """One task's rollout lengths (sorted) and its rows at the first and the last of them, an overflowed
    ``value`` (non-finite, or past float32's maximum) counted as float32's maximum, as the paper draws it.
    A missing ``value`` (NaN: the record did not store it) stays missing."""
    lengths = sorted(set(task_frame["rollout_length"].dropna().astype(int)))
    at = task_frame[task_frame["rollout_length"].isin(lengths[:1] + lengths[-1:])].copy()
    column = at[value]
    at[value] = column.where(np.isfinite(column) | column.isna(), FLOAT32_MAX).clip(upper=FLOAT32_MAX)
    return lengths, at


def compounding_claims(frame: pd.DataFrame, reference: str = "adm") -> list[list[str]]:
    """The paper's Figure 2 claim, per task: ``reference``'s error grows more slowly with the rollout length
    than each other model's. Growth = error at the longest length / error at length 1, per seed; compared
    as the per-seed ratio of growths (same seed, same data split), with 95% bootstrap intervals over seeds.
    Overflowed errors count as float32's maximum."""
    rows = []
    for task, g in frame.groupby("task", sort=True):
        lengths, at = error_ends(g)
        if len(lengths) < 2 or reference not in set(g["model"]):
            continue
        first, last = lengths[0], lengths[-1]
        table = at.pivot_table(index=["model", "seed"], columns="rollout_length", values="error")
        growth = (table[last] / table[first]).rename("growth").reset_index()
        ref = growth[growth["model"] == reference].set_index("seed")["growth"]
        for model, other in growth[growth["model"] != reference].groupby("model", sort=True):
            other = other.set_index("seed")["growth"]
            seeds = ref.index.intersection(other.index)
            ratio = (ref[seeds] / other[seeds]).to_numpy(float)
            ours, theirs = ref[seeds].to_numpy(float), other[seeds].to_numpy(float)
            reading = _compared(ratio, f"{reference} grows faster", f"{reference} grows more slowly", 1.0)
            rows.append([task, f"{reference} vs {model}", f"{first} -> {last}",
                         _interval_text(ours), _interval_text(theirs), *reading])
    return rows


COMPOUNDING_LEVELS_HEADER = ["task", "models", "length", "ADM error", "other error", "ratio", "reading"]


def compounding_levels(frame: pd.DataFrame, reference: str = "adm", value: str = "error") -> list[list[str]]:
    """The paper's Figure 2 claim read as levels (its text: ADM's curve "remains close to zero" while the
    others grow exponentially), per task: ``reference``'s error at the longest rollout length against each
    other model's, as the per-seed ratio (same seed, same held-out segments; < 1: ``reference`` ends lower)
    with 95% bootstrap intervals over seeds. Overflowed errors count as float32's maximum. ``value`` picks
    the per-seed statistic over held-out starts: ``error`` (their mean) or ``median_error``; seeds whose
    record lacks it are left out, and nothing is returned when no record has it."""
    if value not in frame:
        return []
    rows = []
    for task, g in frame.groupby("task", sort=True):
        lengths, at = error_ends(g, value)
        if not lengths or reference not in set(g["model"]):
            continue
        last = lengths[-1]
        table = at[at["rollout_length"] == last].pivot_table(index="seed", columns="model", values=value)
        if reference not in table:
            continue
        for model in sorted(m for m in table.columns if m != reference):
            pair = table[[reference, model]].dropna()
            if pair.empty:
                continue
            ours, theirs = pair[reference].to_numpy(float), pair[model].to_numpy(float)
            reading = _compared(ours / theirs, f"{reference} ends higher", f"{reference} ends lower", 1.0)
            rows.append([task, f"{reference} vs {model}", str(last), _interval_text(ours),
                         _interval_text(theirs), *reading])
    return rows


VERSUS_REFERENCES_HEADER = ["task", "model vs no model", "length", "model error", "no-model error", "ratio",
                            "reading"]


def versus_references(models: pd.DataFrame, references: pd.DataFrame, value: str = "error"
                      ) -> list[list[str]]:
    """Each model's error at the longest rollout length against each predictor that uses no model (the
    ``compounding-references`` analysis: same segments, same metric), as the per-seed ratio with its 95%
    bootstrap interval (< 1: the model ends lower, i.e. still carries information h steps ahead)."""
    if models.empty or references.empty or value not in models or value not in references:
        return []
    combined = pd.concat([models, references], ignore_index=True)
    names = set(references["model"])
    rows = [row for model in sorted(set(models["model"]) - names)
            for row in compounding_levels(combined, reference=model, value=value)
            if row[1].split(" vs ", 1)[1] in names]
    return sorted(rows, key=lambda row: (row[0], row[1]))


def uncertainty_claims(recorded: pd.DataFrame, reference: str = "ensemble") -> list[list[str]]:
    """The paper's Figure 4 claim, per task: ADM's uncertainty correlates with the true model error at least
    as well as the ensemble's. Per seed, each ADM variant's Pearson r (all rollout sources pooled) minus the
    ensemble's, with its 95% bootstrap interval over seeds."""
    rows = []
    pooled = recorded[recorded["source"] == "all"]
    for task, g in pooled.groupby("task", sort=True):
        by_model = {m: sub.set_index("seed")["pearson"] for m, sub in g.groupby("model")}
        if reference not in by_model:
            continue
        ref = by_model[reference]
        for model in sorted(m for m in by_model if m != reference):
            seeds = ref.index.intersection(by_model[model].index)
            ours, theirs = by_model[model][seeds].to_numpy(float), ref[seeds].to_numpy(float)
            diff = ours - theirs
            rows.append([task, f"{model} - {reference}", _interval_text(ours), _interval_text(theirs),
                         *_compared(diff, f"{model} higher", f"{reference} higher", 0.0)])
    return rows


def claims_markdown(out: ReportOutput, name: str, rows: list[list[str]], claim: str, header: list[str],
                    caption: str) -> list[str]:
    """A claim-check table under its lead paragraph (nothing when no task has the models to compare)."""
    if not rows:
        return []
    lead = f"**The paper's claim, measured:** {claim} Mean [95% bootstrap interval over seeds].\n"
    return [lead, out.table(name, header, rows, caption)]


SEGMENT_FIELDS = ("horizons", "n_starts", "max_step", "split")  # what says which segments were scored


def unmatched_references(analyses: pd.DataFrame) -> list[tuple[tuple[str, int], str]]:
    """``((task, seed), why)`` per compounding-references record whose segments (its
    :data:`SEGMENT_FIELDS`) differ from the compounding-error record of the same task and seed."""
    finished = analyses[analyses["status"] == "ok"]
    by_kind: dict[str, dict] = {}
    for rec in finished.itertuples(index=False):
        if isinstance(rec.result, dict):
            by_kind.setdefault(str(rec.algo), {})[(rec.task, int(rec.seed))] = rec.result
    models = by_kind.get("analysis-compounding-error", {})
    out = []
    for key, ref in sorted(by_kind.get("analysis-compounding-references", {}).items()):
        if key in models:
            differ = [f for f in SEGMENT_FIELDS if ref.get(f) != models[key].get(f)]
            if differ:
                verb = "differs" if len(differ) == 1 else "differ"
                out.append((key, f"its {', '.join(differ)} {verb} from the compounding-error record's"))
    return out


def points_text(n: pd.Series, dropped: pd.Series) -> str:
    """Mean points per seed a correlation used and, where the record counts the points it dropped at the
    observation clip, the share kept."""
    n = pd.to_numeric(n, errors="coerce")
    dropped = pd.to_numeric(dropped, errors="coerce")
    if n.dropna().empty:
        return MISSING
    text = f"{n.mean():,.0f}"
    both = n.notna() & dropped.notna()
    if both.any():
        text += f" ({n[both].sum() / (n[both].sum() + dropped[both].sum()):.0%} kept)"
    return text
