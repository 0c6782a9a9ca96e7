"""--plan for `paper` runs reads the per-epoch benchmark (scripts/bench_epochs.py) before any fallback."""

import json

import pytest

from benchmark import plan
from benchmark.results import WHOLE_RUN, times_whole_run

ROW = {"epoch_s": 50.0, "steps_per_epoch": 1000, "model_epoch_s": 12.0, "update_ms": 23.0}


@pytest.fixture
def bench_file(tmp_path, monkeypatch):
    path = tmp_path / "epochs-cpu.json"
    rows = {"mopo": ROW, "bc": {"epoch_s": 9.0, "steps_per_epoch": 1000}}
    path.write_text(json.dumps({"meta": {"task": "local/hopper-medium-replay"}, "algorithms": rows}))
    monkeypatch.setattr(plan, "EPOCH_BENCH", path)
    monkeypatch.setattr(plan, "REPO_ROOT", tmp_path)
    return path


def test_paper_run_uses_the_epoch_benchmark(bench_file):
    setup, per_step, source = plan.estimate("mopo", "paper", {"steps_per_epoch": 1000}, [])
    assert per_step == pytest.approx(0.05)  # 50 s per 1000-step epoch
    assert setup == pytest.approx(12.0)  # one model epoch: the lower bound when nothing stopped early yet
    assert "epochs-cpu.json" in source and "lower bound" in source


def test_model_epochs_come_from_the_cap_or_from_finished_records(bench_file):
    capped, _, _ = plan.estimate("mopo", "paper", {"steps_per_epoch": 1000, "dynamics_max_epochs": 30}, [])
    assert capped == pytest.approx(12.0 * 30)
    record = plan.Sample("mopo", "short", "model-based", setup_s=60.0, per_step_s=0.01, model_epochs=7.0)
    from_records, _, source = plan.estimate("mopo", "paper", {"steps_per_epoch": 1000}, [record])
    assert from_records == pytest.approx(12.0 * 7)
    assert "7 model epochs" in source


def test_model_free_and_other_budgets(bench_file):
    setup, per_step, _ = plan.estimate("bc", "paper", {"steps_per_epoch": 500}, [])
    assert (setup, per_step) == (0.0, pytest.approx(9.0 / 500))
    # a `short` run never reads the paper-size benchmark
    _, _, source = plan.estimate("mopo", "short", {"steps_per_epoch": 500}, [])
    assert "epochs-cpu.json" not in source


def test_records_cpu_time_wins_over_wall_time():
    """A record measured on a loaded host: 100 s of wall time but 40 s of CPU (10 s of it setup) over 50
    steps. The estimate counts CPU: 10 s setup + 0.6 s per step; a record without CPU time keeps wall."""
    rec = {"status": "ok", "schema": "admbench.record/1", "algo": "bc", "algo_id": "bc", "budget": "smoke",
           "config": {"epochs": 2, "steps_per_epoch": 25}, "wall_time_s": 100.0, "cpu_time_s": 40.0,
           "setup_info": {"setup_time_s": 30.0, "setup_cpu_time_s": 10.0}}
    sample = plan.sample_from_record(rec)
    assert (sample.setup_s, sample.per_step_s) == (pytest.approx(10.0), pytest.approx(0.6))
    old = {**rec, "setup_info": {"setup_time_s": 30.0}}
    old.pop("cpu_time_s")
    sample = plan.sample_from_record(old)
    assert (sample.setup_s, sample.per_step_s) == (pytest.approx(30.0), pytest.approx(1.4))


