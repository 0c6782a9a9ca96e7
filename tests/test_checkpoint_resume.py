"""Run checkpoints: a run SIGKILLed at a random moment after its first checkpoint resumes to a record whose
curve and final score are bit-identical to an uninterrupted run with the same seed."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.rl.checkpoint import Checkpointer
from benchmark.runner import RunSpec, checkpoint_dir, prepare, run_one

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    # offline model-free
    "bc": ("local/hopper-medium-replay", {"epochs": 6, "steps_per_epoch": 200}),
    # offline model-based (ensemble dynamics, model buffer, rollouts)
    "mopo": ("local/hopper-medium-replay", {"epochs": 5, "steps_per_epoch": 50, "rollout_freq": 40,
                                            "rollout_batch_size": 200, "dynamics_max_epochs": 2}),
    # the paper's offline method (any-step model, carried rollouts, window sampler)
    "admpo-off": ("local/hopper-medium-replay", {"epochs": 5, "steps_per_epoch": 50, "rollout_freq": 40,
                                                 "rollout_batch_size": 200, "model_max_epochs": 1}),
}


def _curve_and_score(record: dict) -> str:
    return json.dumps({"curve": record["curve"], "final_score": record["final_score"],
                       "final_return": record["final_return"]}, sort_keys=True)


def _kill_after_first_checkpoint(
    algo: str, task: str, overrides: dict, results: Path, rng: random.Random
) -> int:
    argv = [sys.executable, "-m", "benchmark", "run", "--algo", algo, "--task", task, "--budget", "smoke",
            "--results", str(results), "--quiet", "--set", "checkpoint_every=1"]
    argv += [x for k, v in overrides.items() for x in ("--set", f"{k}={v}")]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckpts = checkpoint_dir(RunSpec(algo, task, 0, "smoke").path(results))
    deadline = time.time() + 600
    while not (ckpts.is_dir() and any(p.suffix == ".pt" for p in ckpts.iterdir())):
        assert proc.poll() is None, "the run ended before writing a checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))  # a random moment after the first checkpoint
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


@pytest.mark.parametrize("algo", sorted(CASES))
def test_offline_run_killed_after_a_checkpoint_resumes_bit_identically(algo, tiny_data, tmp_path):
    task, overrides = CASES[algo]
    sizes = {**overrides, "checkpoint_every": 1}
    reference = run_one(RunSpec(algo, task, 0, "smoke", sizes), tmp_path / "uninterrupted", progress=False)
    assert reference["status"] == "ok", reference.get("traceback")
    assert not checkpoint_dir(RunSpec(algo, task, 0, "smoke").path(tmp_path / "uninterrupted")).exists()

    results = tmp_path / "killed"
    code = _kill_after_first_checkpoint(algo, task, overrides, results, random.Random(algo))
    run = RunSpec(algo, task, 0, "smoke", sizes)
    path = run.path(results)
    if code == -signal.SIGKILL:
        assert not path.exists() and checkpoint_dir(path).is_dir()
    resumed = run_one(run, results, progress=False)
    assert resumed["status"] == "ok", resumed.get("traceback")
    if code == -signal.SIGKILL:
        assert resumed["resumed_from"] >= 0
    assert _curve_and_score(resumed) == _curve_and_score(reference)
    assert not checkpoint_dir(path).exists()  # deleted once the record is written


def test_corrupt_newest_checkpoint_falls_back_and_other_configs_are_never_used(tmp_path, capsys):
    ckpt = Checkpointer(tmp_path / "c", "hash-a", every=1)
    ckpt.save(1, {"x": 1})
    ckpt.save(2, {"x": 2})
    newest = tmp_path / "c" / "ckpt-0000000002.pt"
    newest.write_bytes(newest.read_bytes()[:40])
    state = ckpt.load()
    assert state["x"] == 1 and ckpt.resumed_from == 1
    assert "skipping unreadable checkpoint" in capsys.readouterr().err
    assert Checkpointer(tmp_path / "c", "hash-b", every=1).load() is None
    assert "written for config hash-a" in capsys.readouterr().err
    ckpt.save(3, {"x": 3})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["ckpt-0000000002.pt", "ckpt-0000000003.pt"]
    assert Checkpointer(tmp_path / "c", "hash-a", every=0).load() is None  # disabled: never resumes


def test_checkpoint_interval_is_not_part_of_the_config_hash(tiny_data):
    base = RunSpec("bc", "local/hopper-medium-replay", 0, "short")
    assert prepare(base)[-1] == prepare(RunSpec("bc", "local/hopper-medium-replay", 0, "short",
                                                {"checkpoint_every": 1}))[-1]
    assert prepare(base)[3]["checkpoint_every"] == 5
    assert prepare(RunSpec("bc", "local/hopper-medium-replay", 0, "smoke"))[3]["checkpoint_every"] == 0
