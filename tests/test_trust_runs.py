"""Trust, runs: a score depends only on config, seed, code, data and platform; a failure is never a result."""

import json
import os
import re
import stat

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.results import is_finished, write_record
from benchmark.rl.trainers import (
    DivergenceError,
    StepMetrics,
    check_finite,
    finite_mean,
    finite_means,
    train_offline,
)
from benchmark.runner import RunSpec, existing_record, prepare, run_one


def _comparable(record: dict) -> str:
    record = {k: v for k, v in record.items() if k not in ("wall_time_s", "cpu_time_s", "commit", "_skipped")}
    record["setup_info"] = {k: v for k, v in record.get("setup_info", {}).items() if not k.endswith("time_s")}
    record["train_info"] = {k: v for k, v in record.get("train_info", {}).items() if not k.endswith("time_s")}
    return json.dumps(record, sort_keys=True)


def test_cold_and_warm_dataset_cache_give_bit_identical_records(tmp_path, monkeypatch):
    # local/*-medium builds load a behaviour policy (a torch network) on a cold cache: that must not move
    # the training streams (the audit's td3bc seed 3: 0.694 cold vs 8.289 warm under one config hash)
    monkeypatch.setenv("ADMBENCH_DATA", str(tmp_path / "cold-cache"))
    monkeypatch.setenv("ADMBENCH_LOCAL_SIZE", "1000")
    run = RunSpec("td3bc", "local/hopper-medium", 3, "smoke", {"eval_episodes": 1})
    cold = run_one(run, tmp_path / "r1", progress=False)
    warm = run_one(run, tmp_path / "r2", progress=False)
    assert cold["status"] == "ok", cold.get("traceback")
    assert cold["config_hash"] == warm["config_hash"]
    assert _comparable(cold) == _comparable(warm)


def test_online_run_does_not_depend_on_what_the_process_did_before(tmp_path):
    sizes = {"env_steps": 120, "eval_interval": 60, "eval_episodes": 1, "start_learning": 50}
    run = RunSpec("sac", "mujoco/Hopper", 0, "smoke", sizes)
    first = run_one(run, tmp_path / "a", progress=False)
    torch.rand(1000), np.random.rand(1000)  # whatever a worker ran before this run
    second = run_one(run, tmp_path / "b", progress=False)
    assert first["status"] == "ok", first.get("traceback")
    assert _comparable(first) == _comparable(second)


class _Diverging:
    """A minimal offline algorithm whose loss becomes NaN at its 4th step."""

    def setup(self):
        return {}

    def next_batch(self, step):
        return step

    def learn(self, step):
        return {"critic_loss": float("nan") if step == 3 else 1.0, "q_mean": 2.0}

    def end_epoch(self, epoch):
        return {}

    def act(self, obs, deterministic=True):
        return np.zeros(3, dtype=np.float32)


def test_check_finite_names_metric_and_step():
    assert check_finite({"a": 1.0, "b": 2}, 5) == {"a": 1.0, "b": 2}
    with pytest.raises(DivergenceError, match=r"q_mean became inf at env step 17"):
        check_finite({"loss": 0.1, "q_mean": float("inf")}, 17, "env step")
    with pytest.raises(DivergenceError, match=r"loss became nan at gradient step 2"):
        check_finite({"loss": np.float32("nan")}, 2)


def test_train_offline_stops_at_the_first_nonfinite_loss():
    class Cfg:
        epochs, steps_per_epoch, eval_episodes, seed = 3, 5, 1, 0

    from benchmark.envs import make_env

    with pytest.raises(DivergenceError, match=r"critic_loss became nan at gradient step 4"):
        train_offline(_Diverging(), Cfg, lambda: make_env("hopper"), lambda r: r, progress=False)


class _DivergingOnDevice(_Diverging):
    """The same, with its diagnostics as scalar tensors (what the algorithms return)."""

    def learn(self, step):
        return {k: torch.tensor(v) for k, v in super().learn(step).items()}