def test_pretraining_steps_join_the_setup(tmp_path, monkeypatch):
    """CBOP pre-trains for a fixed number of steps inside setup(): the benchmark times a few and --plan counts
    the config's: 1 model epoch (30 s) + (20000 + 10000) steps x 4 ms = 150 s."""
    path = tmp_path / "epochs-cpu.json"
    row = {"epoch_s": 80.0, "steps_per_epoch": 1000, "model_epoch_s": 30.0, "pretrain_step_ms": 4.0}
    path.write_text(json.dumps({"meta": {"task": "local/hopper-medium-replay"}, "algorithms": {"cbop": row}}))
    monkeypatch.setattr(plan, "EPOCH_BENCH", path)
    monkeypatch.setattr(plan, "REPO_ROOT", tmp_path)
    cfg = {"steps_per_epoch": 1000, "dynamics_max_epochs": 1, "bc_steps": 20000, "pe_steps": 10000}
    setup, per_step, source = plan.estimate("cbop", "paper", cfg, [])
    assert setup == pytest.approx(30.0 + 120.0)
    assert per_step == pytest.approx(0.08)
    assert "30000 pre-training steps" in source


def test_a_record_resumed_without_its_earlier_cost_times_its_last_segment():
    """Resumed at epoch 1 of 2 (25 steps per epoch) before checkpoints kept their cost: its 40 CPU-s (10 of
    them the resume's setup) cover the last 25 steps only: 1.2 s per step, and no run setup."""
    rec = {"status": "ok", "schema": "admbench.record/1", "algo": "bc", "algo_id": "bc", "budget": "smoke",
           "config": {"epochs": 2, "steps_per_epoch": 25}, "wall_time_s": 100.0, "cpu_time_s": 40.0,
           "setup_info": {"setup_time_s": 30.0, "setup_cpu_time_s": 10.0}, "resumed_from": 1}
    segment = plan.sample_from_record(rec)
    assert (segment.per_step_s, segment.whole) == (pytest.approx(1.2), False)
    whole = plan.sample_from_record({**rec, "time_covers": WHOLE_RUN})
    assert (whole.per_step_s, whole.whole) == (pytest.approx(0.6), True)
    # a run that resumed its setup only (no step position) and whose checkpoint predates kept costs: every
    # step is timed, the setup's earlier processes are not
    setup_only = {**rec, "resumed_from": None, "time_covers": "the segment since the resume at None only"}
    assert (plan.sample_from_record(setup_only).per_step_s, times_whole_run(setup_only)) == (0.6, False)
    assert times_whole_run({**rec, "resumed_from": None}) and not times_whole_run(rec)
    # an online run counts env steps: resumed at 10,000 of 15,000
    online = {**rec, "algo": "sac", "algo_id": "sac", "config": {"env_steps": 15000}, "resumed_from": 10000}
    assert plan.sample_from_record(online).per_step_s == pytest.approx(30.0 / 5000)
    setup, per_step, source = plan.estimate("bc", "smoke", rec["config"], [segment])
    assert (setup, per_step) == (0.0, pytest.approx(1.2)) and "last segment" in source
    setup, _, _ = plan.estimate("bc", "smoke", rec["config"], [segment, whole])
    assert setup == pytest.approx(10.0)  # the setup comes from the whole run


def test_runs_of_the_planned_length_and_cpu_time_win():
    """A 1000-step online record in wall time (mostly warm-up and evaluations) and a 15,000-step one in CPU
    time: a 15,000-step plan takes the latter; a 1000-step plan the former."""
    short = plan.Sample("mbpo", "short", "online", 2.0, 2.3, None, steps=1000)
    long = plan.Sample("mbpo", "short", "online", 2.0, 0.4, None, steps=15000, cpu=True)
    wall_long = plan.Sample("mbpo", "short", "online", 2.0, 0.9, None, steps=15000)
    assert plan.estimate("mbpo", "short", {"env_steps": 15000}, [short, long, wall_long])[1] == 0.4
    assert plan.estimate("mbpo", "short", {"env_steps": 1000}, [short, long, wall_long])[1] == 2.3
    assert plan.estimate("mbpo", "short", {"env_steps": 15000}, [short, wall_long])[1] == 0.9


