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
import torch
from helpers import resume_after_second_checkpoint, smoke_sizes

from benchmark.results import WHOLE_RUN
from benchmark.rl.checkpoint import Checkpointer
from benchmark.runner import RunSpec, checkpoint_dir, prepare, run_one

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    # offline model-free
    "bc": ("local/hopper-medium-replay", {"epochs": 6, "steps_per_epoch": 200, "checkpoint_every": 1}),
    # offline model-based (ensemble dynamics, model buffer, rollouts)
    "mopo": ("local/hopper-medium-replay", {"epochs": 5, "steps_per_epoch": 50, "rollout_freq": 40,
                                            "rollout_batch_size": 200, "dynamics_max_epochs": 2,
                                            "checkpoint_every": 1}),
    # the paper's offline method (any-step model, carried rollouts, window sampler)
    "admpo-off": ("local/hopper-medium-replay", {"epochs": 5, "steps_per_epoch": 50, "rollout_freq": 40,
                                                 "rollout_batch_size": 200, "model_max_epochs": 1,
                                                 "checkpoint_every": 1}),
    # online model-free: replay buffer, the training env's episode in progress
    "sac": ("mujoco/Hopper", {"env_steps": 400, "eval_interval": 100, "start_learning": 300,
                              "eval_episodes": 1, "checkpoint_every": 25}),
    # online model-based baseline (ensemble kept across trainings, schedule-sized FIFO model buffer)
    "mbpo": ("mujoco/Hopper", {"env_steps": 60, "eval_interval": 20, "start_learning": 400,
                               "model_update_interval": 30, "model_rollout_interval": 15,
                               "rollout_batch_size": 200, "dynamics_max_epochs": 2, "updates_per_step": 5,
                               "checkpoint_every": 4}),
    # the paper's online method (online model-based: model retraining, model buffer, rollouts)
    "admpo-on": ("mujoco/Hopper", {"env_steps": 60, "eval_interval": 20, "start_learning": 400,
                                   "model_update_interval": 30, "model_rollout_interval": 15,
                                   "updates_per_step": 5, "checkpoint_every": 4}),
}


def _curve_and_score(record: dict) -> str:
    """Curve, final score and return; wall-clock timings some curve points carry (``*time_s``, e.g. model
    training time) differ between any two runs and are left out."""
    curve = [{k: v for k, v in p.items() if not k.endswith("time_s")} for p in record["curve"]]
    return json.dumps({"curve": curve, "final_score": record["final_score"],
                       "final_return": record["final_return"]}, sort_keys=True)


def _kill_after_first_checkpoint(
    algo: str, task: str, overrides: dict, results: Path, rng: random.Random
) -> int:
    argv = [sys.executable, "-m", "benchmark", "run", "--algo", algo, "--task", task, "--budget", "smoke",
            "--results", str(results), "--quiet"]
    argv += [x for k, v in overrides.items() for x in ("--set", f"{k}={v}")]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckpts = checkpoint_dir(RunSpec(algo, task, 0, "smoke").path(results))
    deadline = time.time() + 600
    while not (ckpts.is_dir() and any(p.suffix == ".pt" for p in ckpts.iterdir())):
        assert proc.poll() is None, "the run ended before writing a checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.5))  # a random moment after the first checkpoint
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


@pytest.mark.parametrize("algo", sorted(CASES))
def test_run_killed_after_a_checkpoint_resumes_bit_identically(algo, tiny_data, tmp_path):
    task, sizes = CASES[algo]
    overrides = sizes
    reference = run_one(RunSpec(algo, task, 0, "smoke", sizes), tmp_path / "uninterrupted", progress=False)
    assert reference["status"] == "ok", reference.get("traceback")
    assert not checkpoint_dir(RunSpec(algo, task, 0, "smoke").path(tmp_path / "uninterrupted")).exists()

    results = tmp_path / "killed"
    code = _kill_after_first_checkpoint(algo, task, overrides, results, random.Random(algo))
    run = RunSpec(algo, task, 0, "smoke", sizes)
    path = run.path(results)
    assert code == -signal.SIGKILL, "the run finished before it was killed: make it longer"
    assert not path.exists() and checkpoint_dir(path).is_dir()
    resumed = run_one(run, results, progress=False)
    assert resumed["status"] == "ok", resumed.get("traceback")
    assert resumed["resumed_from"] >= 0
    assert _curve_and_score(resumed) == _curve_and_score(reference)
    assert resumed["time_covers"] == WHOLE_RUN  # its times include the killed process's segment
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


