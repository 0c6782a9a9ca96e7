"""Figure helpers on synthetic data (axes, scales, legend entries, annotations), and the report
sections built from analysis records, ablation variants and online runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import PAPER_PRESENTATION, make_record, write_records

from benchmark.reporting.figures import (
    algo_palette,
    compounding_error_figure,
    correlations,
    interval_estimates_figure,
    learning_curves_figure,
    m_ablation_figure,
    mean_and_standard_error,
    online_curves_figure,
    performance_profile_figure,
    probability_of_improvement_figure,
    save_figure,
    uncertainty_error_figure,
)
from benchmark.reporting.frames import m_ablation_frame
from benchmark.reporting.readme import write_report
from benchmark.reporting.records import analyses_only, load_records, runs_only
from benchmark.reporting.stats import METRICS

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _legend_labels(fig) -> list[str]:
    labels = []
    for legend in fig.legends:
        labels += [t.get_text() for t in legend.get_texts()]
    for ax in fig.axes:
        if ax.get_legend() is not None:
            labels += [t.get_text() for t in ax.get_legend().get_texts()]
    return labels


def _curves() -> pd.DataFrame:
    rows = []
    for algo, slope in (("admpo-off", 2.0), ("bc", 1.0)):
        for task in ("local/hopper-medium", "local/walker2d-medium"):
            for seed in range(3):
                for step in (100, 200, 300):
                    rows.append(
                        {
                            "algo": algo,
                            "task": task,
                            "seed": seed,
                            "step": step,
                            "score": slope * step / 10 + seed,
                            "return": slope * step,
                        }
                    )
    return pd.DataFrame(rows)


def test_interval_estimates_figure_has_one_panel_per_metric():
    table = pd.DataFrame(
        [
            {"algo": a, "metric": m, "estimate": 50.0 + i, "ci_low": 45.0 + i, "ci_high": 55.0 + i}
            for i, a in enumerate(["bc", "admpo-off"])
            for m in METRICS
        ]
    )
    fig = interval_estimates_figure(table)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["Mean", "Median", "IQM", "Optimality gap"]
    assert [t.get_text() for t in visible[0].get_yticklabels()] == ["admpo-off", "bc"]
    assert len(visible[0].patches) == 2  # one CI bar per algorithm


def test_learning_curves_figure_panels_legend_and_asymptote():
    fig = learning_curves_figure(_curves(), value="score", asymptotes={"local/hopper-medium": 70.0},
                                 asymptote_label="BC final score")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["local/hopper-medium", "local/walker2d-medium"]
    assert _legend_labels(fig) == ["admpo-off", "bc", "BC final score"]
    dashed = [ln for ln in visible[0].get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 70.0
    # the mean line of admpo-off on hopper: mean over seeds 0,1,2 of 2*step/10 + seed
    line = next(ln for ln in visible[0].get_lines() if ln.get_linestyle() == "-")
    np.testing.assert_allclose(line.get_ydata(), [21.0, 41.0, 61.0])


def test_online_curves_figure_draws_the_sac_line_on_returns():
    curves = _curves().assign(task=lambda d: d["task"].str.replace("local/hopper-medium", "mujoco/Hopper"))
    fig = online_curves_figure(curves, sac_asymptote={"mujoco/Hopper": 3000.0})
    ax = next(ax for ax in fig.axes if ax.get_title() == "mujoco/Hopper")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("env steps after warm-up", "average return")
    assert any(ln.get_linestyle() == "--" and ln.get_ydata()[0] == 3000.0 for ln in ax.get_lines())
    # our SAC's final return at a short budget is not the converged return the paper's line shows
    assert "SAC final return (ours)" in _legend_labels(fig) and "SAC asymptote" not in _legend_labels(fig)


def test_compounding_error_figure_is_log_scale_and_shows_overflow_at_float32_max():
    rows = []
    for model, growth in (("adm", 1.1), ("ensemble", 3.0), ("bootrnn", 2.0)):
        for seed in range(2):
            for h in (1, 5, 10, 20):
                rows.append(
                    {
                        "model": model,
                        "task": "local/hopper-medium",
                        "seed": seed,
                        "rollout_length": h,
                        "error": 0.01 * growth**h,
                    }
                )
    rows.append(
        {
            "model": "ensemble",
            "task": "local/hopper-medium",
            "seed": 0,
            "rollout_length": 40,
            "error": float("inf"),
        }
    )
    rows.append(
        {"model": "ensemble", "task": "local/hopper-medium", "seed": 1, "rollout_length": 40, "error": None}
    )
    fig = compounding_error_figure(pd.DataFrame(rows))
    ax = next(ax for ax in fig.axes if ax.get_visible())
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "rollout length"
    assert sorted(_legend_labels(fig)) == ["adm", "bootrnn", "ensemble"]
    top = max(np.nanmax(ln.get_ydata()) for ln in ax.get_lines() if len(ln.get_ydata()))
    assert top == pytest.approx(float(np.finfo(np.float32).max))


def test_uncertainty_error_figure_titles_carry_the_correlations():
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, 300)
    points = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": "adm",
                    "source": np.repeat(["random", "behavior", "learned"], 100),
                    "uncertainty": u,
                    "error": 2.0 * u + 1.0,
                    "task": "hopper",
                }
            ),
            pd.DataFrame(
                {
                    "model": "ensemble",
                    "source": np.repeat(["random", "behavior", "learned"], 100),
                    "uncertainty": u,
                    "error": u**3 + rng.normal(0, 0.05, 300),
                    "task": "hopper",
                }
            ),
        ]
    )
    fig = uncertainty_error_figure(points)
    titles = [ax.get_title() for ax in fig.axes]
    assert "hopper / adm\nPearson r=1.000, Spearman ρ=1.000" in titles
    ens = points[points["model"] == "ensemble"]
    pearson, spearman = correlations(ens)
    assert f"hopper / ensemble\nPearson r={pearson:.3f}, Spearman ρ={spearman:.3f}" in titles
    assert pearson < 0.99
    assert sorted(_legend_labels(fig)) == ["behavior", "learned", "random"]


def test_same_data_gives_the_same_png_bytes(tmp_path):
    a = save_figure(learning_curves_figure(_curves()), tmp_path / "a.png")
    b = save_figure(learning_curves_figure(_curves()), tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_uncertainty_error_figure_prefers_given_correlations():
    points = pd.DataFrame(
        {
            "model": "adm",
            "source": ["a", "b"] * 5,
            "uncertainty": np.arange(10.0),
            "error": np.arange(10.0),
            "task": "t",
        }
    )
    fig = uncertainty_error_figure(points, annotations={("t", "adm"): (0.5, 0.25)})
    assert fig.axes[0].get_title() == "t / adm\nPearson r=0.500, Spearman ρ=0.250 (all points)"


def test_correlations_are_nan_when_undefined():
    assert all(np.isnan(correlations(pd.DataFrame({"uncertainty": [1.0, 1.0], "error": [1.0, 2.0]}))))


def test_m_ablation_figure_ticks_are_the_m_values():
    frame = pd.DataFrame(
        [{"task": "t", "m": m, "seed": s, "score": 50 + m + s} for m in (1, 2, 5, 10) for s in range(2)]
    )
    fig = m_ablation_figure(frame)
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1, 2, 5, 10]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [51.5, 52.5, 55.5, 60.5])


def test_rliable_figures_have_legends():
    prof = pd.DataFrame(
        [
            {"algo": a, "tau": t, "fraction": f, "ci_low": f - 0.1, "ci_high": f + 0.1}
            for a in ("bc", "td3bc")
            for t, f in ((0.0, 1.0), (50.0, 0.5), (100.0, 0.0))
        ]
    )
    assert _legend_labels(performance_profile_figure(prof)) == ["bc", "td3bc"]
    poi = pd.DataFrame(
        [{"algo_x": "admpo-off", "algo_y": "bc", "estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9}]
    )
    fig = probability_of_improvement_figure(poi)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["P(admpo-off > bc)"]


# ----------------------------------------------------------------------------------------------------
# Report sections from analysis records, ablation variants and online runs
# ----------------------------------------------------------------------------------------------------


def _analysis_record(name: str, task: str, seed: int, result: dict) -> dict:
    rec = make_record(f"analysis-{name}", task, seed, None, suite="extras", curve_scores=[])
    rec.update(
        {
            "analysis": name,
            "config": {},
            "curve": [],
            "final_score": None,
            "final_return": None,
            "final_rule": None,
            "result": result,
        }
    )
    return rec


def _extras_records() -> list[dict]:
    recs = []
    for seed in range(2):
        for m, base in ((1, 40.0), (5, 60.0)):
            rec = make_record(f"admpo-off@m={m}", "local/hopper-medium", seed, base + seed, suite="extras")
            rec.update({"algo_id": "admpo-off", "variant": f"m={m}"})
            recs.append(rec)
        # as adm/compounding_error.py writes it: per-model mean error per horizon (float32 max = overflow)
        horizons = [1, 5, 10, 100]
        models = {
            "adm": {"mean": [0.01 * 1.05**h for h in horizons[:3]] + [0.5 + seed], "overflow": [0.0] * 4,
                    "median": [0.01, 0.01, 0.02, 0.2 + seed],
                    "train": {"holdout_curve": [[1.0, 0.5, 0.3, 0.29, 0.3], [2.0, 1.0]][seed]}},
            "ensemble": {
                "mean": [0.01 * 2.5**h for h in horizons[:3]] + [FLOAT32_MAX],
                # a few starts overflow (they carry the mean); the typical start ends at 0.1
                "median": [0.02, 0.03, 0.05, 0.1],
                "overflow": [0, 0, 0, 0.01],
            },
        }
        result = {"horizons": horizons, "models": models, "metric": "raw-state MSE", "n_starts": 100}
        recs.append(_analysis_record("compounding-error", "local/hopper-medium-replay", seed, result))
        # the no-model yardstick on the same segments (adm/compounding_error.py: reference_errors)
        references = {"last-state": {"mean": [0.5, 1.0, 2.0, 4.0], "median": [0.4, 0.8, 1.6, 3.0]},
                      "train-mean-state": {"mean": [2.0] * 4, "median": [1.0, 1.0, 1.0, 0.5]}}
        recs.append(_analysis_record("compounding-references", "local/hopper-medium-replay", seed,
                                     {"horizons": horizons, "models": references, "n_starts": 100}))
        # a plain table with aliased column names works too
        rows = [{"model": "adm", "h": h, "mse": 0.1 * h} for h in (1, 2)]
        recs.append(_analysis_record("compounding-error", "local/walker2d-medium", seed, {"rows": rows}))
        u = np.linspace(0, 1, 30)
        points = {
            "model": ["adm"] * 30 + ["ensemble"] * 30,
            "source": ["random", "learned", "behavior"] * 20,
            "uncertainty": list(u) * 2,
            "error": list(3 * u) + list(u**2),
        }
        correlations = [
            {"model": "adm", "source": "all", "pearson": 0.9 + 0.02 * seed, "spearman": 0.95, "n": 1000},
            {"model": "adm", "source": "random", "pearson": 0.8, "spearman": 0.85, "n": 300,
             "dropped_unreconstructible": 100},
            {"model": "ensemble", "source": "all", "pearson": 0.7, "spearman": 0.75, "n": 1000},
        ]
        result = {"points": points, "correlations": correlations, "uncertainty": {"adm": "sqrt var"}}
        # as adm/compounding_error.py writes it: horizons and per-model training info, but no curves
        result.update({"horizons": [1, 2, 3], "models": {"adm": {"train": {"epochs": 3}}}})
        recs.append(_analysis_record("uncertainty", "local/hopper-medium-replay", seed, result))
        # without recorded correlations the report computes them on the stored points
        recs.append(_analysis_record("uncertainty", "local/walker2d-medium-replay", seed, {"points": points}))
        for algo, ret in (("admpo-on", 2500.0), ("sac", 3000.0)):
            recs.append(
                make_record(
                    algo,
                    "mujoco/Hopper",
                    seed,
                    None,
                    suite="extras",
                    final_return=ret + seed,
                    curve_scores=[None, None, None],
                )
            )
    recs.append(_analysis_record("uncertainty", "local/halfcheetah-medium-replay", 0, {"points": [{"x": 1}]}))
    return recs


@pytest.fixture(scope="module")
def extras_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("extras")
    write_records(root / "results", _extras_records())
    return write_report(
        "extras", root / "results", root / "out", bootstrap_reps=10, settings=PAPER_PRESENTATION
    ).parent


def test_analysis_records_are_not_scored_runs(tmp_path):
    write_records(tmp_path, _extras_records())
    frame = load_records(tmp_path, "extras")
    assert set(runs_only(frame)["algo"]) == {"admpo-off@m=1", "admpo-off@m=5", "admpo-on", "sac"}
    assert set(analyses_only(frame)["algo"]) == {
        "analysis-compounding-error", "analysis-compounding-references", "analysis-uncertainty"}
    ab = m_ablation_frame(frame)
    assert ab["m"].tolist() == [1, 1, 5, 5] and ab["score"].tolist() == [40.0, 41.0, 60.0, 61.0]


def test_report_compounding_error_section(extras_report):
    readme = (extras_report / "README.md").read_text()
    assert "![compounding error](compounding_error.png)" in readme
    assert "- **metric**: raw-state MSE" in readme and "- **n_starts**: 100" in readme
    md = (extras_report / "compounding_error.md").read_text()
    adm = next(line for line in md.splitlines() if "| local/hopper-medium-replay | adm |" in line)
    assert adm.rstrip(" |").endswith("1 ± 0.71")  # h=100: mean(0.5, 1.5) = 1, std 0.707
    ens = next(line for line in md.splitlines() if "| ensemble |" in line)
    assert ens.rstrip(" |").endswith("overflow (2/2 seeds)")
    walker = next(line for line in md.splitlines() if "| local/walker2d-medium | adm |" in line)
    assert "| 0.1 ± 0 |" in walker
    csv = pd.read_csv(extras_report / "compounding_error.csv")
    models = csv[csv["model"].isin(["adm", "ensemble"])]
    assert set(csv["model"]) == {"adm", "ensemble", "last-state", "train-mean-state"}  # + no-model rows
    assert len(models) == 2 * (8 + 2) and len(csv) == len(models) + 2 * 8
    assert (extras_report / "compounding_error.png").stat().st_size > 0


def test_report_compounding_claim_with_bootstrap_intervals(extras_report):
    """Growth = error at h=100 / error at h=1: ADM 0.5/0.0105 and 1.5/0.0105 (seeds 0, 1); the ensemble
    overflows at h=100 (float32 max / 0.025). With 2 seeds the interval spans the two seeds' values."""
    md = (extras_report / "compounding_claims.md").read_text()
    row = next(line for line in md.splitlines() if "| adm vs ensemble |" in line)
    assert "| 1 -> 100 | 95.2 [47.6, 143] |" in row
    assert row.rstrip(" |").endswith("adm grows more slowly")


