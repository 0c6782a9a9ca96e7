"""What the README and --help promise a newcomer: help texts, terminal-wide tables, error prefixes, no
machine paths in committed records, every cited reference section shipped, a private test data cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import cli
from benchmark.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["list", "run", "reproduce", "report", "regress", "plot-metrics", "data build", "data fetch",
            "data inspect", "data train-behavior", "data select-behavior"]


def script_module(name: str):
    """``scripts/<name>.py`` loaded as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _undocumented(help_text: str) -> list[str]:
    """Argument lines of an argparse help without a description (inline or on the next line)."""
    lines, bad, in_args = help_text.splitlines(), [], False
    for i, line in enumerate(lines):
        if re.match(r"^(options|positional arguments):", line):
            in_args = True
            continue
        if not in_args or not re.match(r"^  \S", line) or line.strip().startswith("-h, --help"):
            continue
        inline = re.match(r"^  \S.*?\S {2,}\S", line)
        below = i + 1 < len(lines) and re.match(r"^ {6,}\S", lines[i + 1])
        if not inline and not below:
            bad.append(line.strip())
    return bad


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_line_has_a_description(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command.split(), "--help"])
    assert _undocumented(capsys.readouterr().out) == []


def test_list_tables_fit_the_terminal_and_json_keeps_whole_descriptions(capsys, monkeypatch):
    monkeypatch.setattr(cli.shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((80, 24)))
    for what in ("algorithms", "suites", "datasets"):
        assert main(["list", what]) == 0
        assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 80, what
    assert main(["list", "suites", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    from benchmark.suites import load_suite

    assert rows["d4rl"]["description"] == load_suite("d4rl").description
    assert len(rows["d4rl"]["description"]) > 70


def test_data_commands_use_the_admbench_error_prefix(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "nope.hdf5")]) == 2
    assert capsys.readouterr().err.startswith("admbench: error: ")


def _committed(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.stdout.split()]


def test_committed_records_hold_no_machine_paths_and_references_no_dirty_commit():
    records = [p for p in _committed("results") if p.suffix == ".json" and p.name.startswith("seed-")]
    assert records
    for path in records:
        text = path.read_text()
        assert not re.search(r'"(/work|/home|/root|/Users|/tmp)/', text), path
    # the regression references and the evidence README's results come from code a commit names
    from benchmark.suites import load_suite

    evidence = dict.fromkeys(run.suite for run in load_suite("evidence").plan(None, None))
    assert len(evidence) == 4
    for folder in ("results/reference", *(f"results/{suite}" for suite in evidence)):
        for path in _committed(folder):
            if path.name.startswith("seed-") and path.suffix == ".json":
                record = json.loads(path.read_text())
                # a run resumed across sessions lists every commit it ran under: none of them dirty either
                for commit in [record["commit"], *record.get("commits", [])]:
                    assert not commit.endswith("-dirty"), path


def test_every_cited_reference_section_is_shipped():
    reference = (ROOT / "docs" / "REFERENCE.md").read_text()
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", reference, re.M))
    cited: dict[str, Path] = {}
    for pattern in ("*.py", "*.yaml"):
        for path in _committed(pattern):
            for section in re.findall(r"REFERENCE\.md(?: section)? (\d+(?:\.\d+)?)", path.read_text()):
                cited.setdefault(section, path)
    assert cited, "the code cites REFERENCE.md sections"
    missing = {s: str(p.relative_to(ROOT)) for s, p in cited.items() if s not in headings}
    assert missing == {}


def test_tests_never_use_the_real_data_cache():
    from benchmark.data.local import cache_dir

    assert cache_dir() != Path.home() / ".cache" / "admbench"
    assert cache_dir().name == "admbench-cache"


