"""Reports: a suite's records -> ``reports/<suite>/`` (README.md, tables .md/.tex, CSVs, figures).

:func:`write_report` is a pure function of the records: the same records, ``bootstrap_reps`` and
``seed`` give byte-identical tables and CSVs (no timestamps, sorted everything, seeded bootstraps).
The paper's published numbers come from ``results/paper/`` (copied from REFERENCE.md 4.3/4.4) and are
always labelled "paper"; every other number is from our records. How a suite is presented (which
algorithm is the paper's method, which one draws the asymptote) comes from the suite YAML
(:func:`suite_settings`).

The rooms, each importing only those above it in this list: ``records`` (records -> frame), ``stats``
(rliable statistics on (runs x tasks) arrays), ``frames`` (score matrices, per-task statistics, curves),
``tables`` and ``figures``, ``output`` (the report's folder, budget line and settings), ``paper`` (the
paper's numbers beside ours), ``sections`` and ``analyses`` (README sections), ``readme`` (this writer).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from benchmark.atomic import default_dir_mode
from benchmark.reporting import sections
from benchmark.reporting.analyses import ablation_section, analysis_sections
from benchmark.reporting.diagnostics import diagnostics_section
from benchmark.reporting.frames import per_task_stats
from benchmark.reporting.output import ReportOutput, ReportSettings, budget_label
from benchmark.reporting.paper import paper_sections
from benchmark.reporting.records import analyses_only, load_records, runs_only
from benchmark.reporting.tables import markdown_table


def suite_settings(suite: str) -> ReportSettings:
    """The plan and ``report:`` mapping of a suite defined in ``benchmark/suites/``: the (algo, task)
    cells and seed count, so the tables show planned-but-missing runs, the suite's ``note`` (how to read
    its numbers) and its presentation choices. Empty settings for records of no defined suite."""
    try:
        from benchmark.suites import SuiteError, load_suite
    except ImportError:
        return ReportSettings()
    try:
        definition = load_suite(suite)
    except SuiteError:
        return ReportSettings()
    if definition.includes:
        return ReportSettings()
    try:
        data = yaml.safe_load(definition.path.read_text()) or {}
    except OSError:
        data = {}
    cells = frozenset((job.name, job.task) for job in definition.plan(seeds=1) if hasattr(job, "algo"))
    report = definition.report
    return ReportSettings(
        cells=cells,
        seeds=definition.seeds,
        note=" ".join(str(data.get("note") or "").split()),
        highlight=tuple(report.get("highlight") or ()),
        improvement_of=tuple(report.get("improvement_of") or ()),
        asymptote=report.get("asymptote"),
        return_thresholds=report.get("return_thresholds") or {},
    )


def write_report(
    suite: str,
    results_dir: Path,
    out_dir: Path,
    seeds_requested: int | None = None,
    bootstrap_reps: int = 2000,
    seed: int = 0,
    *,
    figures: bool = True,
    settings: ReportSettings | None = None,
) -> Path:
    """Write the suite's report into ``out_dir`` and return the path of its README.md.

    The report is written whole into a hidden sibling folder and then swapped in (rename), so a kill or a
    full disk leaves either the previous report or the new one, never a mix. ``figures=False`` writes the
    same tables, CSVs and README without drawing the PNGs. ``settings`` (default: :func:`suite_settings`
    of ``suite``) says how the suite is presented."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    settings = suite_settings(suite) if settings is None else settings
    try:
        _write_report(suite, results_dir, staging, seeds_requested, bootstrap_reps, seed, figures, settings)
        os.chmod(staging, default_dir_mode())  # mkdtemp makes 0700; a report folder is shared output
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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


def _write_report(
    suite, results_dir, out_dir, seeds_requested, bootstrap_reps, seed, figures, settings
) -> Path:
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = load_records(results_dir, suite)
    readme = out_dir / "README.md"
    md: list[str] = [f"# Report: suite `{suite}`\n"]
    if records.empty:
        md.append(f"No run records found for suite `{suite}` under `{results_dir}`.\n")
        readme.write_text("\n".join(md))
        return readme

    runs = runs_only(records)
    out = ReportOutput(out_dir, budget_label(runs), figures)
    stats = per_task_stats(runs, settings.cells)
    requested = seeds_requested or settings.seeds or (int(stats["n_seeds"].max()) if len(stats) else 0)
    if settings.note:
        md.append(settings.note + "\n")
    md += sections.header_section(
        suite, results_dir, out, records, runs, stats, requested, bootstrap_reps, seed
    )
    if len(runs):
        md += sections.per_task_section(suite, out, stats, requested)
        md += sections.dataset_section(runs)
        md += paper_sections(out, stats, requested)
        md += ablation_section(out, runs)
        md += sections.aggregate_section(suite, out, settings, runs, bootstrap_reps, seed)
        md += sections.curve_sections(out, settings, runs, bootstrap_reps, seed)
        md += sections.steps_to_return_section(out, settings, runs)
        md += diagnostics_section(out, runs)
    md += analysis_sections(out, analyses_only(records))

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