def test_train_offline_names_the_first_nonfinite_tensor_and_its_step():
    class Cfg:
        epochs, steps_per_epoch, eval_episodes, seed = 3, 5, 1, 0

    from benchmark.envs import make_env

    with pytest.raises(DivergenceError, match=r"critic_loss became nan at gradient step 4"):
        train_offline(_DivergingOnDevice(), Cfg, lambda: make_env("hopper"), lambda r: r, progress=False)


def test_step_metrics_report_the_first_divergence_as_the_per_step_check_did():
    t = torch.tensor
    window = StepMetrics("env step")
    window.add({"a": t(1.0), "b": t(2.0)}, 1)
    window.add({"late": float("inf")}, None)  # unchecked (end-of-epoch summaries)
    window.add({"b": t(float("nan")), "a": t(float("inf")), "note": "text"}, 2)  # this step's dict order
    window.add({"a": float("-inf")}, 3)
    with pytest.raises(DivergenceError, match=r"^b became nan at env step 2$"):
        window.read()
    with pytest.raises(DivergenceError, match=r"^b became nan at env step 2$") as raised:
        window.raise_divergence(RuntimeError("a later op failed on the NaN"))
    assert isinstance(raised.value.__cause__, RuntimeError)
    clean = StepMetrics()
    clean.add({"x": t(1.0)}, 1)
    clean.raise_divergence(RuntimeError("unrelated"))  # nothing diverged: the caller re-raises its error


def test_step_metrics_means_are_finite_mean_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    values = {"loss": torch.randn(500, generator=g) * 1e3, "q": torch.rand(500, generator=g).double()}
    window = StepMetrics()
    for i in range(500):
        step = {"loss": values["loss"][i].clone(), "q": values["q"][i].clone() if i % 3 else float(i)}
        if i % 7 == 0:
            step["rare"] = i  # a key some steps lack, as a Python int
        window.add(step, i + 1)
    window.add({"loss": float("nan"), "summary": 4.0}, None)
    means = finite_means(window.read())
    expected = {
        "loss": finite_mean([v.item() for v in values["loss"]] + [float("nan")]),
        "q": finite_mean([values["q"][i].item() if i % 3 else float(i) for i in range(500)]),
        "rare": finite_mean(list(range(0, 500, 7))),
        "summary": 4.0,
    }
    assert means == expected and list(means) == ["loss", "q", "rare", "summary"]
    assert len(window) == 0, "read() empties the window"


