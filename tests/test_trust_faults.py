"""Trust, faults: a dead worker fails only its own run; two sweeps never train one run twice; a report is
never half-written."""

import json
import multiprocessing
import os
import signal
import textwrap
import time

import pytest

from benchmark.executor import run_many
from benchmark.results import RunBusy, claim_run, lock_path
from benchmark.runner import RunSpec, run_one

CRASH_PLUGIN = textwrap.dedent(
    '''
    """Test plugin: BC that kills its own process (SIGKILL, like the OOM killer) when seed == 1."""
    import os
    import signal

    from baselines.bc import BC, BCConfig
    from benchmark.registry import AlgorithmSpec, register


    def make(cfg, ctx):
        if cfg.seed == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return BC(cfg, ctx)


    register(AlgorithmSpec(name="crash-on-seed-1", config_cls=BCConfig, factory=make, kind="offline",
                           description="test plugin", module=__name__))
    '''
)


@pytest.fixture
def crash_plugin(tmp_path, monkeypatch):
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "crash_plugin_for_tests.py").write_text(CRASH_PLUGIN)
    monkeypatch.syspath_prepend(str(plugin_dir))  # spawned workers inherit sys.path and the environment
    monkeypatch.setenv("ADMBENCH_PLUGINS", "crash_plugin_for_tests")
    import crash_plugin_for_tests  # noqa: F401  (registers in this process too)

    return "crash-on-seed-1"


def test_a_killed_worker_fails_only_its_own_run(tiny_data, tmp_path, crash_plugin):
    task = "local/hopper-medium-replay"
    runs = [RunSpec(crash_plugin, task, seed, "smoke", suite="s") for seed in range(3)]
    summaries = run_many(runs, tmp_path, workers=2, progress=False, max_retries=1)
    by_seed = {s["seed"]: s for s in summaries}
    assert sorted(by_seed) == [0, 1, 2]
    assert by_seed[0]["status"] == by_seed[2]["status"] == "ok"
    assert by_seed[1]["status"] == "failed"
    assert "worker process died 2 times (killed by SIGKILL, killed by SIGKILL)" in by_seed[1]["reason"]
    # the failure is a record (reports show it; the next reproduce redoes it), the others are results
    failed = json.loads(runs[1].path(tmp_path).read_text())
    assert failed["status"] == "failed" and failed["config_hash"]
    assert json.loads(runs[0].path(tmp_path).read_text())["status"] == "ok"
    assert not list(tmp_path.rglob(".*.lock"))


def _hold_claim(path: str, ready, release) -> None:
    with claim_run(path):
        ready.set()
        release.wait(60)