def test_an_algorithm_timed_only_on_far_shorter_runs_borrows_the_closest_siblings_length_cost():
    """BMPO timed only on a 1000-step run (2.67 per update) for a 15,000-step plan: a short run is mostly
    warm-up and the first model fit, so it does not extrapolate. Of the siblings timed at both lengths, MBPO
    cost most alike at 1000 steps (ratio 2.67 / 2.3) rather than ADMPO-ON (2.67 / 0.9): MBPO's 0.4 at 15,000
    steps x 1.161. With its own 15,000-step run, or no sibling timed at both lengths, BMPO keeps its own."""
    def sample(algo, per_step, steps, cpu=False):
        return plan.Sample(algo, "short", "online", 2.0, per_step, None, steps=steps, cpu=cpu)

    bmpo = sample("bmpo", 2.67, 1000)
    siblings = [sample("mbpo", 2.3, 1000), sample("mbpo", 0.4, 15000, cpu=True),
                sample("admpo-on", 0.9, 1000), sample("admpo-on", 1.4, 15000, cpu=True)]
    setup, per_step, source = plan.estimate("bmpo", "short", {"env_steps": 15000}, [bmpo, *siblings])
    assert per_step == pytest.approx(0.4 * 2.67 / 2.3) and setup == 2.0
    assert "mbpo's cost per update at this length x 1.16" in source
    own_long = sample("bmpo", 0.5, 15000, cpu=True)
    assert plan.estimate("bmpo", "short", {"env_steps": 15000}, [bmpo, own_long, *siblings])[1] == 0.5
    assert plan.estimate("bmpo", "short", {"env_steps": 15000}, [bmpo, siblings[0]])[1] == 2.67
    # a 2000-step plan is not far longer than the 1000-step run: its own cost stands
    assert plan.estimate("bmpo", "short", {"env_steps": 2000}, [bmpo, *siblings])[1] == 2.67


def test_analysis_jobs_cost_what_finished_ones_cost(tmp_path):
    """Analysis jobs have no steps: one costs the CPU time of finished ones of the same analysis and budget,
    on its own task where one was measured; none measured stays unknown (never guessed)."""
    from benchmark.runner import AnalysisJob

    def write(task, seconds, budget="short"):
        path = tmp_path / "s" / "analysis-uncertainty" / task.replace("/", "__") / "seed-0.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"status": "ok", "analysis": "uncertainty", "budget": budget, "task": task,
                                    "cpu_time_s": seconds}))

    write("local/hopper-medium-replay", 600.0)
    write("local/walker2d-medium-replay", 900.0)
    write("local/hopper-medium", 50.0, budget="smoke")
    times = plan.read_analysis_times([tmp_path])
    job = AnalysisJob("uncertainty", "local/walker2d-medium-replay", 1, "short")
    seconds, source = plan.analysis_estimate(job, times)
    assert seconds == 900.0 and source.endswith("on local/walker2d-medium-replay")
    other = AnalysisJob("uncertainty", "local/hopper-medium", 1, "short")
    seconds, source = plan.analysis_estimate(other, times)
    assert seconds == pytest.approx(750.0) and "other tasks" in source
    assert plan.analysis_estimate(AnalysisJob("compounding-error", "local/hopper-medium", 0, "short"),
                                  times)[0] is None


