"""``reproduce --plan``: setup + per-step estimates pinned on a known record set, done runs, missing data."""

from __future__ import annotations

import pytest
from helpers import make_record, write_records

from benchmark import plan
from benchmark.cli import main
from benchmark.runner import RunSpec, prepare


@pytest.fixture(autouse=True)
def no_epoch_benchmark(tmp_path, monkeypatch):
    """These tests pin the record-based estimates; the committed epoch benchmark (which a budget that only
    changes loop lengths would scale) is tested in test_plan_bench.py."""
    monkeypatch.setattr(plan, "EPOCH_BENCH", tmp_path / "no-bench.json")


def _timed(algo, task, seed, budget, wall, setup, cfg, **setup_info):
    rec = make_record(algo, task, seed, 5.0, suite="known", budget=budget)
    rec.update(wall_time_s=wall, config=cfg, setup_info={"setup_time_s": setup, **setup_info},
               schema="admbench.record/1", algo_id=algo)
    return rec


def test_estimate_of_a_known_record_set(tmp_path, tiny_data):
    """Known records: bc smoke 50 steps in 10.5 s (no setup); admpo-off smoke 2 model epochs in 80 s of
    setup, then 50 steps in 2 s. Planned: bc short (10,000 steps) and admpo-off short (20 model epochs,
    10,000 steps) in a fresh folder, and td3bc (never measured; its sibling is bc).
    Expected within 1%: bc 10,000 x 0.21 s = 2100 s; admpo-off 80 / 2 x 20 + 10,000 x 0.04 = 1200 s;
    td3bc 10,000 x 0.21 s = 2100 s (sibling bc)."""
    bc_cfg = {"epochs": 2, "steps_per_epoch": 25}
    adm_cfg = {"epochs": 2, "steps_per_epoch": 25, "model_max_epochs": 2}
    known = tmp_path / "known"
    write_records(known, [
        _timed("bc", "local/hopper-medium", 0, "smoke", 10.5, 0.0, bc_cfg),
        _timed("admpo-off", "local/hopper-medium", 0, "smoke", 82.0, 80.0, adm_cfg, model_epochs=2),
    ])
    runs = [RunSpec("bc", "local/hopper-random", 0, "short"),
            RunSpec("admpo-off", "local/hopper-random", 0, "short"),
            RunSpec("td3bc", "local/hopper-random", 0, "short")]
    est = plan.plan_estimates(runs, tmp_path / "fresh", extra_roots=[known])
    steps = [plan.planned_steps(prepare(r)[3]) for r in runs]
    assert steps == [10_000, 10_000, 10_000]
    assert [e.seconds for e in est] == pytest.approx([2100.0, 1200.0, 2100.0], rel=0.01)
    assert "measured" not in est[0].source and "bc at smoke" in est[0].source
    assert "setup scaled to 20 model epochs" in est[1].source
    assert est[2].source.startswith("sibling bc")
    assert not any(e.done for e in est)


def test_same_budget_records_win_and_done_runs_leave_the_total(tmp_path, tiny_data, capsys):
    run = RunSpec("bc", "local/hopper-random", 0, "smoke", suite="mini")
    cfg = prepare(run)[3]
    rec = _timed("bc", "local/hopper-random", 0, "smoke", 7.0, 1.0, cfg)
    rec["suite"], rec["config_hash"] = "mini", prepare(run)[5]
    write_records(tmp_path / "res", [rec])
    seed1 = RunSpec("bc", "local/hopper-random", 1, "smoke", suite="mini")
    done, todo = plan.plan_estimates([run, seed1], tmp_path / "res", extra_roots=[])
    assert done.done and done.text().endswith("  done")
    assert todo.seconds == pytest.approx(1.0 + 50 * 6.0 / 50) and "measured: 1 bc smoke record" in todo.source
    text = plan.format_plan([done, todo], workers=2, results_dir=tmp_path / "res")
    assert "2 runs: 1 done" in text and "1 to run; estimated 0.00 CPU-hours" in text
    assert "?" not in text