def test_report_compounding_levels_at_the_longest_length(extras_report):
    """The level reading of the claim: ADM's error at h=100 (0.5 and 1.5 on seeds 0, 1) over the ensemble's
    (overflowed: float32's maximum) on each seed; the whole interval lies under 1: ADM ends lower."""
    md = (extras_report / "compounding_levels.md").read_text()
    row = next(line for line in md.splitlines() if "| adm vs ensemble |" in line)
    assert "| 100 | 1 [0.5, 1.5] | 3.4e+38 [3.4e+38, 3.4e+38] |" in row
    assert row.rstrip(" |").endswith("adm ends lower")
    assert "remains close to zero" in (extras_report / "README.md").read_text()


def test_report_reads_the_models_against_predicting_without_a_model(extras_report):
    """The compounding-references records join the per-length table and csv as '(no model)' rows, never the
    claims; each model's h=100 error over a no-model predictor's, per seed: ADM 0.5 and 1.5 over
    train-mean-state's 2.0 -> 0.25, 0.75 (ends lower); the overflowing ensemble ends higher. On the median
    the reading flips for ADM (0.2 and 1.2 over 0.5 -> 0.4, 2.4: not resolved)."""
    md = (extras_report / "compounding_error.md").read_text()
    assert "| local/hopper-medium-replay | train-mean-state (no model) | 2 ± 0 |" in md
    csv = pd.read_csv(extras_report / "compounding_error.csv")
    assert {"last-state", "train-mean-state"} <= set(csv["model"])
    claims = (extras_report / "compounding_claims.md").read_text()
    assert "state" not in claims  # no growth claim against a predictor without a model
    vs = (extras_report / "compounding_vs_references.md").read_text().splitlines()
    row = next(line for line in vs if "| adm vs train-mean-state |" in line)
    assert "| 100 | 1 [0.5, 1.5] | 2 [2, 2] | 0.5 [0.25, 0.75] | adm ends lower |" in row
    row = next(line for line in vs if "| ensemble vs train-mean-state |" in line)
    assert row.rstrip(" |").endswith("ensemble ends higher")
    assert any("| adm vs last-state |" in line for line in vs)
    median = (extras_report / "compounding_vs_references_median.md").read_text().splitlines()
    row = next(line for line in median if "| adm vs train-mean-state |" in line)
    assert "| 0.7 [0.2, 1.2] | 0.5 [0.5, 0.5] | 1.4 [0.4, 2.4] | not resolved (2 seeds) |" in row