def test_an_analysis_job_that_loads_another_jobs_models_is_estimated_without_their_fits(tmp_path):
    """Figure 4's jobs load the models Figure 2's job on the same task, seed and budget fitted: a measured
    job that loaded them counts their cost back (what it costs alone), and a planned job whose sibling
    has finished is estimated without them."""
    from benchmark.runner import AnalysisJob

    def write(analysis, seed, cpu, stages, shared=()):
        path = tmp_path / "s" / f"analysis-{analysis}" / "local__hopper-medium-replay" / f"seed-{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "status": "ok", "analysis": analysis, "budget": "paper", "task": "local/hopper-medium-replay",
            "seed": seed, "cpu_time_s": cpu, "shared_stages": {name: "key" for name in shared},
            "stage_costs": {name: {"cpu_s": c, "wall_s": c, **({"shared": True} if name in shared else {})}
                            for name, c in stages.items()}}))

    fits = {"model-adm": 4000.0, "model-ensemble": 1000.0}
    write("compounding-error", 0, 7200.0, {**fits, "model-bootrnn": 2000.0})
    write("uncertainty", 0, 300.0, fits, shared=fits)  # loaded Figure 2's models: 300 s of its own
    times = plan.read_analysis_times([tmp_path])
    assert sorted(t.standalone_s for t in times) == [5300.0, 7200.0]
    seconds, source = plan.analysis_estimate(AnalysisJob("uncertainty", "local/hopper-medium-replay", 1,
                                                         "paper"), times)
    assert seconds == 5300.0 and "loads" not in source  # seed 1 has no Figure 2 job yet: it fits them
    write("compounding-error", 1, 7000.0, {**fits, "model-bootrnn": 2000.0})
    seconds, source = plan.analysis_estimate(AnalysisJob("uncertainty", "local/hopper-medium-replay", 1,
                                                         "paper"), plan.read_analysis_times([tmp_path]))
    assert seconds == 300.0 and "loads model-adm, model-ensemble fitted by another analysis job" in source


def test_an_analysis_job_measured_on_another_task_scales_its_model_fits_by_the_data(tmp_path, monkeypatch):
    """Measured only on hopper (30k transitions), a walker2d job (45k) costs hopper's model fits times 1.5
    plus the rest as measured; an unknown dataset size leaves the fits unscaled and says so."""
    from benchmark.runner import AnalysisJob

    path = tmp_path / "s" / "analysis-compounding-error" / "local__hopper-medium-replay" / "seed-0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "status": "ok", "analysis": "compounding-error", "budget": "paper",
        "task": "local/hopper-medium-replay",
        "seed": 0, "cpu_time_s": 8000.0,
        "stage_costs": {"model-adm": {"cpu_s": 4000.0}, "model-bootrnn": {"cpu_s": 3000.0}}}))
    sizes = {"local/hopper-medium-replay": 30_000, "local/walker2d-medium-replay": 45_000}
    monkeypatch.setattr(plan, "task_transitions", sizes.get)
    job = AnalysisJob("compounding-error", "local/walker2d-medium-replay", 0, "paper")
    times = plan.read_analysis_times([tmp_path])
    seconds, source = plan.analysis_estimate(job, times)
    assert seconds == pytest.approx(1000.0 + 1.5 * 7000.0)
    assert "scaled by transitions (45000 here vs 30000 on local/hopper-medium-replay)" in source
    seconds, source = plan.analysis_estimate(
        AnalysisJob("compounding-error", "local/ant-medium-replay", 0, "paper"), times)
    assert seconds == 8000.0 and "not scaled" in source
    # on its own task: as measured, whatever the sizes
    assert plan.analysis_estimate(AnalysisJob("compounding-error", "local/hopper-medium-replay", 1, "paper"),
                                  times)[0] == 8000.0