def test_never_measured_gets_a_stated_default(tmp_path, tiny_data):
    (e,) = plan.plan_estimates([RunSpec("cql", "local/hopper-random", 0, "smoke")], tmp_path, extra_roots=[])
    assert e.seconds == pytest.approx(50 * plan.DEFAULTS["offline"][0]) and e.source == plan.DEFAULTS_SOURCE


def test_missing_d4rl_files_are_named_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    assert main(["reproduce", "d4rl", "--plan", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12 dataset file(s) missing (put them in ")
    assert str(tmp_path / "d4rl" / "hopper_medium-v2.hdf5") in out and "admbench data fetch d4rl/" in out
    assert main(["reproduce", "d4rl", "--results", str(tmp_path / "r"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("admbench: error: 12 dataset file(s) missing")
    assert not (tmp_path / "r").exists()  # nothing ran


def test_check_plan_estimates_each_finished_run_without_its_own_record(tmp_path, tiny_data, capsys):
    """Two finished bc smoke seeds, 8 s and 10 s of wall time (1 s setup each): leave-one-out, seed 0 is
    estimated from seed 1 (10 s: ratio 1.25, inside ±30%) and seed 1 from seed 0 (8 s: ratio 0.8)."""
    runs = [RunSpec("bc", "local/hopper-random", s, "smoke", suite="mini") for s in (0, 1)]
    recs = []
    for run, wall in zip(runs, (8.0, 10.0)):
        rec = _timed("bc", "local/hopper-random", run.seed, "smoke", wall, 1.0, prepare(run)[3],
                     setup_cpu_time_s=1.0)
        rec["suite"], rec["config_hash"], rec["cpu_time_s"] = "mini", prepare(run)[5], wall
        recs.append(rec)
    write_records(tmp_path / "res", recs)
    checks = plan.check_estimates(runs, tmp_path / "res", extra_roots=[])
    assert [c.measured_s for c in checks] == pytest.approx([8.0, 10.0])
    assert [c.ratio for c in checks] == pytest.approx([1.25, 0.8])
    text = plan.format_checks(checks)
    assert "OUTSIDE" not in text and "2 finished runs: 2 estimated within ±30%" in text
    # a run whose only other timing is far off is flagged
    checks[0].estimate_s = 20.0
    assert "OUTSIDE ±30%" in plan.format_checks(checks)
    # a run under a CPU-second (estimated and measured) is shown, not compared: its ratio is timer noise
    tiny = [plan.Check("tiny", 0.02, 0.05, "measured"), plan.Check("small", 0.5, 1.5, "measured")]
    text = plan.format_checks(tiny)
    assert "tiny  not compared: under 1 CPU-second (estimate 0.02 s, measured 0.05 s" in text
    assert "small  estimate" in text and "OUTSIDE ±30%" in text and "1 finished runs: 0 estimated" in text
    # a record timed in wall time only (the host's other load in it) is shown, not compared
    checks[0].cpu = False
    text = plan.format_checks(checks)
    assert "not compared: timed in wall time only (0.1 min" in text and "1 finished runs: 1 estimated" in text
    # a record resumed before checkpoints kept their cost times its last segment: shown, not compared
    rec = {**recs[1], "resumed_from": 1}
    write_records(tmp_path / "res", [recs[0], rec])
    checks = plan.check_estimates(runs, tmp_path / "res", extra_roots=[])
    text = plan.format_checks(checks)
    assert "seed=1 budget=smoke  not compared: its record times its last resumed segment only (0.2 " in text
    assert "\n1 finished runs: " in text  # seed 0 alone (estimated from seed 1's segment: 2x per step)
    # the command line: `mini` has other tasks and overrides, so nothing of it is finished here
    assert main(["reproduce", "mini", "--check-plan", "--results", str(tmp_path / "res")]) == 0
    assert "nothing to check yet" in capsys.readouterr().out


def test_an_interrupted_run_is_estimated_from_its_newest_checkpoint(tmp_path, tiny_data):
    """bc smoke: 1 s setup + 50 steps x 0.12 s measured. A seed with checkpoint files at epochs 1 (and an
    older 0) of 2 (25 steps each) has no setup and 25 steps left: 3 s."""
    from benchmark.runner import checkpoint_dir

    run = RunSpec("bc", "local/hopper-random", 0, "smoke", suite="mini")
    rec = _timed("bc", "local/hopper-random", 0, "smoke", 7.0, 1.0, prepare(run)[3])
    rec["suite"], rec["config_hash"] = "mini", prepare(run)[5]
    write_records(tmp_path / "res", [rec])
    seed1 = RunSpec("bc", "local/hopper-random", 1, "smoke", suite="mini")
    folder = checkpoint_dir(seed1.path(tmp_path / "res"))
    folder.mkdir(parents=True)
    for position in (0, 1):
        (folder / f"ckpt-{position:010d}.pt").write_bytes(b"")
    (todo,) = plan.plan_estimates([seed1], tmp_path / "res", extra_roots=[])
    assert (todo.setup_s, todo.steps) == (0.0, 25) and todo.seconds == pytest.approx(3.0)
    assert "resumes from a checkpoint with 25 steps left" in todo.source
    # checkpoints that carry what the run had cost: what is left goes at the run's own pace between the two
    # newest (0.5 CPU-s per step from 25 steps costing 12.5 s), not at the other seed's
    import torch

    for position, cpu in ((0, 1.0), (1, 13.5)):
        torch.save({"spent": {"cpu_s": cpu, "wall_s": cpu}}, folder / f"ckpt-{position:010d}.pt")
    (todo,) = plan.plan_estimates([seed1], tmp_path / "res", extra_roots=[])
    assert todo.seconds == pytest.approx(25 * 0.5)
    assert "at its own pace between its last two checkpoints (0.5 CPU-s per step)" in todo.source


def test_an_interrupted_run_is_planned_from_a_finished_twin_when_one_exists(tmp_path, tiny_data):
    """bc smoke, seed 0 finished in 40 CPU-s (1 s setup), timed over its whole run. Seed 1's newest checkpoint
    (epoch 1 of 2) says it had cost 13.5 CPU-s: what is left is 40 - 13.5 = 26.5 s, not its own pace between
    its checkpoints (0.5 s x 25 steps = 12.5 s), since a run's steps need not cost alike. A seed that has
    already spent more than the twin cost in all, or a twin on another task, leaves the own pace."""
    import torch

    from benchmark.runner import checkpoint_dir

    def finished(task: str, cpu: float) -> dict:
        run = RunSpec("bc", task, 0, "smoke", suite="mini")
        rec = _timed("bc", task, 0, "smoke", cpu + 2.0, 1.0, prepare(run)[3], setup_cpu_time_s=1.0)
        rec.update(suite="mini", config_hash=prepare(run)[5], cpu_time_s=cpu)
        return rec

    seed1 = RunSpec("bc", "local/hopper-random", 1, "smoke", suite="mini")
    folder = checkpoint_dir(seed1.path(tmp_path / "res"))
    folder.mkdir(parents=True)

    def spent(costs):
        for position, cpu in zip((0, 1), costs):
            torch.save({"spent": {"cpu_s": cpu, "wall_s": cpu}}, folder / f"ckpt-{position:010d}.pt")
        (todo,) = plan.plan_estimates([seed1], tmp_path / "res", extra_roots=[])
        return todo

    write_records(tmp_path / "res", [finished("local/hopper-random", 40.0)])
    todo = spent((1.0, 13.5))
    assert todo.steps == 25 and todo.seconds == pytest.approx(26.5)
    assert "1 finished run(s) of this length cost 40 CPU-s in all, this one had spent 14" in todo.source
    todo = spent((30.0, 42.5))  # slower than the twin: past its total, so the run's own pace
    assert todo.seconds == pytest.approx(12.5) and "at its own pace" in todo.source
    (tmp_path / "res").rename(tmp_path / "old")
    write_records(tmp_path / "res", [finished("local/hopper-medium", 40.0)])
    folder.mkdir(parents=True)
    todo = spent((1.0, 13.5))  # the only twin trained on other data
    assert todo.seconds == pytest.approx(12.5) and "at its own pace" in todo.source