def test_readme_epoch_table_is_the_committed_benchmark():
    """README "Performance" shows the per-epoch table exactly as `scripts/bench_epochs.py --table` prints it
    from results/bench/epochs-cpu.json, every algorithm included."""
    bench_epochs = script_module("bench_epochs")
    data = json.loads((ROOT / "results" / "bench" / "epochs-cpu.json").read_text())
    from benchmark import registry

    offline = {n for n, s in registry.algorithms().items() if s.kind == "offline"}
    assert set(data["algorithms"]) == offline
    assert data["meta"]["clock"] == "thread CPU time"
    readme = (ROOT / "README.md").read_text()
    for row in bench_epochs.markdown_rows(data["algorithms"]):
        assert row in readme, row


def test_readme_results_section_is_what_the_committed_records_give():
    """README "Results on this machine class" is generated from results/ by scripts/readme_results.py;
    any hand edit, or a record committed without regenerating it, fails here."""
    readme_results = script_module("readme_results")
    assert readme_results.main(["--check"]) == 0
    readme = (ROOT / "README.md").read_text()
    assert readme.index(readme_results.BEGIN) < readme.index("## Quick start")  # the README opens with it
    for link in re.findall(r"\]\((reports/[^)]+\.png)\)", readme):
        assert (ROOT / link).is_file(), link


def test_readme_results_blocks_state_how_the_final_score_is_computed():
    """The final score is a mean over the last evaluations, not a curve's last point: each training block
    names the rule of every record it reads (the committed records: 5 evaluations offline, 3 online)."""
    readme_results = script_module("readme_results")
    results = ROOT / "results"
    for suite, block in ((readme_results.TABLE1, readme_results.table1_block),
                         (readme_results.FIG3, readme_results.fig3_block)):
        records = [json.loads(p.read_text()) for p in (results / suite).glob("*/*/seed-*.json")]
        rules = {r["final_rule"] for r in records if r.get("status") == "ok"}
        if not rules:
            continue
        text = "".join(block(results))
        assert f"Final = {' | '.join(sorted(rules))} of each run." in text, suite
    rule = "mean of the last final_k=5 evaluations"
    # the cost is "so far" until every planned run finished; a record timing its last resumed segment only
    # makes it a lower bound
    runs = readme_results.suite_runs(results, readme_results.TABLE1)
    planned, _ = readme_results.planned_and_finished(runs, readme_results.TABLE1)
    ok = runs.assign(status="ok", cpu_time_s=3600.0, timed_whole_run=True).head(planned)
    assert readme_results.measured_cost(ok, readme_results.TABLE1) == f"measured cost {planned:.2f} CPU-hours"
    assert readme_results.measured_cost(ok.head(planned - 1), readme_results.TABLE1).startswith(
        f"measured cost so far {planned - 1:.2f} CPU-hours")
    ok.loc[ok.index[0], "timed_whole_run"] = False
    assert readme_results.measured_cost(ok, readme_results.TABLE1) == (
        f"measured cost {planned:.2f} CPU-hours (1 record(s) timed for their last resumed segment only, so a "
        "lower bound)")
    stated = readme_results.final_rule(pd.DataFrame({"final_rule": [rule, None]}))
    assert stated == f"Final = {rule} of each run."