def test_a_planned_analysis_job_loads_the_models_an_earlier_job_of_the_plan_fits(tmp_path):
    """In one plan (the evidence suite: Figure 2's jobs before Figure 4's), a job whose models an earlier
    unfinished job on the same task, seed and budget will fit is estimated without them; on its own, or
    listed first, it fits them."""
    from benchmark.runner import AnalysisJob

    fits = {"model-adm": 4000.0, "model-ensemble": 1000.0}
    for analysis, stages in (("compounding-error", {**fits, "model-bootrnn": 2000.0}), ("uncertainty", fits)):
        path = tmp_path / "s" / f"analysis-{analysis}" / "local__hopper-medium-replay" / "seed-0.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({
            "status": "ok", "analysis": analysis, "budget": "paper", "task": "local/hopper-medium-replay",
            "seed": 0, "cpu_time_s": sum(stages.values()) + 300.0,
            "stage_costs": {name: {"cpu_s": c} for name, c in stages.items()}}))
    fig2, fig4 = (AnalysisJob(a, "local/hopper-medium-replay", 1, "paper", "s")
                  for a in ("compounding-error", "uncertainty"))

    def seconds(jobs):
        return [e.seconds for e in plan.plan_estimates(jobs, tmp_path, extra_roots=[])]

    assert seconds([fig2, fig4]) == [7300.0, 300.0]
    assert seconds([fig4, fig2]) == [5300.0, 2300.0]
    assert seconds([fig4]) == [5300.0]
    other_seed = AnalysisJob("uncertainty", "local/hopper-medium-replay", 2, "paper", "s")
    assert seconds([fig2, other_seed]) == [7300.0, 5300.0]
    [est] = plan.plan_estimates([fig2, fig4], tmp_path, extra_roots=[])[1:]
    assert "loads model-adm, model-ensemble fitted by another analysis job (planned before it)" in est.source


def test_an_interrupted_analysis_job_is_estimated_past_its_saved_stages(tmp_path):
    """A job killed after fitting some models resumes past them: --plan takes the CPU time its stage files
    and loop checkpoints hold (of its own config only) off the estimate."""
    import torch

    from benchmark.rl.checkpoint import FORMAT
    from benchmark.runner import AnalysisJob, checkpoint_dir, prepare_analysis

    done = tmp_path / "s" / "analysis-compounding-error" / "local__hopper-medium-replay" / "seed-0.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"status": "ok", "analysis": "compounding-error", "budget": "paper",
                                "task": "local/hopper-medium-replay", "seed": 0, "cpu_time_s": 9000.0}))
    job = AnalysisJob("compounding-error", "local/hopper-medium-replay", 1, "paper", "s")
    stages = checkpoint_dir(job.path(tmp_path))
    stages.mkdir(parents=True)
    chash = prepare_analysis(job)[-1]
    for name, cpu, config_hash in (("stage-model-adm.pt", 4000.0, chash),
                                   ("stage-model-bootrnn.loop.pt", 1000.0, chash),
                                   ("stage-model-ensemble.pt", 500.0, "another-config")):
        torch.save({"format": FORMAT, "config_hash": config_hash, "cost": {"cpu_s": cpu, "wall_s": cpu}},
                   stages / name)
    [est] = [e for e in plan.plan_estimates([job], tmp_path, extra_roots=[]) if not e.done]
    assert est.seconds == 9000.0 - 5000.0 and "resumes with 83 CPU-min of saved stages" in est.source


