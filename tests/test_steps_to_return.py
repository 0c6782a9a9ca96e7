"""The online report's table of env steps to reach fixed returns (the paper's "faster learning" measure)."""

import numpy as np
import pandas as pd
import pytest

from benchmark.reporting.frames import steps_to_return
from benchmark.suites import SuiteError, load_suite


def test_first_step_reaching_each_return_averaged_over_the_seeds_that_did():
    curves = pd.DataFrame(
        [("a", "mujoco/Hopper", 0, s, r) for s, r in [(0, 100), (1000, 900), (2000, 1500), (3000, 2100)]]
        + [("a", "mujoco/Hopper", 1, s, r) for s, r in [(0, 50), (1000, 1200), (2000, 1100), (3000, 1900)]]
        + [("b", "mujoco/Hopper", 0, s, r) for s, r in [(0, 10), (1000, 400), (2000, 800), (3000, 1000)]],
        columns=["algo", "task", "seed", "step", "return"],
    )
    table = steps_to_return(curves, {"mujoco/Hopper": [1000, 2000]}).set_index(["algo", "threshold"])
    assert table.loc[("a", 1000.0), "steps_mean"] == 1500.0  # seed 0 at 2000, seed 1 at 1000
    assert table.loc[("a", 1000.0), "reached"] == 2
    assert table.loc[("a", 2000.0), "steps_mean"] == 3000.0 and table.loc[("a", 2000.0), "reached"] == 1
    assert table.loc[("b", 1000.0), "steps_mean"] == 3000.0
    assert np.isnan(table.loc[("b", 2000.0), "steps_mean"]) and table.loc[("b", 2000.0), "reached"] == 0


def test_online_suite_declares_its_thresholds_and_bad_ones_are_refused(tmp_path):
    online = load_suite("online")
    assert set(online.report["return_thresholds"]) == {
        "mujoco/Hopper", "mujoco/Walker2d", "mujoco/AntTruncatedObs", "mujoco/HumanoidTruncatedObs"}
    assert {r.algo for r in online.plan()} == {"admpo-on", "sac", "mbpo", "bmpo", "steve", "ddppo"}
    bad = tmp_path / "S.yaml"
    bad.write_text("runs:\n  - algos: [sac]\n    tasks: [mujoco/Hopper]\nreport: {thresholds: [1]}\n")
    with pytest.raises(SuiteError, match="'report' must be a mapping with the key 'return_thresholds'"):
        load_suite(str(bad))


def test_presentation_choices_come_from_the_suite_yaml(tmp_path):
    from benchmark.reporting.output import ReportSettings
    from benchmark.reporting.readme import suite_settings

    online = suite_settings("online")
    assert online.highlight == ("admpo-on",) and online.improvement_of == ("admpo-on",)
    assert online.asymptote == "sac" and online.return_thresholds["mujoco/Hopper"] == [1000, 2000, 3000]
    assert suite_settings("ci").improvement_of == ("admpo-off",) and suite_settings("ci").asymptote is None
    assert suite_settings("no-such-suite") == ReportSettings()  # records of no defined suite: nothing named
    bad = tmp_path / "bad.yaml"
    runs = "runs:\n  - {algos: [bc], tasks: [local/hopper-medium]}\n"
    bad.write_text(runs + "report: {highlight: [admpo-off]}\n")
    with pytest.raises(SuiteError, match=r"report.highlight must be a list of the suite's algorithms \['bc"):
        load_suite(str(bad))
    bad.write_text(runs + "report: {asymptote: sac}\n")
    with pytest.raises(SuiteError, match="report.asymptote must be one of the suite's algorithms"):
        load_suite(str(bad))
