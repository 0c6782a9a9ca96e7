"""The Ray executor on a local 2-CPU Ray: records land in the store, finished runs are skipped."""

import pytest

from benchmark.results import read_record, record_path
from benchmark.runner import RunSpec

ray = pytest.importorskip("ray")


def test_ray_runs_write_records_and_resume(tiny_data, tmp_path):
    from benchmark.ray_executor import run_many_ray

    runs = [
        RunSpec("bc", "local/hopper-random", s, "smoke", {"eval_episodes": 1, "epochs": 1}, suite="raytest")
        for s in (0, 1)
    ]
    summaries = run_many_ray(runs, tmp_path, num_cpus=2, progress=False)
    assert sorted(s["seed"] for s in summaries) == [0, 1]
    assert all(s["status"] == "ok" for s in summaries)
    for s in (0, 1):
        rec = read_record(record_path(tmp_path, "raytest", "bc", "local/hopper-random", s))
        assert rec["status"] == "ok" and rec["seed"] == s
    again = run_many_ray(runs, tmp_path, num_cpus=2, progress=False)
    assert all(s.get("_skipped") for s in again)  # resumed without starting Ray
    assert not ray.is_initialized()