def test_a_yardstick_scored_on_other_segments_is_left_out_and_named():
    """A compounding-references record whose split differs from its compounding-error twin's (other sizes)
    is named; a matching one and one with no twin are not."""
    from benchmark.reporting.model_checks import unmatched_references

    def rec(kind, task, seed, split):
        result = {"horizons": [1, 2], "n_starts": 8, "max_step": 3, "split": split}
        return {"status": "ok", "algo": f"analysis-{kind}", "task": task, "seed": seed, "result": result}

    frame = pd.DataFrame([rec("compounding-error", "a", 0, {"heldout_transitions": 10}),
                          rec("compounding-references", "a", 0, {"heldout_transitions": 12}),
                          rec("compounding-error", "a", 1, {"heldout_transitions": 10}),
                          rec("compounding-references", "a", 1, {"heldout_transitions": 10}),
                          rec("compounding-references", "b", 0, {})])
    assert unmatched_references(frame) == [
        (("a", 0), "its split differs from the compounding-error record's")]


def test_report_compounding_levels_on_the_median_over_starts(extras_report):
    """The same levels on each seed's median over held-out starts: ADM 0.2 and 1.2 against the ensemble's
    0.1, whose mean a few overflowing starts carry; per-seed ratios 2 and 12 lie above 1, so on the typical
    start ADM ends higher, the opposite of the mean's reading. The walker table stores no medians: no row."""
    md = (extras_report / "compounding_levels_median.md").read_text()
    row = next(line for line in md.splitlines() if "| adm vs ensemble |" in line)
    assert row.startswith("| local/hopper-medium-replay | adm vs ensemble | 100 |")
    assert "| 0.7 [0.2, 1.2] | 0.1 [0.1, 0.1] | 7 [2, 12] |" in row
    assert row.rstrip(" |").endswith("adm ends higher")
    assert "walker2d" not in md
    assert "*median* over held-out starts" in (extras_report / "README.md").read_text()


