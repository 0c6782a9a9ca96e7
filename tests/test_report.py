"""Reports: tables (markdown/LaTeX/CSV) beside the paper's numbers, figures, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import (
    KNOWN_TASKS,
    PAPER_PRESENTATION,
    known_records,
    known_scores,
    make_record,
    write_records,
)

from benchmark.reporting.output import SMOKE_WARNING
from benchmark.reporting.paper import load_paper_table, paper_comparison_rows, paper_row
from benchmark.reporting.readme import write_report
from benchmark.reporting.stats import METRICS
from benchmark.reporting.tables import latex_escape, latex_table, md_to_latex_cell, task_order

REPS = 20


def _suite_records() -> list[dict]:
    recs = known_records()
    # td3bc fails its only hopper-random run; bc finishes one of three requested seeds there
    recs.append(make_record("td3bc", "local/hopper-random", 0, None, suite="synth", status="failed"))
    recs.append(make_record("bc", "local/hopper-random", 0, 5.0, suite="synth"))
    return recs


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_records(root / "results", _suite_records())
    # a broken file among good ones: reported as a failed run, never a crash
    (root / "results" / "synth" / "bc" / "local__hopper-medium" / "seed-9.json").write_text("{")
    readme = write_report(
        "synth",
        root / "results",
        root / "out",
        seeds_requested=3,
        bootstrap_reps=REPS,
        seed=0,
        settings=PAPER_PRESENTATION,
    )
    return readme.parent


def test_report_writes_every_artifact(full_report):
    for name in (
        "README.md",
        "per_task.md",
        "per_task.tex",
        "per_task.csv",
        "aggregates.csv",
        "aggregates.md",
        "aggregates.tex",
        "d4rl_table1_local.md",
        "d4rl_table1_local.tex",
        "aggregate_intervals.png",
        "performance_profiles.png",
        "probability_of_improvement.png",
        "learning_curves.png",
        "learning_curves_iqm.png",
    ):
        assert (full_report / name).is_file(), name
        assert (full_report / name).stat().st_size > 0
    readme = (full_report / "README.md").read_text()
    for png in ("aggregate_intervals.png", "learning_curves.png", "performance_profiles.png"):
        assert f"]({png})" in readme
    assert "`smoke`" in readme and "`deadbeef`" in readme and "Seeds requested:** 3" in readme
    assert "not D4RL" in readme and "paper" in readme
    assert "## Failed runs" in readme and "RuntimeError: boom" in readme
    assert "admbench `0.1.0`" in readme  # versions from the records
    assert "| local/hopper-medium | 2000 | 7 | 123.5 | `abababababababab` |" in readme


def test_per_task_csv_and_missing_cells(full_report):
    per_task = pd.read_csv(full_report / "per_task.csv")
    assert list(per_task.columns[:5]) == ["algo", "task", "n_seeds", "mean", "std"]
    scores = known_scores()
    for algo, s in scores.items():
        for j, task in enumerate(KNOWN_TASKS):
            row = per_task[(per_task["algo"] == algo) & (per_task["task"] == task)].iloc[0]
            assert row["n_seeds"] == 3
            assert row["mean"] == pytest.approx(s[:, j].mean(), abs=1e-6)
            assert row["std"] == pytest.approx(s[:, j].std(ddof=1), abs=1e-6)
    missing = per_task[(per_task["algo"] == "admpo-off") & (per_task["task"] == "local/hopper-random")].iloc[
        0
    ]
    assert missing["n_seeds"] == 0 and np.isnan(missing["mean"])
    md = (full_report / "per_task.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| local/hopper-random"))
    assert "— (0/3 seeds)" in row and "— (0/3 seeds, 1 failed)" in row and "5.0 (1/3 seeds)" in row
    assert "| 0.0" not in row
    assert "Fewer seeds than requested (3)" in (full_report / "README.md").read_text()


def test_aggregates_csv_columns_and_common_tasks(full_report):
    table = pd.read_csv(full_report / "aggregates.csv")
    assert list(table.columns) == ["algo", "metric", "estimate", "ci_low", "ci_high"]
    assert set(table["metric"]) == set(METRICS)
    # hopper-random is not shared by every algorithm, so all aggregates are over the three medium tasks
    for algo, s in known_scores().items():
        mean = table[(table["algo"] == algo) & (table["metric"] == "mean")]["estimate"].iloc[0]
        assert mean == pytest.approx(s.mean(), abs=1e-5)
    assert "left out: `local/hopper-random`" in (full_report / "README.md").read_text()


def test_paper_table_puts_the_paper_value_beside_ours(full_report):
    # every task of this suite is local: its rows go to their own table, without a difference column
    assert not (full_report / "d4rl_table1.md").exists()
    md = (full_report / "d4rl_table1_local.md").read_text()
    header = md.splitlines()[0]
    assert "| bc ours | bc paper | td3bc ours" in header and "admpo-off paper |" in header
    assert "Δ" not in header
    row = next(
        line for line in md.splitlines() if line.startswith("| hopper-medium (our local data, not D4RL)")
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    cols = [c.strip() for c in header.strip("|").split("|")]
    get = dict(zip(cols, cells))
    ours = known_scores()["admpo-off"][:, 0]
    assert get["admpo-off ours"] == f"**{ours.mean():.1f} ± {ours.std(ddof=1):.1f}**"  # best of the row
    assert get["admpo-off paper"] == "**107.4**"  # the paper's best in this row, REFERENCE.md 4.3
    assert get["bc paper"] == "54.1"
    readme = (full_report / "README.md").read_text()
    assert "not comparable with the paper's D4RL numbers" in readme
    tex = (full_report / "d4rl_table1_local.tex").read_text()
    assert r"\textbf{107.4}" in tex and r"\toprule" in tex and r"$\pm$" in tex


def test_every_table_and_figure_names_its_budget(full_report):
    for name in ("per_task", "aggregates", "d4rl_table1_local"):
        assert "Budget `smoke` (" in (full_report / f"{name}.md").read_text(), name
        assert "Budget smoke (" in (full_report / f"{name}.tex").read_text().replace("`", ""), name
    readme = (full_report / "README.md").read_text()
    assert f"**Smoke budget: {SMOKE_WARNING}.**" in readme
    assert readme.count("Smoke runs are untrained plumbing checks") >= 3  # the caption under each table


def test_local_and_d4rl_rows_are_separate_tables(tmp_path):
    recs = [make_record("bc", task, s, 50.0 + s, suite="mix") for s in range(2)
            for task in ("d4rl/hopper-medium-v2", "local/hopper-medium")]
    write_records(tmp_path / "results", recs)
    out = write_report(
        "mix", tmp_path / "results", tmp_path / "out", bootstrap_reps=REPS, figures=False
    )
    d4rl = (out.parent / "d4rl_table1.md").read_text()
    local = (out.parent / "d4rl_table1_local.md").read_text()
    assert "| hopper-medium |" in d4rl and "local data" not in d4rl and "bc Δ" in d4rl
    assert "hopper-medium (our local data, not D4RL)" in local and "Δ" not in local.splitlines()[0]


def test_same_records_give_byte_identical_tables(full_report):
    # the figures' bytes are checked in test_report_figures.py; here the second report skips drawing them
    root = full_report.parent
    again = write_report(
        "synth",
        root / "results",
        root / "again",
        seeds_requested=3,
        bootstrap_reps=REPS,
        seed=0,
        figures=False,
        settings=PAPER_PRESENTATION,
    ).parent
    files = sorted(p.name for p in again.iterdir())
    assert {p.name for p in full_report.iterdir() if p.suffix != ".png"} == set(files)
    assert not any(name.endswith(".png") for name in files)
    for name in files:
        assert (full_report / name).read_bytes() == (again / name).read_bytes(), name


def test_empty_suite_writes_a_readme_saying_so(tmp_path):
    (tmp_path / "results").mkdir()
    readme = write_report("none", tmp_path / "results", tmp_path / "out")
    assert "No run records" in readme.read_text()


def test_malformed_record_does_not_stop_the_report(full_report):
    text = (full_report / "README.md").read_text()
    assert "malformed record" in text and "seed-9.json" in text


def test_paper_row_mapping():
    assert paper_row("d4rl/hopper-medium-v2") == ("d4rl_table1", "hopper-medium", False)
    assert paper_row("local/walker2d-medium-replay") == ("d4rl_table1", "walker2d-medium-replay", True)
    assert paper_row("neorl/HalfCheetah-v3-high") == ("neorl_table2", "neorl-halfcheetah-high", False)
    assert paper_row("mujoco/Hopper") is None


@pytest.mark.parametrize(
    "name,n_rows,n_algos,spot",
    [
        ("d4rl_table1", 12, 10, ("hopper-random", "admpo-off", 32.7)),
        ("neorl_table2", 9, 7, ("neorl-walker2d-high", "mopo", 18.0)),
    ],
)
def test_paper_data_is_complete_and_its_averages_match(name, n_rows, n_algos, spot):
    table = load_paper_table(name)
    assert len(table.row_order) == n_rows and len(table.algo_order) == n_algos
    assert len(table.values) == n_rows * n_algos
    means = table.values.groupby("algo")["score"].mean().round(1)
    published = table.average.set_index("algo")["average"]
    pd.testing.assert_series_equal(means.sort_index(), published.sort_index(), check_names=False)
    assert set(table.sources["algo"]) == set(table.algo_order)
    assert table.value(spot[0], spot[1]) == spot[2]  # spot check against REFERENCE.md 4.3/4.4


def _stats(rows: list[tuple[str, str, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"algo": a, "task": t, "n_seeds": n, "mean": m, "std": s, "unit": "score", "n_failed": 0}
            for a, t, n, m, s in rows
        ]
    )


def test_neorl_table2_rows_follow_the_paper_order_and_use_official_labels():
    stats = _stats(
        [
            ("admpo-off", "neorl/Walker2d-v3-high", 5, 80.0, 2.0),
            ("admpo-off", "neorl/Hopper-v3-low", 5, 20.0, 1.0),
            ("mopo", "neorl/Hopper-v3-low", 5, 7.0, 1.0),
            ("mopo", "neorl/Walker2d-v3-high", 0, float("nan"), float("nan")),
        ]
    )
    header, rows = paper_comparison_rows(stats, load_paper_table("neorl_table2"), requested=5)
    assert header[1:4] == ["mopo ours", "mopo paper", "mopo Δ"]  # the paper's column order: MOPO before ADMPO
    assert [r[0] for r in rows] == [
        "neorl-hopper-low",
        "neorl-walker2d-high",
        "**Average over these 2 rows**",
    ]
    low, high, avg = rows
    # paper (REFERENCE.md 4.4): hopper-low MOPO 6.2, ADMPO-OFF 22.3; walker2d-high MOPO 18.0, ADMPO-OFF 82.2
    assert low[1:] == ["7.0 ± 1.0", "6.2", "+0.8", "**20.0 ± 1.0**", "**22.3**", "-2.3"]
    assert high[1:] == ["— (0/5 seeds)", "18.0", "—", "80.0 ± 2.0", "**82.2**", "-2.2"]
    assert avg[1:] == ["— (1/2 rows)", "12.1", "—", "50.0", "52.2", "-2.2"]


def test_d4rl_rows_are_not_labelled_local_and_seed_shortfall_is_shown():
    stats = _stats([("bc", "d4rl/hopper-medium-v2", 2, 50.0, 1.0)])
    _, rows = paper_comparison_rows(stats, load_paper_table("d4rl_table1"), requested=5)
    assert rows[0][:4] == ["hopper-medium", "50.0 ± 1.0 (2/5 seeds)", "54.1", "-4.1"]


def test_latex_cells_escape_and_bold():
    assert md_to_latex_cell("**5.0 ± 1.0**") == r"\textbf{5.0 $\pm$ 1.0}"
    assert latex_escape("a_b — Δ γ ρ 5%") == r"a\_b --- $\Delta$ $\gamma$ $\rho$ 5\%"
    tex = latex_table(["Task", "x"], [["t_1", "1.0"], ["**Average (1 row)**", "1.0"]], "cap", "tab:x")
    assert r"\midrule" in tex.split("t\\_1")[1]  # a rule above the average row
    assert tex.count(r"\\") == 3 and r"\begin{tabular}{lr}" in tex


def test_tasks_sort_in_the_papers_order():
    tasks = [
        "d4rl/walker2d-random-v2",
        "d4rl/hopper-medium-v2",
        "d4rl/hopper-random-v2",
        "neorl/Hopper-v3-high",
    ]
    tasks += ["neorl/Walker2d-v3-low"]
    assert sorted(tasks, key=task_order) == [
        "d4rl/hopper-random-v2",
        "d4rl/walker2d-random-v2",
        "d4rl/hopper-medium-v2",
        "neorl/Walker2d-v3-low",
        "neorl/Hopper-v3-high",
    ]


def test_reporting_rooms_import_only_rooms_below_them():
    """The reporting package reads as rliable does: each room imports only rooms listed before it, and
    none is over 450 lines."""
    import ast
    from pathlib import Path

    order = ["records", "stats", "frames", "tables", "figures", "output", "paper", "sections", "diagnostics",
             "model_checks", "analyses", "readme"]
    folder = Path(__file__).resolve().parent.parent / "benchmark" / "reporting"
    assert sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") == sorted(order)
    for i, room in enumerate(order):
        source = (folder / f"{room}.py").read_text()
        assert len(source.splitlines()) <= 450, room
        for node in ast.walk(ast.parse(source)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["benchmark", "reporting"] and len(parts) > 2 and parts[2] in order:
                    assert order.index(parts[2]) < i, f"{room} imports {parts[2]}, which is not below it"


def test_the_budget_line_names_what_the_runs_trained_for():
    """From the configs, not the last evaluation's step: online runs count env steps after the warm-up
    (the last evaluation sits one interval before the end), offline runs gradient steps."""
    from benchmark.reporting.output import budget_label
    from benchmark.reporting.records import run_length

    online = run_length({"env_steps": 15000, "start_learning": 5000, "eval_interval": 1000})
    offline = run_length({"epochs": 20, "steps_per_epoch": 500})
    assert (online, offline) == ("15000 env steps after 5000 warm-up", "10000 gradient steps")
    runs = pd.DataFrame({"status": ["ok", "ok", "failed"], "budget": ["short"] * 3,
                         "length": [online, online, "1 gradient steps"], "curve": [[{"step": 14000}]] * 3})
    assert budget_label(runs) == "Budget `short` (15000 env steps after 5000 warm-up per run)."


def test_diagnostics_read_each_method_and_carry_its_training_values():
    """MBPO-like: 7 -> ~30 for three evaluations -> 9.8 reads "fell back"; SAC-like: 10 -> 8.6 "no gain";
    a steady climb 2 -> 11 "learned". One lucky evaluation (BC's 23 among 7s) is not a peak."""
    from benchmark.reporting.diagnostics import best_window_mean, diagnostics_frame, reading

    assert reading(7.0, 30.0, 9.8) == "peaked at 30.0, then fell back"
    assert reading(10.1, 10.1, 8.6) == "no gain over its first evaluation"
    assert reading(1.9, 11.4, 11.1) == "learned"
    assert best_window_mean([7.5, 7.2, 23.2, 7.8, 13.1, 7.7]) == pytest.approx((23.2 + 7.8 + 13.1) / 3)
    assert best_window_mean([5.0]) == 5.0

    def curve(scores, **last):
        points = [{"step": 1000 * i, "score": s} for i, s in enumerate(scores)]
        points[-1].update(last)
        return points

    runs = pd.DataFrame({
        "algo": ["mbpo", "mbpo", "sac"], "task": ["mujoco/Hopper"] * 3, "status": ["ok", "ok", "ok"],
        "final_score": [9.0, 11.0, 8.6],
        "curve": [curve([7, 30, 31, 29, 9]), curve([7, 28, 30, 32, 11], **{"model/holdout_mse": 0.02}),
                  curve([10.1, 9, 8.6])],
        "train_info": [{"q_mean": 100.0, "critic_loss": 40.0}, {"q_mean": 200.0}, {"q_mean": 113.0}],
        "setup_info": [{}, {}, {}],
    })
    frame = diagnostics_frame(runs).set_index("algo")
    assert frame.loc["mbpo", "seeds"] == 2 and frame.loc["mbpo", "final"] == pytest.approx(10.0)
    assert frame.loc["mbpo", "best"] == pytest.approx((30.0 + 30.0) / 2)
    assert frame.loc["mbpo", "reading"] == "peaked at 30.0, then fell back"
    assert frame.loc["mbpo", "Q mean"] == pytest.approx(150.0)
    assert frame.loc["mbpo", "critic loss"] == pytest.approx(40.0)  # the seed that has it
    assert frame.loc["mbpo", "model holdout MSE"] == pytest.approx(0.02)  # from the last curve point
    assert frame.loc["sac", "reading"] == "no gain over its first evaluation"
    assert np.isnan(frame.loc["sac", "model holdout MSE"])


def test_the_model_column_says_its_metric_differs_by_method(tmp_path):
    """An ensemble's one-step elite error and ADM's mean over k-step errors share the column: the section
    says so when the column is shown, and only then."""
    from benchmark.reporting.diagnostics import MODEL_METRIC_NOTE, diagnostics_section
    from benchmark.reporting.output import ReportOutput

    def runs(last: dict) -> pd.DataFrame:
        return pd.DataFrame({"algo": ["mbpo"], "task": ["mujoco/Hopper"], "status": ["ok"],
                             "final_score": [9.0], "curve": [[{"score": 7.0}, {"score": 9.0, **last}]],
                             "train_info": [{}], "setup_info": [{}]})

    out = ReportOutput(tmp_path, figures=False)
    with_model = "\n".join(diagnostics_section(out, runs({"model/holdout_mse": 0.01})))
    without = "\n".join(diagnostics_section(out, runs({})))
    assert MODEL_METRIC_NOTE in with_model and "| 0.01 |" in with_model
    assert MODEL_METRIC_NOTE not in without and "model holdout MSE" not in without