def test_readme_results_block_renders_finished_analyses(tmp_path, tiny_data):
    """With finished (smoke) analysis records under the Figure 2/4 suites, the block shows the claim checks,
    their budgets and costs (saying which jobs loaded Figure 2's models), and Figure 2's knee table."""
    from benchmark.runner import AnalysisJob, run_analysis_job

    readme_results = script_module("readme_results")
    for suite, name in (("fig2-local", "compounding-error"), ("fig4-local", "uncertainty")):
        for seed in (0, 1):
            rec = run_analysis_job(AnalysisJob(name, "local/hopper-random", seed, "smoke", suite), tmp_path)
            assert rec["status"] == "ok"
    refs = [run_analysis_job(AnalysisJob("compounding-references", "local/hopper-random", seed, "smoke",
                                         "fig2-local"), tmp_path) for seed in (0, 1)]
    assert all(rec["status"] == "ok" for rec in refs)
    block = readme_results.section(tmp_path)
    assert ("`fig2-local` (`smoke` budget, 4 finished analyses (2 compounding-error, 2 "
            "compounding-references), measured cost") in block
    without = {m: np.mean([r["result"]["models"][m]["mean"][-1] for r in refs])
               for m in ("last-state", "train-mean-state")}
    assert ("without a model (same segments) the error at length 10 is "
            + ", ".join(f"{m} {v:.3g}" for m, v in sorted(without.items(), key=lambda e: e[1]))) in block
    assert "| local/hopper-random | adm vs ensemble |" in block
    # growth, then levels (the median and no-model tables stay in the report; the reading quotes them)
    assert block.count("| local/hopper-random | adm vs ensemble |") == 2
    assert "Levels: each model's error at the longest length" in block
    assert "predicting without a model on the same segments: [the report](reports/fig2-local/" in block
    assert "`fig4-local` (`smoke` budget, 2 finished analyses, measured cost" in block
    assert "2 of them loaded their models from `fig2-local`'s jobs" in block  # Figure 4 reuses Figure 2's
    assert "| local/hopper-random | adm - ensemble |" in block
    assert "| compounding-error | local/hopper-random | adm | 2 |" in block  # the knee table
    assert "No finished run yet." in block  # no training runs under tmp_path
    # the readings: each model's mean error at the first and last length, and each model's mean r, as recorded
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("fig*/analysis-*/*/seed-*.json"))]
    errors = {m: [np.mean([r["result"]["models"][m]["mean"][i] for r in results
                           if r["analysis"] == "compounding-error"]) for i in (0, -1)]
              for m in ("adm", "bootrnn", "ensemble")}
    last = results[0]["result"]["horizons"][-1]
    by_last = sorted(errors.items(), key=lambda e: e[1][1])
    levels = ", ".join(f"{m} {a:.3g} -> {b:.3g}" for m, (a, b) in by_last)
    assert f"**Reading.** On local/hopper-random (2 seeds), error at length 1 -> {last}: {levels}" in block
    medians = {m: np.mean([r["result"]["models"][m]["median"][-1] for r in results
                           if r["analysis"] == "compounding-error"]) for m in ("adm", "bootrnn", "ensemble")}
    assert (f"and on the median over held-out starts at length {last}: "
            + ", ".join(f"{m} {v:.3g}" for m, v in sorted(medians.items(), key=lambda e: e[1]))) in block
    pooled = {}
    for r in results:
        for c in r["result"].get("correlations", []):
            if c["source"] == "all":
                pooled.setdefault(c["model"], []).append(c["pearson"])
    kept = sum(c["n"] for r in results for c in r["result"].get("correlations", []) if c["source"] == "all")
    dropped = sum(c.get("dropped_unreconstructible", 0) for r in results
                  for c in r["result"].get("correlations", []) if c["source"] != "all")
    assert f" over {kept / (kept + dropped):.0%} of the points the rollouts visited" in block
    ranked = sorted(pooled, key=lambda m: -np.mean(pooled[m]))
    assert ("(Pearson r, all rollout sources pooled) is "
            + ", ".join(f"{m} {np.mean(pooled[m]):.2f}" for m in ranked)) in block


def test_the_evidence_suite_runs_the_four_sweeps_in_the_issues_order_under_their_own_names():
    """README: `admbench reproduce evidence` runs (or resumes) Figure 3, Table 1, Figure 2, then Figure 4
    (which loads Figure 2's models), each member's runs recorded under its own suite name and seeds."""
    from benchmark.suites import load_suite

    suite = load_suite("evidence")
    runs = suite.plan(None, None)
    order = list(dict.fromkeys(run.suite for run in runs))
    assert order == ["fig3-hopper", "table1-local", "fig2-local", "fig4-local"]
    for name in order:
        member = load_suite(name).plan(None, None)
        assert [r for r in runs if r.suite == name] == member and {r.seed for r in member} == {0, 1, 2}