def test_a_claim_on_one_seed_shows_no_interval_and_no_finding():
    """One seed: a bootstrap interval would be the value itself; the reading names the seed's side only."""
    from benchmark.reporting.model_checks import _compared, _interval_text

    assert _interval_text(np.array([14.5])) == "14.5 (1 seed)"
    assert _compared(np.array([1.58]), "adm grows faster", "adm grows more slowly", 1.0) == \
        ["1.58 (1 seed)", "1 seed, no interval (on it: adm grows faster)"]
    assert _compared(np.array([0.5, 0.7]), "a", "b", 1.0)[1] == "b"  # two seeds: the interval decides


def test_report_holdout_curves_and_knees(extras_report):
    """Seed 0's ADM curve 1, .5, .3, .29, .3: 5 epochs, best at 4, knee (within 5% of .29) at 3; seed 1's
    2, 1: 2 epochs, best and knee at 2."""
    md = (extras_report / "holdout_curves.md").read_text()
    assert "| compounding-error | local/hopper-medium-replay | adm | 2 | 5 / 2 | 4 / 2 | 3 / 2 |" in md
    csv = pd.read_csv(extras_report / "holdout_curves.csv")
    assert len(csv) == 7 and csv["holdout_mse"].min() == pytest.approx(0.29)
    readme = (extras_report / "README.md").read_text()
    assert "![holdout curves](holdout_curves.png)" in readme
    # knees 3 and 2 -> the ADM/BootRNN cap rounds up to 5
    assert "Epoch caps at or past every knee above (rounded up to a multiple of 5): `model_max_epochs = 5`" \
        in readme