def _burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_run_s_cost_adds_up_across_resumes(tmp_path):
    """The checkpoint keeps what the run had cost; the resumed process adds its own. A checkpoint written
    before costs were kept makes the total unknown (None), never a silent undercount."""
    import torch

    first = Checkpointer(tmp_path / "c", "h", every=1)
    _burn_cpu(0.2)
    first.save(1, {})
    saved = torch.load(tmp_path / "c" / "ckpt-0000000001.pt", weights_only=False)["spent"]
    assert saved["cpu_s"] >= 0.2 and saved["wall_s"] >= saved["cpu_s"] - 0.05
    second = Checkpointer(tmp_path / "c", "h", every=1)
    assert second.load() is not None and second.spent_before == saved
    _burn_cpu(0.1)
    assert second.spent()["cpu_s"] >= saved["cpu_s"] + 0.1
    legacy = torch.load(tmp_path / "c" / "ckpt-0000000001.pt", weights_only=False)
    legacy.pop("spent")
    torch.save(legacy, tmp_path / "c" / "ckpt-0000000002.pt")
    third = Checkpointer(tmp_path / "c", "h", every=1)
    assert third.load() is not None and third.resumed_from == 1 and third.spent() is None


def test_checkpoint_interval_is_not_part_of_the_config_hash(tiny_data):
    base = RunSpec("bc", "local/hopper-medium-replay", 0, "short")
    assert prepare(base)[-1] == prepare(RunSpec("bc", "local/hopper-medium-replay", 0, "short",
                                                {"checkpoint_every": 1}))[-1]
    assert prepare(base)[3]["checkpoint_every"] == 5
    assert prepare(RunSpec("bc", "local/hopper-medium-replay", 0, "smoke"))[3]["checkpoint_every"] == 0


