"""Result store: atomic writes, schema validation, resume by config hash, failures recorded."""

import json
import os

import pytest

from benchmark.results import RecordError, final_value, read_record, record_path, write_record
from benchmark.runner import RunSpec, run_one
from benchmark.tasks import resolve_task

GOOD = {
    "algo": "bc",
    "task": "local/hopper-random",
    "seed": 0,
    "budget": "smoke",
    "config": {},
    "versions": {},
    "commit": "abc",
    "wall_time_s": 1.0,
    "status": "ok",
    "reason": None,
    "curve": [{"step": 1, "return_mean": 1.0, "return_std": 0.0, "score": 2.0}],
    "final_score": 2.0,
}


def test_record_path_layout(tmp_path):
    assert record_path(tmp_path, "mini", "bc", "local/hopper-random", 3) == (
        tmp_path / "mini" / "bc" / "local__hopper-random" / "seed-3.json"
    )


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_record(path, GOOD)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_record(path, {**GOOD, "seed": 9})
    assert path.read_text() == before  # the finished record is intact
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_validation_errors_name_the_problem(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(RecordError, match="bad.json: not valid JSON"):
        read_record(p)
    p.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "curve"}))
    with pytest.raises(RecordError, match="missing field 'curve'"):
        read_record(p)
    p.write_text(json.dumps({**GOOD, "curve": [{"step": 1}]}))
    with pytest.raises(RecordError, match=r"curve\[0\] is missing"):
        read_record(p)


def test_final_value_rule():
    curve = [{"score": s} for s in (1.0, 2.0, 3.0, None, 5.0)]
    assert final_value(curve, "score", 2) == 5.0  # None (no reference) is skipped
    assert final_value(curve, "score", 3) == 4.0
    assert final_value([], "score", 3) is None


def test_resume_skips_finished_runs_and_reruns_changed_config(tiny_data, tmp_path):
    run = RunSpec("bc", "local/hopper-random", 0, "smoke", {"eval_episodes": 1, "epochs": 1})
    first = run_one(run, tmp_path, progress=False)
    assert first["status"] == "ok" and "_skipped" not in first
    again = run_one(run, tmp_path, progress=False)
    assert again.get("_skipped") is True
    changed = RunSpec("bc", "local/hopper-random", 0, "smoke", {"eval_episodes": 1, "epochs": 2})
    assert "_skipped" not in run_one(changed, tmp_path, progress=False)


def test_resume_reruns_a_finished_run_after_its_local_data_changed(tiny_data, tmp_path, monkeypatch):
    """A rebuilt local dataset (new behaviour policy, other simulator) makes its old records stale."""
    import benchmark.data.local as local

    run = RunSpec("bc", "local/hopper-medium", 0, "smoke", {"eval_episodes": 1, "epochs": 1})
    assert run_one(run, tmp_path, progress=False)["status"] == "ok"
    assert run_one(run, tmp_path, progress=False).get("_skipped") is True
    real_sources = local.build_sources
    monkeypatch.setattr(local, "build_sources",
                        lambda env, level: {**real_sources(env, level), "hopper-medium.pt": "0" * 64})
    assert "_skipped" not in run_one(run, tmp_path, progress=False)
    # online tasks have no data; published files are tracked by their bytes (tests/test_trust_runs.py)
    assert resolve_task("mujoco/Hopper").data_fingerprint() is None
    assert resolve_task("d4rl/hopper-medium-v2").data_fingerprint()["file"] == "hopper_medium-v2.hdf5"


def test_failed_run_is_recorded_not_raised(tiny_data, tmp_path, monkeypatch):
    import baselines.bc as bc

    def explode(self, batch):
        raise RuntimeError("loss went NaN")

    monkeypatch.setattr(bc.BC, "learn", explode)
    rec = run_one(
        RunSpec("bc", "local/hopper-random", 1, "smoke", {"eval_episodes": 1}), tmp_path, progress=False
    )
    assert rec["status"] == "failed" and "loss went NaN" in rec["reason"]
    on_disk = read_record(record_path(tmp_path, "adhoc", "bc", "local/hopper-random", 1))
    assert on_disk["status"] == "failed" and on_disk["final_score"] is None