def test_caps_past_knees_cover_every_model_and_seed():
    """ADM knees 3 and 12, BootRNN 7 (one field for both: 15); the ensemble's knee 21 -> 25."""
    from benchmark.reporting.model_checks import caps_past_knees

    def curve(model, seed, values):
        return [{"analysis": "compounding-error", "task": "t", "seed": seed, "model": model, "epoch": i + 1,
                 "holdout_mse": v} for i, v in enumerate(values)]

    rows = (curve("adm", 0, [1, .5, .3, .3]) + curve("adm", 1, [1] * 11 + [.5, .5])
            + curve("bootrnn", 0, [1] * 6 + [.2, .2]) + curve("ensemble", 0, [1] * 20 + [.1, .1]))
    assert caps_past_knees(pd.DataFrame(rows)) == {"ensemble_max_epochs": 25, "model_max_epochs": 15}


def test_report_uncertainty_claim(extras_report):
    """Hopper: ADM's recorded r 0.90 and 0.92 vs the ensemble's 0.70: differences 0.20 and 0.22."""
    md = (extras_report / "uncertainty_claims.md").read_text()
    row = next(line for line in md.splitlines() if "| local/hopper-medium-replay | adm - ensemble |" in line)
    assert "| 0.21 [0.2, 0.22] |" in row and row.rstrip(" |").endswith("adm higher")