def test_another_budget_of_the_same_update_scales_the_benchmark(tmp_path, monkeypatch):
    """A `short` config that differs from its `paper` config only in loop lengths, rollout sizes and model
    caps: update 200 ms + evaluation 4 s x (5 of 10 episodes) per 500-step epoch + rollout 14 s x (5000 of
    50,000 starts) every 500 steps = 200 + 4 + 2.8 ms per step; setup = 3 s x the 100-epoch cap. A config
    with another update (more critics) does not use it."""
    row = {"epoch_s": 230.0, "steps_per_epoch": 1000, "update_ms": 200.0, "eval_s": 4.0, "eval_episodes": 10,
           "rollout_s": 14.0, "rollout_batch_size": 50000, "model_epoch_s": 3.0}
    path = tmp_path / "epochs-cpu.json"
    path.write_text(json.dumps({"meta": {}, "algorithms": {"combo": row}}))
    monkeypatch.setattr(plan, "EPOCH_BENCH", path)
    monkeypatch.setattr(plan, "REPO_ROOT", tmp_path)
    paper = {"epochs": 1000, "steps_per_epoch": 1000, "eval_episodes": 10, "rollout_batch_size": 50000,
             "rollout_freq": 1000, "dynamics_max_epochs": None, "num_critics": 2}
    short = {**paper, "epochs": 20, "steps_per_epoch": 500, "eval_episodes": 5, "rollout_batch_size": 5000,
             "rollout_freq": 500, "dynamics_max_epochs": 100}
    setup, per_step, source = plan.estimate("combo", "short", short, [], paper)
    assert setup == pytest.approx(300.0) and per_step == pytest.approx(0.2068)
    assert "scaled to this budget" in source and "upper bound" in source
    _, _, source = plan.estimate("combo", "short", {**short, "num_critics": 10}, [], paper)
    assert "bench" not in source
    # records of the same algorithm and budget still win
    measured = plan.Sample("combo", "short", "model-based", 100.0, 0.3, 30.0, steps=10000, cpu=True)
    assert plan.estimate("combo", "short", short, [measured], paper)[:2] == (100.0, 0.3)
    # another algorithm that trained the same ensemble on the same task stopped at 36 epochs (a step cap
    # or early stopping): the setup is 36 epochs, not the cap; other tasks' or models' runs do not count
    key = plan.model_key(short)
    mopo = plan.Sample("mopo", "short", "model-based", 110.0, 0.01, 36.0, steps=10000, cpu=True,
                       task="local/hopper-medium-replay", model_key=key)
    elsewhere = plan.Sample("mopo", "short", "model-based", 300.0, 0.01, 90.0, task="local/walker2d-medium",
                            model_key=key)
    other_model = plan.Sample("mopo", "short", "model-based", 300.0, 0.01, 80.0,
                              task="local/hopper-medium-replay", model_key=plan.model_key(
                                  {**short, "dynamics_max_epochs": 50}))
    setup, _, source = plan.estimate("combo", "short", short, [mopo, elsewhere, other_model], paper,
                                     "local/hopper-medium-replay")
    assert setup == pytest.approx(3.0 * 36)
    assert "36 model epochs, as 1 run(s) training the same model" in source
    assert plan.estimate("combo", "short", short, [mopo], paper, "local/hopper-medium")[0] == \
        pytest.approx(300)


def test_a_never_measured_model_based_run_takes_its_setup_from_the_same_model(monkeypatch):
    """No record and no scalable benchmark: a run whose ensemble settings equal a sibling's (the termination
    rule does not change training) takes that run's setup on the same task; an ensemble with other settings
    scales the setup of the same kind of model (an ensemble's epoch, not ADM's) to its epoch cap."""
    monkeypatch.setattr(plan, "epoch_bench", lambda algo, budget, path=None: None)
    ens = {"epochs": 20, "steps_per_epoch": 500, "dynamics_max_epochs": 100, "dynamics_lr": 1e-3,
           "dynamics_termination": "offlinerlkit"}
    adm = {"epochs": 20, "steps_per_epoch": 500, "model_max_epochs": 20, "model_lr": 3e-4}
    task = "local/hopper-medium-replay"
    mopo = plan.Sample("mopo", "short", "model-based", 112.0, 0.017, 36.0, steps=10000, cpu=True, task=task,
                       model_key=plan.model_key(ens))
    admpo = plan.Sample("admpo-off", "short", "model-based", 612.0, 0.02, 20.0, steps=10000, cpu=True,
                        task=task, model_key=plan.model_key(adm))
    monkeypatch.setattr(plan, "family", lambda algo: "model-based")
    setup, _, source = plan.estimate("cbop", "short", {**ens, "dynamics_termination": "admpo"},
                                     [mopo, admpo], None, task)
    assert setup == 112.0 and "setup as 1 run(s) training the same model here took" in source
    other_ensemble = {**ens, "dynamics_lr": 3e-4}
    setup, _, source = plan.estimate("rambo", "short", other_ensemble, [mopo, admpo], None, task)
    assert setup == pytest.approx(112.0 / 36 * 100) and "setup scaled to 100 model epochs" in source