def test_a_run_claimed_by_another_live_process_is_not_trained_twice(tiny_data, tmp_path):
    run = RunSpec("bc", "local/hopper-medium-replay", 0, "smoke", suite="s")
    path = run.path(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    owner = ctx.Process(target=_hold_claim, args=(str(path), ready, release))
    owner.start()
    try:
        assert ready.wait(60)
        assert f"pid {owner.pid} on " in lock_path(path).read_text()
        with pytest.raises(RunBusy, match=rf"being produced by pid {owner.pid} on "):
            run_one(run, tmp_path, progress=False)
        [summary] = run_many([run], tmp_path, workers=1, progress=False)
        assert summary["status"] == "busy" and not path.exists()
    finally:
        release.set()
        owner.join(30)
    assert not lock_path(path).exists()  # released and removed
    assert run_one(run, tmp_path, progress=False)["status"] == "ok"


def test_a_claim_dies_with_its_process(tiny_data, tmp_path):
    path = tmp_path / "s" / "seed-0.json"
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    owner = ctx.Process(target=_hold_claim, args=(str(path), ready, release))
    owner.start()
    assert ready.wait(60)
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(30)
    assert lock_path(path).exists()  # the file stays behind, the lock does not
    with claim_run(path):
        assert f"pid {os.getpid()} on " in lock_path(path).read_text()


def test_two_concurrent_sweeps_train_each_run_once(tiny_data, tmp_path):
    runs = [RunSpec("bc", "local/hopper-medium-replay", seed, "smoke", {"steps_per_epoch": 400}, suite="s")
            for seed in range(2)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        both = pool.starmap(_sweep, [(runs, str(tmp_path)), (runs, str(tmp_path))])
    trained = [s for sweep in both for s in sweep if s["status"] == "ok" and not s.get("_skipped")]
    assert len(trained) == 2  # each run trained exactly once between the two sweeps
    assert sorted(s["seed"] for s in trained) == [0, 1]
    for sweep in both:
        assert {s["status"] for s in sweep} <= {"ok", "busy"}


def _sweep(runs, results_dir):
    from pathlib import Path

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return run_many(runs, Path(results_dir), workers=1, progress=False)


def test_report_is_swapped_in_whole_or_not_at_all(tiny_data, tmp_path, monkeypatch):
    from benchmark.reporting import readme, sections

    run = RunSpec("bc", "local/hopper-medium-replay", 0, "smoke", suite="s")
    run_one(run, tmp_path / "r", progress=False)
    out = tmp_path / "reports" / "s"
    readme.write_report("s", tmp_path / "r", out, figures=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "README.md" in before

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sections, "per_task_section", disk_full)
    with pytest.raises(OSError):
        readme.write_report("s", tmp_path / "r", out, figures=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous report, untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["s"]  # no staging or old folders left
    assert oct(out.stat().st_mode & 0o777) in ("0o755", "0o775", "0o777")


def test_reproduce_reports_with_a_missing_results_folder(tmp_path, crash_plugin, tiny_data, capsys):
    from benchmark.cli import main

    suite = tmp_path / "S.yaml"
    suite.write_text("runs:\n  - algos: [crash-on-seed-1]\n    tasks: [local/hopper-medium-replay]\n")
    t0 = time.time()
    code = main(["reproduce", str(suite), "--seeds", "2", "--workers", "2", "--max-retries", "0",
                 "--results", str(tmp_path / "R"), "--reports", str(tmp_path / "rep"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "2 runs: 1 ok (0 already done), 1 failed" in out
    readme = (tmp_path / "rep" / "S" / "README.md").read_text()
    assert "Failed runs" in readme and "worker process died 1 time (killed by SIGKILL)" in readme
    assert time.time() - t0 < 300


class _FakeRay:
    """Just enough of Ray's API for the driver logic: tasks run inline; seed 1's worker 'keeps dying'."""

    class WorkerCrashedError(Exception):
        pass

    def __init__(self):
        self.started = False

    def is_initialized(self):
        return self.started

    def init(self, **kwargs):
        self.started = True

    def shutdown(self):
        self.started = False

    def remote(self, **options):
        fake = self

        def wrap(fn):
            class Remote:
                @staticmethod
                def remote(run, *args):
                    ref = _FakeRay.Ref()
                    ref.crash, ref.value = run.seed == 1, None if run.seed == 1 else fn(run, *args)
                    return ref

            fake.options = options
            return Remote

        return wrap

    class Ref:  # hashable, like Ray's ObjectRef
        pass

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.crash:
            raise self.WorkerCrashedError("the worker died 3 times")
        return ref.value


def test_ray_writes_a_failed_record_when_retries_run_out(tiny_data, tmp_path, monkeypatch):
    import sys

    from benchmark.ray_executor import run_many_ray

    monkeypatch.setitem(sys.modules, "ray", _FakeRay())
    runs = [RunSpec("bc", "local/hopper-medium-replay", seed, "smoke", suite="s") for seed in (0, 1)]
    summaries = {s["seed"]: s for s in run_many_ray(runs, tmp_path, progress=False, max_retries=2)}
    assert summaries[0]["status"] == "ok"
    assert summaries[1]["status"] == "failed"
    record = json.loads(runs[1].path(tmp_path).read_text())
    assert record["status"] == "failed"
    assert record["reason"].startswith("ray task failed after 2 retries: WorkerCrashedError")
    assert sys.modules["ray"].options["max_retries"] == 2