def test_report_uncertainty_section(extras_report):
    corr = pd.read_csv(extras_report / "uncertainty_correlations.csv")
    hopper = corr[corr["task"] == "local/hopper-medium-replay"].set_index(["model", "source"])
    # recorded correlations (over all points) are used as they are: mean over the two seeds
    assert hopper.loc[("adm", "all"), "pearson_mean"] == pytest.approx(0.91)
    assert hopper.loc[("adm", "random"), "spearman_mean"] == pytest.approx(0.85)
    assert hopper.loc[("ensemble", "all"), "n_seeds"] == 2
    # computed from the stored points where the records carry no correlations
    walker = corr[corr["task"] == "local/walker2d-medium-replay"].set_index(["model", "source"])
    u = np.linspace(0, 1, 30)
    assert walker.loc[("adm", "all"), "pearson_mean"] == pytest.approx(1.0)
    assert walker.loc[("ensemble", "all"), "pearson_mean"] == pytest.approx(np.corrcoef(u, u**2)[0, 1])
    md = (extras_report / "uncertainty_correlations.md").read_text()
    # points used per seed and the share kept of those visited: the pooled row sums its sources' drops
    hopper_adm = "| local/hopper-medium-replay | adm | all | 2 |"
    assert f"{hopper_adm} 1,000 (91% kept) | 0.910 ± 0.014 | 0.950 ± 0.000 |" in md
    assert "| local/hopper-medium-replay | adm | random | 2 | 300 (75% kept) |" in md
    assert "| local/hopper-medium-replay | ensemble | all | 2 | 1,000 | 0.700 ± 0.000 |" in md  # no count
    readme = (extras_report / "README.md").read_text()
    assert "![uncertainty vs error](uncertainty_vs_error.png)" in readme
    assert "- **uncertainty[adm]**: sqrt var" in readme
    assert "lacks columns" in readme and "halfcheetah" in readme  # the malformed analysis result is named


def test_report_m_ablation_and_online_sections(extras_report):
    md = (extras_report / "m_ablation.md").read_text()
    assert "| admpo-off | local/hopper-medium | 40.5 ± 0.7 (2 seeds) | 60.5 ± 0.7 (2 seeds) |" in md
    assert (extras_report / "m_ablation.png").is_file() and (extras_report / "online_curves.png").is_file()
    per_task = pd.read_csv(extras_report / "per_task.csv")
    hopper = per_task[per_task["task"] == "mujoco/Hopper"].set_index("algo")
    assert hopper.loc["sac", "unit"] == "return" and hopper.loc["sac", "mean"] == pytest.approx(3000.5)
    readme = (extras_report / "README.md").read_text()
    assert "## Online learning curves" in readme


def test_mean_and_standard_error_by_hand():
    data = pd.DataFrame({"algo": ["a"] * 3 + ["b"], "step": [1, 1, 1, 1], "score": [1.0, 2.0, 6.0, 4.0]})
    out = mean_and_standard_error(data, ["algo", "step"], "score").set_index("algo")
    assert out.loc["a", "mean"] == pytest.approx(3.0) and out.loc["a", "n"] == 3
    assert out.loc["a", "se"] == pytest.approx(np.std([1.0, 2.0, 6.0], ddof=1) / np.sqrt(3))
    assert out.loc["b", "se"] == 0.0


def test_the_no_model_yardsticks_are_drawn_dashed():
    """Figure 2 draws the predictors without a model dashed, the models solid, in the panels and legend."""
    from matplotlib.colors import to_hex

    rows = [{"task": "t", "model": name, "seed": seed, "rollout_length": h, "error": 0.1 * h + i}
            for i, name in enumerate(("adm", "train-mean-state")) for seed in (0, 1) for h in (1, 2, 3)]
    fig = compounding_error_figure(pd.DataFrame(rows), dashed=frozenset({"train-mean-state"}))
    colors = algo_palette(["adm", "train-mean-state"])
    styles = {to_hex(line.get_color()): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles[to_hex(colors["adm"])] == "-" and styles[to_hex(colors["train-mean-state"])] == "--"
    legend = {text.get_text(): handle.get_linestyle()
              for text, handle in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert legend == {"adm": "-", "train-mean-state": "--"}
