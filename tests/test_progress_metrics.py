"""Progress lines (what, how far, ETA; quiet; readable when piped) and per-run metrics files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import metrics, progress
from benchmark.runner import RunSpec, run_one

ROOT = Path(__file__).resolve().parent.parent


def test_piped_progress_prints_plain_lines_with_eta_and_nothing_for_short_phases(monkeypatch):
    out = io.StringIO()  # not a TTY: no bar, no carriage returns
    monkeypatch.setattr(progress, "LINE_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    with progress.Progress("ADM model training", total=4, unit="step", stream=out, show=True) as p:
        for _ in range(2):
            p.update(1, holdout_mse=0.25)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("ADM model training: 1/4 step (25%), elapsed 00:00, ETA 00:00")
    assert lines[0].endswith("[holdout_mse=0.25]")
    assert lines[-1].startswith("ADM model training: 2/4 step (50%)")  # the closing line

    monkeypatch.setattr(progress, "LINE_AFTER_S", 60.0)
    quiet_short = io.StringIO()
    with progress.Progress("short phase", total=3, stream=quiet_short, show=True) as p:
        p.update(3)
    assert quiet_short.getvalue() == ""


def test_quiet_silences_every_phase(monkeypatch):
    monkeypatch.setattr(progress, "LINE_AFTER_S", 0.0)
    out = io.StringIO()
    with progress.disabled():
        with progress.Progress("x", total=2, stream=out) as p:
            p.update(2)
    assert out.getvalue() == "" and progress.enabled()


def test_unknown_length_has_no_eta():
    p = progress.Progress("early stopping", total=None, unit="step", stream=io.StringIO(), show=True)
    p.update(7)
    assert p.line() == "early stopping: 7 step, elapsed 00:00"


def test_runs_in_flight_are_named(tiny_data, tmp_path, monkeypatch, capsys):
    from benchmark.executor import run_many

    monkeypatch.setattr(progress, "LINE_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    runs = [RunSpec("bc", "local/hopper-random", seed, "smoke", {"eval_episodes": 1}) for seed in (0, 1)]
    run_many(runs, tmp_path, workers=1, progress=True)
    err = capsys.readouterr().err
    assert "runs: 0/2 run (0%)" in err and "[running=bc local/hopper-random s0]" in err
    assert "[running=bc local/hopper-random s1]" in err


def test_metrics_file_is_written_beside_the_record_and_not_read_as_one(tiny_data, tmp_path):
    rec = run_one(RunSpec("td3bc", "local/hopper-random", 0, "smoke", {"eval_episodes": 1}), tmp_path,
                  progress=False)
    record_path = RunSpec("td3bc", "local/hopper-random", 0, "smoke").path(tmp_path)
    path = metrics.metrics_path(record_path)
    assert path.name == "seed-0.metrics.jsonl" and path.is_file()
    assert not path.with_name(path.name + ".partial").exists()  # renamed when the run ended
    assert sorted(p.name for p in tmp_path.rglob("seed-*.json")) == ["seed-0.json"]
    rows = metrics.read_metrics(path)
    assert [r["step"] for r in rows] == [0] + [p["step"] for p in rec["curve"]]
    assert "setup/setup_time_s" in rows[0]
    last = rows[-1]
    for key in ("return_mean", "score", "train/critic_loss", "train/q_mean", "train/actor_loss"):
        assert key in last, (key, sorted(last))
    assert last["score"] == pytest.approx(rec["curve"][-1]["score"])

    from benchmark.reporting.records import load_records

    assert len(load_records(tmp_path)) == 1  # the metrics file is not taken for a record

    from benchmark.reporting.figures import plot_metrics

    png = plot_metrics(path)
    assert png.name == "seed-0.metrics.png" and png.stat().st_size > 1000
    with pytest.raises(ValueError, match="no metric 'nope'; available: .*score"):
        plot_metrics(path, keys=["nope"])


def test_online_runs_keep_metrics_too(tmp_path):
    rec = run_one(RunSpec("sac", "mujoco/Hopper", 0, "smoke", {"eval_episodes": 1}), tmp_path, progress=False)
    record_path = RunSpec("sac", "mujoco/Hopper", 0, "smoke").path(tmp_path)
    rows = metrics.read_metrics(metrics.metrics_path(record_path))
    assert [r["step"] for r in rows] == [p["step"] for p in rec["curve"]]  # one line per evaluation
    assert rows[-1]["return_mean"] == pytest.approx(rec["curve"][-1]["return_mean"])
    assert "train/critic_loss" in rows[-1] and "train/alpha" in rows[-1]


def test_jsonl_lines_are_whole_and_the_final_file_appears_at_close(tmp_path):
    log = metrics.JsonlMetrics(tmp_path / "seed-1.metrics.jsonl")
    log.log(10, {"loss": 1.5, "q": float("nan"), "name": "x", "flag": True})
    partial = tmp_path / "seed-1.metrics.jsonl.partial"
    assert json.loads(partial.read_text()) == {"step": 10, "loss": 1.5, "flag": 1.0}
    assert not (tmp_path / "seed-1.metrics.jsonl").exists()
    log.close()
    assert (tmp_path / "seed-1.metrics.jsonl").is_file() and not partial.exists()


def test_tensorboard_adapter_logs_the_same_stream(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv(metrics.TENSORBOARD_ENV, str(tmp_path / "tb"))
    loggers = metrics.run_loggers(tmp_path / "res" / "seed-0.json", "suite/bc/task/seed-0")
    loggers.log(5, {"score": 3.0})
    loggers.log(10, {"score": 4.0})
    loggers.close()
    acc = EventAccumulator(str(tmp_path / "tb" / "suite/bc/task/seed-0"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("score")] == [(5, 3.0), (10, 4.0)]


def test_run_ends_with_the_record_path_and_the_budgeted_score(tiny_data, tmp_path):
    cmd = [sys.executable, "-m", "benchmark", "run", "--algo", "bc", "--task", "local/hopper-random",
           "--set", "eval_episodes=1", "--results", str(tmp_path), "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "ok"  # stdout stays one JSON document
    tail = out.stderr.strip().splitlines()
    assert tail[-2] == f"record: {tmp_path / 'adhoc/bc/local__hopper-random/seed-0.json'}"
    assert tail[-1].startswith("final score ") and "budget smoke, 50 training steps" in tail[-1]
    assert "untrained plumbing checks" in tail[-1]
    assert "policy training" not in out.stderr  # --quiet: no progress


def test_a_run_is_the_same_with_a_cold_or_a_warm_data_cache(tmp_path, monkeypatch):
    """Building a dataset on first use (it initialises a behaviour actor) must not move the run's seeded
    random streams: found when the quick start's BC score differed between a cold and a warm cache."""
    monkeypatch.setenv("ADMBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("ADMBENCH_LOCAL_SIZE", "2000")
    spec = RunSpec("bc", "local/hopper-medium", 0, "smoke", {"eval_episodes": 1})
    cold = run_one(spec, tmp_path / "cold", progress=False)
    warm = run_one(spec, tmp_path / "warm", progress=False)
    assert cold["status"] == warm["status"] == "ok"
    assert cold["curve"] == warm["curve"]