@pytest.mark.parametrize("algo, task", [("td3bc", "local/hopper-medium-replay"), ("sac", "mujoco/Hopper")])
def test_keep_policy_writes_a_file_evaluate_runs_again(algo, task, tiny_data, tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.runner import policy_path

    sizes = {"eval_episodes": 2} if algo == "td3bc" else {"env_steps": 61, "eval_interval": 30,
                                                          "start_learning": 200, "eval_episodes": 2}
    argv = ["run", "--algo", algo, "--task", task, "--budget", "smoke", "--results", str(tmp_path),
            "--quiet", "--keep-policy"] + [x for k, v in sizes.items() for x in ("--set", f"{k}={v}")]
    assert main(argv) == 0
    run = RunSpec(algo, task, 0, "smoke", sizes)
    record = json.loads(run.path(tmp_path).read_text())
    policy = policy_path(run.path(tmp_path))
    assert policy.stat().st_size < 5_000_000  # networks only: buffers and datasets are left out
    capsys.readouterr()
    assert main(["evaluate", str(policy), "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    # the same deterministic episodes as the last evaluation (taken after the last update) give its return
    assert out["return_mean"] == record["curve"][-1]["return_mean"]
    assert out["config_hash"] == record["config_hash"] and out["task"] == task


def _smoke_sizes(spec) -> dict:
    """The shared smoke sizes (:func:`helpers.smoke_sizes`) and a few epochs or env steps with a checkpoint
    at each."""
    sizes = smoke_sizes(spec.name)
    if spec.kind == "offline":
        return {**sizes, "epochs": 3, "steps_per_epoch": 10, "eval_episodes": 1, "checkpoint_every": 1}
    return {**sizes, "env_steps": 30, "eval_interval": 10, "eval_episodes": 1, "start_learning": 400,
            "checkpoint_every": 10}


def _all_algorithms():
    """Every registered algorithm but those the SIGKILL test above already covers."""
    from benchmark import registry

    return sorted(set(registry.algorithms()) - set(CASES))


@pytest.mark.parametrize("algo", _all_algorithms())
def test_every_algorithm_checkpoints_and_resumes_to_the_same_record(algo, tiny_data, tmp_path, monkeypatch):
    """The contract behind the SIGKILL tests, for every registered algorithm: the state it holds pickles
    (no closures, no open handles) and a run interrupted right after its second checkpoint resumes to the
    uninterrupted record."""
    from benchmark import registry

    spec = registry.get(algo)
    task = "local/hopper-medium-replay" if spec.kind == "offline" else "mujoco/Hopper"
    run = RunSpec(algo, task, 0, "smoke", _smoke_sizes(spec))
    reference = run_one(run, tmp_path / "a", progress=False)
    assert reference["status"] == "ok", reference.get("traceback")

    resumed, last_save = resume_after_second_checkpoint(run, tmp_path / "b", monkeypatch)
    assert resumed["status"] == "ok", resumed.get("traceback")
    assert resumed["resumed_from"] == last_save
    assert _curve_and_score(resumed) == _curve_and_score(reference)


@pytest.mark.parametrize("algo, added", [("td3bc", ["batch_generator"]), ("sac", ["batch_generator"]),
                                         ("admpo-on", ["batch_generator", "window_generator"])])
def test_a_checkpoint_from_before_the_device_generators_resumes_with_the_same_draws(algo, added, tiny_data):
    """Checkpoints written before issue 19 hold no `batch_generator` (nor ADMPO-ON's `window_generator`):
    unpickling stands the generator the code then used in for each, so such a run resumes (instead of
    failing with AttributeError) and draws what a run without the new attributes would have drawn."""
    import io
    import pickle

    from helpers import smoke_algorithm

    built = smoke_algorithm(algo, smoke_sizes(algo))[0]
    for name in added:  # on a CPU each new generator IS the one it stands in for
        assert getattr(built, name) is getattr(built, type(built).ADDED_ATTRIBUTES[name])

    class WithoutAdded(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is built:
                state = {k: v for k, v in built.__getstate__().items() if k not in added} \
                    if hasattr(built, "__getstate__") else dict(built.__dict__)
                return type(built).__new__, (type(built),), state
            return NotImplemented

    buf = io.BytesIO()
    WithoutAdded(buf).dump(built)
    old = pickle.loads(buf.getvalue())
    for name in added:
        assert getattr(old, name) is getattr(old, type(old).ADDED_ATTRIBUTES[name])
    fresh = pickle.loads(pickle.dumps(built))
    if hasattr(built, "attach_data"):  # offline: the checkpoint leaves the dataset out, a resume attaches it
        old.attach_data(built.ctx)
        fresh.attach_data(built.ctx)
    for step in range(2):
        a, b = old.next_batch(step), fresh.next_batch(step)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_run_keeps_its_checkpoints_and_the_next_sweep_resumes_it(tiny_data, tmp_path, monkeypatch):
    """A run that fails after a checkpoint (here an exception injected at gradient step 50 of 4 x 20) is
    recorded `failed` and keeps its checkpoints; the next attempt resumes from epoch 2 and ends with the
    record an uninterrupted run gives, and only then are the checkpoints removed."""
    from baselines.bc import BC

    run = RunSpec("bc", "local/hopper-medium-replay", 0, "smoke",
                  {"epochs": 4, "steps_per_epoch": 20, "checkpoint_every": 1})
    original, calls = BC.learn, {"n": 0}

    def failing(self, batch):
        calls["n"] += 1
        if calls["n"] == 50:
            raise RuntimeError("injected failure")
        return original(self, batch)

    monkeypatch.setattr(BC, "learn", failing)
    failed = run_one(run, tmp_path / "a", progress=False)
    assert failed["status"] == "failed" and "injected failure" in failed["reason"]
    assert checkpoint_dir(run.path(tmp_path / "a")).is_dir()
    monkeypatch.setattr(BC, "learn", original)
    again = run_one(run, tmp_path / "a", progress=False)
    assert again["status"] == "ok" and again["resumed_from"] == 2
    assert _curve_and_score(again) == _curve_and_score(run_one(run, tmp_path / "b", progress=False))
    assert not checkpoint_dir(run.path(tmp_path / "a")).exists()


def test_stage_checkpoints_return_finished_stages_with_their_random_states(tmp_path):
    """A loaded stage gives back its value and the global random state right after it (what the next stage
    would have drawn), adds its recorded cost; another config's file is recomputed, never used."""
    from benchmark.rl.checkpoint import StageCheckpoints

    calls = []

    def stage():
        calls.append(1)
        return torch.rand(3)

    torch.manual_seed(0)
    first = StageCheckpoints(tmp_path / "s", "hash-a", log=lambda m: None)
    value = first.run("fit", stage)
    after = torch.rand(2)
    torch.manual_seed(123)  # a new process: another random state
    again = StageCheckpoints(tmp_path / "s", "hash-a", log=lambda m: None)
    assert torch.equal(again.run("fit", stage), value) and len(calls) == 1
    assert torch.equal(torch.rand(2), after) and again.loaded == ["fit"]
    assert again.spent()["cpu_s"] >= 0.0
    other = StageCheckpoints(tmp_path / "s", "hash-b", log=lambda m: None)
    other.run("fit", stage)
    assert len(calls) == 2 and other.loaded == []
    other.clear()
    assert not (tmp_path / "s").exists()


def test_a_shared_stage_is_computed_once_and_loaded_by_another_job_with_its_random_states(tmp_path):
    """A stage with a share key is kept in the shared folder: another job (its own folder, another config
    hash) loads it with the random states after it, marks it shared and does not count its cost; another
    key, or an unreadable shared file, is computed again."""
    from benchmark.rl.checkpoint import StageCheckpoints

    calls = []

    def stage():
        calls.append(1)
        return torch.rand(3)

    def job(name, config_hash):
        return StageCheckpoints(tmp_path / name, config_hash, log=lambda m: None, shared_dir=tmp_path / "sh")

    torch.manual_seed(0)
    first = job("a", "hash-a")
    value = first.run("model-x", stage, share_key="k1")
    after = torch.rand(2)
    assert first.shared == {} and (tmp_path / "sh" / "model-x-k1.pt").is_file()
    # one file's bytes in both places, so git stores a carried fit once
    shared_bytes = (tmp_path / "sh" / "model-x-k1.pt").read_bytes()
    assert shared_bytes == (tmp_path / "a" / "stage-model-x.pt").read_bytes()
    torch.manual_seed(99)
    second = job("b", "hash-b")
    assert torch.equal(second.run("model-x", stage, share_key="k1"), value) and len(calls) == 1
    assert torch.equal(torch.rand(2), after)
    assert second.shared == {"model-x": "k1"} and second.costs["model-x"]["shared"] is True
    assert second.loaded == [] and second.spent_before == {"wall_s": 0.0, "cpu_s": 0.0}
    assert not (tmp_path / "b").exists()  # nothing of its own to keep
    job("c", "hash-c").run("model-x", stage, share_key="k2")
    assert len(calls) == 2
    (tmp_path / "sh" / "model-x-k1.pt").write_bytes(b"truncated")
    job("d", "hash-d").run("model-x", stage, share_key="k1")
    assert len(calls) == 3


def test_a_job_resumed_from_its_own_stage_publishes_it_for_other_jobs(tmp_path):
    """A stage finished before the shared folder existed (or before the job was killed) is shared when the
    job loads it again, so no other job fits that model a second time."""
    from benchmark.rl.checkpoint import StageCheckpoints

    calls = []

    def stage():
        calls.append(1)
        return torch.rand(3)

    value = StageCheckpoints(tmp_path / "a", "hash-a", log=lambda m: None).run("model-x", stage)
    resumed = StageCheckpoints(tmp_path / "a", "hash-a", log=lambda m: None, shared_dir=tmp_path / "sh")
    assert torch.equal(resumed.run("model-x", stage, share_key="k"), value) and resumed.loaded == ["model-x"]
    other = StageCheckpoints(tmp_path / "b", "hash-b", log=lambda m: None, shared_dir=tmp_path / "sh")
    assert torch.equal(other.run("model-x", stage, share_key="k"), value) and len(calls) == 1


def test_a_shared_file_removed_is_copied_again_byte_for_byte_from_the_job_that_fitted_it(tmp_path):
    """A job whose own stage file names its share key (it was shared when fitted) publishes it again as a
    byte copy when the shared file is gone (say, a clone without it), and other jobs load that copy."""
    from benchmark.rl.checkpoint import StageCheckpoints

    calls = []

    def stage():
        calls.append(1)
        return torch.rand(3)

    def job(name):
        return StageCheckpoints(tmp_path / name, name, log=lambda m: None, shared_dir=tmp_path / "sh")

    torch.manual_seed(0)
    value = job("a").run("model-x", stage, share_key="k")
    own, shared = tmp_path / "a" / "stage-model-x.pt", tmp_path / "sh" / "model-x-k.pt"
    shared.unlink()
    resumed = job("a")
    assert torch.equal(resumed.run("model-x", stage, share_key="k"), value) and resumed.loaded == ["model-x"]
    assert shared.read_bytes() == own.read_bytes()
    other = job("b")
    assert torch.equal(other.run("model-x", stage, share_key="k"), value) and other.shared == {"model-x": "k"}
    assert len(calls) == 1


def test_a_second_job_waits_for_a_shared_stage_being_computed_instead_of_computing_it(tmp_path):
    import threading

    from benchmark.rl.checkpoint import StageCheckpoints

    started, release, calls, values = threading.Event(), threading.Event(), [], {}

    def slow_stage():
        calls.append(1)
        started.set()
        release.wait(10)
        return torch.arange(3)

    def job(name):
        values[name] = StageCheckpoints(tmp_path / name, name, log=lambda m: None,
                                        shared_dir=tmp_path / "sh").run("model-x", slow_stage, share_key="k")

    first = threading.Thread(target=job, args=("a",))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=job, args=("b",))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # blocked on the key's lock, not fitting
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and torch.equal(values["a"], values["b"])


@pytest.mark.parametrize("algo", ["admpo-off", "mopo"])
def test_a_run_killed_while_training_its_model_in_setup_resumes_the_model_loop(algo, tiny_data, tmp_path,
                                                                             monkeypatch):
    """Model training inside setup (ADM for ADMPO-OFF, the ensemble for MOPO) saves its loop every epoch
    here: a run killed in the model's third epoch resumes that loop (not the model from scratch) and writes
    the record an uninterrupted run writes, its CPU time spanning both processes; the loop file goes once
    the run's first checkpoint supersedes it."""
    import adm.training
    from benchmark.rl.dynamics import EnsembleDynamics

    monkeypatch.setattr(Checkpointer, "SETUP_LOOP_EVERY_S", 0.0)
    caps = {"admpo-off": {"model_max_epochs": 4},
            "mopo": {"dynamics_max_epochs": 4, "dynamics_max_steps": None}}
    run = RunSpec(algo, "local/hopper-medium-replay", 0, "smoke",
                  {"epochs": 2, "steps_per_epoch": 10, "checkpoint_every": 1, **caps[algo]})
    owner, name = ((adm.training, "validate_per_k") if algo == "admpo-off"
                   else (EnsembleDynamics, "holdout_mse"))
    real, calls = getattr(owner, name), []

    def killed_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies: no record
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run_one(run, tmp_path / "a", progress=False)
    folder = checkpoint_dir(run.path(tmp_path / "a"))
    assert [p.name for p in folder.iterdir()] == ["setup-model.loop.pt"]
    loop_file = torch.load(folder / "setup-model.loop.pt", weights_only=False)
    loop_file["cost"] = {"wall_s": 5000.0, "cpu_s": 3000.0}  # as if the killed process had trained for long
    torch.save(loop_file, folder / "setup-model.loop.pt")
    monkeypatch.setattr(owner, name, real)
    resumed = run_one(run, tmp_path / "a", progress=False)
    whole = run_one(run, tmp_path / "b", progress=False)
    assert resumed["status"] == whole["status"] == "ok"
    assert resumed["setup_info"]["setup_resumed"] == ["setup-model.loop.pt"]
    assert _curve_and_score(resumed) == _curve_and_score(whole)
    epochs = "model_epochs" if algo == "admpo-off" else "dynamics/epochs"
    assert resumed["setup_info"][epochs] == whole["setup_info"][epochs] == 4
    assert resumed["time_covers"] == WHOLE_RUN
    assert resumed["cpu_time_s"] > resumed["setup_info"]["setup_cpu_time_s"]  # the killed segment counts
    # in the setup's times as well as the run's
    assert resumed["setup_info"]["setup_cpu_time_s"] >= 3000.0 > whole["setup_info"]["setup_cpu_time_s"]
    assert resumed["setup_info"]["setup_time_s"] >= 5000.0 > whole["setup_info"]["setup_time_s"]
    assert resumed["cpu_time_s"] >= 3000.0
    assert not folder.exists()


@pytest.mark.parametrize("algo", ["cbop", "rambo"])
def test_a_run_killed_while_pre_training_its_policy_resumes_the_pre_training(algo, tiny_data, tmp_path,
                                                                             monkeypatch):
    """CBOP's BC and policy-evaluation steps and RAMBO's BC epochs (after the model, inside setup) save
    their loop (every step or epoch here): a run killed after the pre-training's third save resumes from
    it (only the saves left are made again, not the whole pre-training) and writes the record an
    uninterrupted run writes."""
    from benchmark.rl.checkpoint import LoopCheckpoint

    monkeypatch.setattr(Checkpointer, "SETUP_LOOP_EVERY_S", 0.0)
    sizes = {"cbop": {"bc_steps": 4, "pe_steps": 4}, "rambo": {"bc_epochs": 5}}[algo]
    run = RunSpec(algo, "local/hopper-medium-replay", 0, "smoke",
                  {"epochs": 2, "steps_per_epoch": 5, "checkpoint_every": 1, "dynamics_max_epochs": 2,
                   **sizes})
    total = sum(sizes.values())
    real, saves = LoopCheckpoint.save_objects, []

    def killed_after_third_save(self, *args, **kwargs):
        real(self, *args, **kwargs)
        saves.append(self.path.name)
        if len(saves) == 3:
            raise KeyboardInterrupt  # the process dies after the file is written

    monkeypatch.setattr(LoopCheckpoint, "save_objects", killed_after_third_save)
    with pytest.raises(KeyboardInterrupt):
        run_one(run, tmp_path / "a", progress=False)
    folder = checkpoint_dir(run.path(tmp_path / "a"))
    assert sorted(p.name for p in folder.iterdir()) == ["setup-model.loop.pt", "setup-pretrain.loop.pt"]
    monkeypatch.setattr(LoopCheckpoint, "save_objects", real)
    saves.clear()

    def counted(self, *args, **kwargs):
        saves.append(self.path.name)
        real(self, *args, **kwargs)

    monkeypatch.setattr(LoopCheckpoint, "save_objects", counted)
    resumed = run_one(run, tmp_path / "a", progress=False)
    assert saves == ["setup-pretrain.loop.pt"] * (total - 3)  # from the third save on, not from scratch
    saves.clear()
    whole = run_one(run, tmp_path / "b", progress=False)
    assert len(saves) == total
    assert resumed["status"] == whole["status"] == "ok"
    assert "setup-pretrain.loop.pt" in resumed["setup_info"]["setup_resumed"]
    assert _curve_and_score(resumed) == _curve_and_score(whole)
    losses = [k for k in whole["setup_info"] if k.startswith(("pretrain/", "bc/"))]
    assert losses and all(resumed["setup_info"][k] == whole["setup_info"][k] for k in losses)
    assert not folder.exists()


def test_a_resumed_setup_loop_adds_its_earlier_cost_to_the_run_and_goes_with_the_first_checkpoint(tmp_path):
    """What the killed process spent in a setup loop (kept in the loop's file) counts in the run's cost,
    before and after the run's first checkpoint, which deletes the loop file."""
    first = Checkpointer(tmp_path / "c", "h", every=1, log=lambda m: None, commit="aaa")
    loop = first.setup_loop("model")
    loop._cpu0 -= 100.0  # as if the killed process had spent 100 CPU-s in the loop
    loop.save({"epoch": 2})
    again = Checkpointer(tmp_path / "c", "h", every=1, log=lambda m: None, commit="bbb")
    resumed = again.setup_loop("model")
    assert resumed.load() == {"epoch": 2} and again.resumed_setup == ["setup-model.loop.pt"]
    assert again.spent()["cpu_s"] >= 100.0
    assert again.commits == ["aaa", "bbb"]  # the loop's earlier process ran other code
    again.save(0, {})
    assert not (tmp_path / "c" / "setup-model.loop.pt").exists()
    assert again.spent()["cpu_s"] >= 100.0 and again.resumed_setup == ["setup-model.loop.pt"]
    saved = torch.load(tmp_path / "c" / "ckpt-0000000000.pt", weights_only=False)
    assert saved["spent"]["cpu_s"] >= 100.0
    assert saved["commits"] == again.commits == ["aaa", "bbb"]  # kept after the loop's file is gone
    assert Checkpointer(tmp_path / "d", "h", every=0).setup_loop("model") is None  # no checkpoints, no loop


def test_a_resumed_sweep_starts_its_interrupted_jobs_first(tiny_data, tmp_path):
    """run_many puts jobs with saved progress (a non-empty checkpoint folder) before new ones, each group in
    suite order; the records are what they would be in any order."""
    from benchmark.executor import interrupted_first, run_many
    from benchmark.runner import AnalysisJob

    runs = [RunSpec("bc", "local/hopper-random", seed, "smoke", suite="s") for seed in (0, 1, 2)]
    job = AnalysisJob("compounding-error", "local/hopper-random", 0, "smoke", "s")
    for interrupted in (runs[2], job):
        folder = checkpoint_dir(interrupted.path(tmp_path))
        folder.mkdir(parents=True)
        (folder / "stage-model-adm.pt").write_bytes(b"")  # what matters here is only that it is there
    checkpoint_dir(runs[1].path(tmp_path)).mkdir(parents=True)  # empty: nothing saved
    assert interrupted_first([*runs, job], tmp_path) == [runs[2], job, runs[0], runs[1]]
    summaries = run_many(runs, tmp_path, workers=1, progress=False)
    assert [s["seed"] for s in summaries] == [2, 0, 1] and all(s["status"] == "ok" for s in summaries)
    alone = run_one(RunSpec("bc", "local/hopper-random", 2, "smoke", suite="alone"), tmp_path)
    assert alone["final_return"] == json.loads(runs[2].path(tmp_path).read_text())["final_return"]


def test_a_run_resumed_under_another_commit_lists_every_commit_it_ran_under(tiny_data, tmp_path, monkeypatch):
    """A run killed after its second checkpoint and resumed by newer code names the newer commit as its
    ``commit`` and both in ``commits`` (the result depends on each); an uninterrupted run, or one resumed
    by the same code, has no ``commits``; a checkpoint written before commits were kept counts as
    ``unrecorded``. The report's header lists every commit and how many records span more than one."""
    import benchmark.runner
    from benchmark.reporting.readme import write_report
    from benchmark.rl.checkpoint import UNRECORDED_COMMIT

    run = RunSpec("td3bc", "local/hopper-medium-replay", 0, "smoke",
                  {"epochs": 4, "steps_per_epoch": 5, "checkpoint_every": 1}, suite="s")
    monkeypatch.setattr(benchmark.runner, "git_commit", lambda: "aaa")
    whole = run_one(run, tmp_path / "whole", progress=False)
    assert "commits" not in whole
    same, _ = resume_after_second_checkpoint(run, tmp_path / "same", monkeypatch)
    assert same["commit"] == "aaa" and "commits" not in same

    real_save = Checkpointer.save

    def save_then_die(self, position, state):
        path = real_save(self, position, state)
        if position == 1:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_one(run, tmp_path / "newer", progress=False)
    monkeypatch.setattr(Checkpointer, "save", real_save)
    monkeypatch.setattr(benchmark.runner, "git_commit", lambda: "bbb")
    newer = run_one(run, tmp_path / "newer", progress=False)
    assert newer["commit"] == "bbb" and newer["commits"] == ["aaa", "bbb"]
    assert _curve_and_score(newer) == _curve_and_score(whole)
    header = write_report("s", tmp_path / "newer", tmp_path / "report", bootstrap_reps=10,
                          figures=False).read_text()
    assert "`aaa`, `bbb` (1 record(s) span more than one commit" in header

    # a checkpoint from before commits were kept: its segment's commit is unknown, and said to be
    monkeypatch.setattr(benchmark.runner, "git_commit", lambda: "aaa")
    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_one(run, tmp_path / "old", progress=False)
    monkeypatch.setattr(Checkpointer, "save", real_save)
    folder = checkpoint_dir(run.path(tmp_path / "old"))
    for path in folder.glob("ckpt-*.pt"):
        payload = torch.load(path, weights_only=False)
        del payload["commits"]
        torch.save(payload, path)
    old = run_one(run, tmp_path / "old", progress=False)
    assert old["commits"] == [UNRECORDED_COMMIT, "aaa"]


def test_stages_loaded_from_files_of_other_commits_are_listed(tmp_path):
    """An analysis job's stages keep the commits that computed them: a job that loads its own finished
    stage or another job's shared one written by other code lists those commits too."""
    from benchmark.rl.checkpoint import UNRECORDED_COMMIT, StageCheckpoints

    def stages(name, commit):
        return StageCheckpoints(tmp_path / name, name, log=lambda m: None, shared_dir=tmp_path / "shared",
                                commit=commit)

    first = stages("a", "aaa")
    first.run("model-x", lambda: torch.ones(2), share_key="k")
    assert first.commits == ["aaa"]
    resumed = stages("a", "bbb")  # the same job after a kill, under newer code: loads its stage file
    resumed.run("model-x", lambda: torch.zeros(2), share_key="k")
    assert resumed.commits == ["bbb", "aaa"]
    other = stages("b", "ccc")  # another job loading the shared fit
    assert torch.equal(other.run("model-x", lambda: torch.zeros(2), share_key="k"), torch.ones(2))
    other.run("model-y", lambda: torch.zeros(1))
    assert other.commits == ["ccc", "aaa"]
    payload = torch.load(tmp_path / "shared" / "model-x-k.pt", weights_only=False)
    del payload["commits"]  # a shared file from before commits were kept
    torch.save(payload, tmp_path / "shared" / "model-x-k.pt")
    older = stages("c", "ccc")
    older.run("model-x", lambda: torch.zeros(2), share_key="k")
    assert older.commits == ["ccc", UNRECORDED_COMMIT]
