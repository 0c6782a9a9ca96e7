"""CI score regression: identical reruns pass, a perturbed algorithm fails, --update rewrites references."""

import pytest

import baselines.bc as bc
from benchmark.regress import Comparison, compare, failed, format_table, regress

SUITE = """
budget: smoke
seeds: 1
runs:
  - algos: [bc]
    tasks: [local/hopper-random]
    set: {epochs: 1, eval_episodes: 1}
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "tinyci.yaml"
    path.write_text(SUITE)
    return path


def test_rerun_matches_and_perturbation_fails(tiny_data, tmp_path, suite_file, monkeypatch):
    refs = tmp_path / "reference"
    rows = regress(str(suite_file), refs, workers=1, update=True, progress=False)
    assert [r.status for r in rows] == ["updated"]
    assert (refs / "tinyci" / "bc" / "local__hopper-random" / "seed-0.json").exists()

    rows = regress(str(suite_file), refs, workers=1, progress=False)
    assert [r.status for r in rows] == ["ok"] and not failed(rows)

    # perturb the algorithm: a 10x loss scale changes the Adam trajectory only slightly, a sign flip a lot
    monkeypatch.setattr(bc, "bc_loss", lambda pred, data: -((pred - data) ** 2).mean())
    rows = regress(str(suite_file), refs, workers=1, progress=False)
    assert [r.status for r in rows] == ["regression"] and failed(rows)
    table = format_table(rows)
    assert "| bc | local/hopper-random | 0 |" in table and "regression" in table


def test_compare_rules():
    base = {"status": "ok", "final_score": 50.0, "versions": {"torch": "2.13.0", "cpu": "A"}}
    assert compare(base, dict(base)) == "ok"
    assert compare(base, {**base, "final_score": 50.5}) == "regression"  # same platform: must be exact
    other = {**base, "final_score": 50.5, "versions": {"torch": "2.13.0", "cpu": "B"}}
    assert compare(base, other) == "drift"
    assert compare(base, other, strict=True) == "regression"
    assert compare(None, base) == "new"
    assert compare(base, None) == "missing"
    assert compare(base, {**base, "status": "failed"}) == "regression"
    assert failed([Comparison("a", "t", 0, 1.0, None, "missing")])
