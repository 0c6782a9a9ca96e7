"""Suites are data: ``benchmark/suites/<name>.yaml`` lists algorithms x tasks, seeds and a budget.

Format::

    description: text
    budget: smoke            # default budget, --budget overrides
    seeds: 2                 # default number of seeds (0..n-1), --seeds overrides
    runs:                    # each entry is a cross product
      - algos: [bc, td3bc]
        tasks: [local/hopper-medium-replay]
        set: {epochs: 5}     # optional per-entry config overrides
        variant: m=2         # optional: records are stored as algo "bc@m=2" (ablations)
    analyses:                # optional analysis jobs (registered analyses), one record per task x seed
      - name: compounding-error
        tasks: [local/hopper-medium-replay]
    report:                  # optional: how the report presents the suite
      highlight: [admpo-off]         # drawn with a thicker line (the paper's method)
      improvement_of: [admpo-off]    # probability of improvement of these over every other algorithm
      asymptote: sac                 # online curves: this algorithm's mean final return, dashed
      return_thresholds: {mujoco/Hopper: [1000, 2000]}  # steps-to-return table
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmark.config import BUDGET_NAMES
from benchmark.runner import AnalysisJob, RunSpec

SUITE_DIR = Path(__file__).parent / "suites"
SUITE_KEYS = {"description", "budget", "seeds", "runs", "analyses", "note", "report"}
META_SUITE_KEYS = {"description", "include"}
RUN_ENTRY_KEYS = {"algos", "tasks", "set", "variant"}
ANALYSIS_ENTRY_KEYS = {"name", "tasks"}
# how the report presents the suite (benchmark.reporting.output.ReportSettings): the paper's method is
# drawn thicker (highlight) and compared with every other algorithm (improvement_of); the asymptote
# algorithm's mean final return is the dashed line of the online curves; return_thresholds feed the
# steps-to-return table
REPORT_KEYS = {"highlight", "improvement_of", "asymptote", "return_thresholds"}


class SuiteError(ValueError):
    pass


@dataclass
class Suite:
    name: str
    description: str
    budget: str
    seeds: int
    entries: list[dict]
    path: Path
    analyses: list[dict] = field(default_factory=list)
    includes: list[Suite] = field(default_factory=list)  # a meta-suite runs its members under their names
    # how the report presents this suite: the keys of REPORT_KEYS
    report: dict = field(default_factory=dict)

    @property
    def report_suites(self) -> list[str]:
        return [s.name for s in self.includes] if self.includes else [self.name]

    def plan(self, budget: str | None = None, seeds: int | None = None) -> list[RunSpec | AnalysisJob]:
        if self.includes:
            return [run for member in self.includes for run in member.plan(budget, seeds)]
        budget = budget or self.budget
        n = self.seeds if seeds is None else seeds
        runs: list[RunSpec | AnalysisJob] = []
        for i, entry in enumerate(self.entries):
            overrides = dict(entry.get("set") or {})
            sources = dict.fromkeys(overrides, f"{self.path} runs[{i}].set")
            variant = str(entry.get("variant", ""))
            for algo in entry["algos"]:
                for task in entry["tasks"]:
                    for seed in range(n):
                        runs.append(RunSpec(algo, task, seed, budget, dict(overrides), self.name, variant,
                                            dict(sources)))
        for entry in self.analyses:
            for task in entry["tasks"]:
                for seed in range(n):
                    runs.append(AnalysisJob(entry["name"], task, seed, budget, suite=self.name))
        return runs


def available_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITE_DIR.glob("*.yaml"))}


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if not path.suffix:
        suites = available_suites()
        if name_or_path not in suites:
            raise SuiteError(f"unknown suite {name_or_path!r}; available: {', '.join(suites)}")
        path = suites[name_or_path]
    if not path.exists():
        raise SuiteError(f"suite file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: not valid YAML ({e})") from None
    where = str(path)
    description = str(data.get("description", "")).strip() if isinstance(data, dict) else ""
    if isinstance(data, dict):
        allowed = META_SUITE_KEYS if "include" in data else SUITE_KEYS
        unknown = sorted(str(k) for k in set(data) - allowed)
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {unknown}; a suite file has keys {sorted(allowed)}")
    if isinstance(data, dict) and "include" in data:
        members = data["include"]
        if not isinstance(members, list) or not members:
            raise SuiteError(f"{where}: 'include' must be a non-empty list of suite names")
        if path.stem in members:
            raise SuiteError(f"{where}: a suite cannot include itself")
        return Suite(path.stem, description, "paper", 1, [], path, includes=[load_suite(m) for m in members])
    if not isinstance(data, dict) or not ("runs" in data or "analyses" in data):
        raise SuiteError(f"{where}: expected a mapping with a 'runs' and/or 'analyses' list")
    budget = data.get("budget", "smoke")
    if budget not in BUDGET_NAMES:
        raise SuiteError(f"{where}: budget must be one of {BUDGET_NAMES}, got {budget!r}")
    seeds = data.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise SuiteError(f"{where}: seeds must be a positive integer, got {seeds!r}")
    entries, analyses = data.get("runs") or [], data.get("analyses") or []
    if not isinstance(entries, list) or not isinstance(analyses, list):
        raise SuiteError(f"{where}: 'runs' and 'analyses' must be lists")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), list) for k in ("algos", "tasks")):
            raise SuiteError(f"{where}: runs[{i}] needs lists 'algos' and 'tasks'")
        extra = set(e) - RUN_ENTRY_KEYS
        if extra:
            raise SuiteError(
                f"{where}: runs[{i}] has unknown keys {sorted(extra)}; allowed: {sorted(RUN_ENTRY_KEYS)}"
            )
        if e.get("set") is not None and not isinstance(e["set"], dict):
            raise SuiteError(f"{where}: runs[{i}].set must be a mapping of field: value")
    for i, e in enumerate(analyses):
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("tasks"), list)):
            raise SuiteError(f"{where}: analyses[{i}] needs a 'name' and a list 'tasks'")
        extra = set(e) - ANALYSIS_ENTRY_KEYS
        if extra:
            allowed = sorted(ANALYSIS_ENTRY_KEYS)
            raise SuiteError(f"{where}: analyses[{i}] has unknown keys {sorted(extra)}; allowed: {allowed}")
    report = data.get("report") or {}
    unknown = set(report) - REPORT_KEYS if isinstance(report, dict) else None
    if unknown is None or unknown:
        raise SuiteError(
            f"{where}: 'report' must be a mapping with the key 'return_thresholds', 'highlight', "
            f"'improvement_of' or 'asymptote', got {report!r}"
        )
    thresholds = report.get("return_thresholds") or {}
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, list) and all(isinstance(x, int | float) for x in v) for v in thresholds.values()
    ):
        raise SuiteError(f"{where}: report.return_thresholds must map task ids to lists of returns")
    algos = {str(a) for e in entries for a in e["algos"]}
    for key in ("highlight", "improvement_of"):
        names = report.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n in algos for n in names):
            allowed = sorted(algos)
            raise SuiteError(
                f"{where}: report.{key} must be a list of the suite's algorithms {allowed}, got {names!r}"
            )
    if "asymptote" in report and report["asymptote"] not in algos:
        allowed = sorted(algos)
        raise SuiteError(f"{where}: report.asymptote must be one of the suite's algorithms {allowed}, "
                         f"got {report['asymptote']!r}")
    return Suite(path.stem, description, budget, seeds, entries, path, analyses, report=report)