def test_a_checkpointed_window_is_compact_and_loads_the_same_values():
    """A checkpoint pickles the open window: 2000 steps of scalar-tensor metrics travel as one tensor per
    metric (old checkpoints held 2000 tensors each, ~250 bytes apiece, 20x the size) and load back to the
    same values, divergence check and means included; a metric with other values keeps its list."""
    import io
    import pickle

    def window(diverged: bool = True, mixed: bool = True):
        g, w = torch.Generator().manual_seed(1), StepMetrics("env step")
        for i in range(2000):
            metrics = {"loss": torch.randn((), generator=g), "q": torch.rand((), generator=g).double()}
            if mixed:
                metrics["mixed"] = torch.tensor(1.0) if i % 2 else float(i)
            w.add(metrics, i + 1)
        if diverged:
            w.add({"loss": torch.tensor(float("nan"))}, 2001)
        return w

    def saved_bytes(obj) -> int:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.tell()

    scalars = window(mixed=False)
    assert saved_bytes(scalars) < saved_bytes(scalars.__dict__) / 10  # 52 kB against 1.0 MB
    buffer = io.BytesIO()
    torch.save(window(), buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert len(loaded) == 2001 and all(isinstance(v, torch.Tensor) for v in loaded._values["loss"])
    with pytest.raises(DivergenceError, match=r"^loss became nan at env step 2001$"):
        loaded.read()
    expected = window(diverged=False).read()
    restored = pickle.loads(pickle.dumps(window(diverged=False)))
    older = pickle.loads(pickle.dumps(window(diverged=False).__dict__))  # a checkpoint written before packing
    unpacked = StepMetrics.__new__(StepMetrics)
    unpacked.__setstate__(older)
    for got in (restored.read(), unpacked.read()):
        assert list(got) == list(expected) and all(np.array_equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize(
    "algo, overrides, metric",
    [("bc", {"lr": 1e30}, r"(loss|evaluation return)"), ("td3bc", {"critic_lr": 1e12}, r"\w+")],
)
def test_diverged_run_is_recorded_failed_with_metric_and_step(
    tiny_data, tmp_path, algo, overrides, metric, capsys
):
    run = RunSpec(algo, "local/hopper-medium-replay", 0, "smoke", overrides)
    rec = run_one(run, tmp_path, progress=False)
    assert rec["status"] == "failed"
    pattern = rf"{metric} became (nan|inf|-inf) at (gradient|env) step \d+"
    assert re.search(pattern, rec["reason"]), rec["reason"]
    # the CLI exits non-zero, and a rerun is not skipped as done
    argv = ["run", "--algo", algo, "--task", "local/hopper-medium-replay", "--budget", "smoke", "--results",
            str(tmp_path), "--quiet"] + [x for k, v in overrides.items() for x in ("--set", f"{k}={v}")]
    assert main(argv) == 1
    assert "skipped" not in capsys.readouterr().out


def _ok_record(tmp_path, **changes) -> tuple:
    run = RunSpec("bc", "local/hopper-medium-replay", 0, "smoke")
    rec = run_one(run, tmp_path, progress=False)
    assert rec["status"] == "ok"
    path = run.path(tmp_path)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return run, path


@pytest.mark.parametrize("bad", [{"final_score": None}, {"final_score": float("nan")},
                                 {"final_return": None}, {"final_score": float("inf")}])
def test_an_ok_record_without_a_finite_score_is_never_taken_as_done(tiny_data, tmp_path, bad, capsys):
    run, path = _ok_record(tmp_path, **bad)
    assert not is_finished(json.loads(path.read_text()))
    assert existing_record(path, prepare(run)[-1]) is None
    assert f"{path}: an 'ok' record without a finite final score" in capsys.readouterr().err
    again = run_one(run, tmp_path, progress=False)
    assert not again.get("_skipped") and is_finished(again)


def test_a_corrupt_record_is_named_and_redone(tiny_data, tmp_path, capsys):
    run, path = _ok_record(tmp_path)
    path.write_text(path.read_text()[:300])
    assert existing_record(path, prepare(run)[-1]) is None
    assert f"{path}: unreadable record" in capsys.readouterr().err


def test_records_are_world_readable(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_record(tmp_path / "x" / "seed-0.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_disk_full_on_record_write_is_one_line_naming_the_path(tiny_data, tmp_path, monkeypatch, capsys):
    import benchmark.results as results

    def full(fd, mode="r", *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fdopen", full)
    code = main(["run", "--algo", "bc", "--task", "local/hopper-medium-replay", "--budget", "smoke",
                 "--results", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("admbench: error: could not write the record ")
    assert "seed-0.json: No space left on device" in err[0]
    assert not list(tmp_path.rglob("*.tmp"))



def test_the_config_hash_covers_published_data_files_and_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    run = RunSpec("bc", "d4rl/hopper-medium-v2", 0, "smoke")
    missing = prepare(run)[-1]
    (tmp_path / "hopper_medium-v2.hdf5").write_bytes(b"first release")
    first = prepare(run)[-1]
    (tmp_path / "hopper_medium-v2.hdf5").write_bytes(b"another file, same name")
    second = prepare(run)[-1]
    assert len({missing, first, second}) == 3
    assert prepare(run, threads=2)[-1] != second
    # local data: the hash of a default single-thread run is what committed references were made with
    local = RunSpec("bc", "local/hopper-medium-replay", 0, "smoke")
    assert prepare(local)[-1] == prepare(local, threads=1)[-1] != prepare(local, threads=4)[-1]
