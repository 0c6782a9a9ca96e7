"""Compounding-error and uncertainty-vs-error analyses (adm/compounding_error.py, adm/uncertainty_error.py)
at smoke size, their data split, overflow rule, the simulator-reset ground truth, and the registered jobs
(adm/analysis_jobs.py) as the runner resolves and runs them."""

import json
import time

import numpy as np
import pytest
import torch

from adm.analysis import AnalysisSizes
from adm.compounding_error import (
    FLOAT32_MAX,
    clipped_mse,
    compounding_error,
    open_loop_predictions,
    reference_errors,
)
from adm.dynamics_models import AnyStepModel
from adm.model import ADMConfig, AnyStepDynamics
from adm.training import ADMTrainConfig
from adm.uncertainty_error import SimulatorOracle, uncertainty_vs_error
from benchmark.data.local import build_local_dataset
from benchmark.rl.dataset import episode_ids, split_episodes
from benchmark.runner import AnalysisJob, run_analysis

TINY = AnalysisSizes(max_step=3, hidden_dim=16, model_max_epochs=1, ensemble_max_epochs=1,
                     ensemble_max_steps=5)


@pytest.fixture(scope="module")
def hopper_random():
    return build_local_dataset("hopper", "random", size=1500)


def test_episode_split_keeps_whole_episodes(hopper_random):
    train, held = split_episodes(hopper_random, 0.1, seed=0)
    assert len(train) + len(held) == len(hopper_random)
    n_ep = int(episode_ids(hopper_random)[-1]) + 1
    assert int(held.episode_ends.sum()) == round(0.1 * n_ep)
    assert int(train.episode_ends.sum()) + int(held.episode_ends.sum()) == n_ep
    # no held-out transition appears in the training part
    rows = {r.tobytes() for r in np.concatenate([train.observations, train.actions], 1)}
    assert not any(r.tobytes() in rows for r in np.concatenate([held.observations, held.actions], 1))
    # every episode still chains: s' of one step is s of the next inside an episode
    for part in (train, held):
        inside = ~part.episode_ends[:-1]
        assert np.array_equal(part.next_observations[:-1][inside], part.observations[1:][inside])


def test_clipped_mse_overflow_is_float32_max():
    pred = np.array([[[1.0, 1.0]], [[np.inf, 0.0]], [[1e30, 0.0]]], dtype=np.float32)
    err, overflow = clipped_mse(pred, np.zeros((3, 1, 2), np.float32))
    assert err[0, 0] == 1.0 and err[1, 0] == FLOAT32_MAX and err[2, 0] == FLOAT32_MAX
    assert overflow[:, 0].tolist() == [False, True, True]


def test_open_loop_uses_recorded_actions_and_own_predictions():
    """ADM with m=1 is a one-step model: its open-loop replay equals chaining dstep by hand."""
    torch.manual_seed(0)
    model = AnyStepDynamics(3, 1, ADMConfig(hidden_dim=8)).eval()
    s0, acts = torch.randn(4, 1, 3), torch.randn(4, 3, 1)
    adm = AnyStepModel(ADMTrainConfig(max_step=1), model=model)
    pred = open_loop_predictions(adm, s0, acts, 3, torch.Generator().manual_seed(0))
    s = s0[:, 0]
    for h in range(3):
        s, _ = model.dstep(s, acts[:, h : h + 1])
        assert torch.allclose(pred[:, h], s)


def test_simulator_reset_reproduces_recorded_transitions(hopper_random):
    oracle = SimulatorOracle("hopper")
    ok = oracle.reconstructible(hopper_random.observations)
    assert ok.mean() > 0.5  # uniform-random hopper rarely hits the |v| = 10 observation clip
    idx = np.flatnonzero(ok)[:: max(1, ok.sum() // 40)]
    for i in idx:
        next_obs, reward, terminated = oracle.step(hopper_random.observations[i], hopper_random.actions[i])
        # float32 storage of the recorded state is the only difference (measured max 9e-7)
        np.testing.assert_allclose(next_obs, hopper_random.next_observations[i], atol=1e-5)
        assert abs(reward - hopper_random.rewards[i]) < 1e-5
        assert terminated == hopper_random.terminals[i]
    # the answer does not depend on earlier queries
    a = oracle.next_obs(hopper_random.observations[idx[:3]], hopper_random.actions[idx[:3]])
    b = oracle.next_obs(hopper_random.observations[idx[:3]][::-1], hopper_random.actions[idx[:3]][::-1])
    np.testing.assert_array_equal(a, b[::-1])
    clipped = hopper_random.observations[:1].copy()
    clipped[0, -1] = 10.0
    assert not oracle.reconstructible(clipped)[0]


def test_compounding_error_smoke(hopper_random):
    out = compounding_error(hopper_random, "hopper", horizon=6, n_starts=8, seed=0, sizes=TINY)
    json.dumps(out)
    for key in ("analysis", "metric", "protocol", "horizons", "models", "n_starts", "max_step", "seed"):
        assert key in out
    assert out["analysis"] == "compounding-error" and out["horizons"] == list(range(1, 7))
    assert set(out["models"]) == {"adm", "ensemble", "bootrnn"}
    for res in out["models"].values():
        assert len(res["mean"]) == len(res["std"]) == 6
        assert all(0 <= v <= FLOAT32_MAX for v in res["mean"])
        # one holdout MSE per training epoch, for the report's knee curves
        curve = res["train"]["holdout_curve"]
        assert len(curve) >= 1 and all(np.isfinite(v) and v > 0 for v in curve)
    assert len(out["models"]["ensemble"]["train"]["holdout_curve"]) == TINY.ensemble_max_epochs


def test_no_model_references_score_the_compounding_error_segments(hopper_random):
    """The yardstick of Figure 2: on the very split and segments compounding_error scores (same seed and
    sizes), last-state holds s_(m-1) and train-mean-state predicts the training part's mean observation; both
    recomputed here from the held-out episodes' arrays, h = 1 and h = H."""
    from benchmark.rl.dataset import segment_starts

    sizes = AnalysisSizes(**{**TINY.__dict__, "horizon": 6, "n_starts": 8})
    out = reference_errors(hopper_random, sizes, seed=0)
    json.dumps(out)
    models = compounding_error(hopper_random, "hopper", horizon=6, n_starts=8, seed=0, sizes=TINY)
    for key in ("horizons", "n_starts", "max_step", "split", "seed"):
        assert out[key] == models[key], key
    assert out["metric"] == models["metric"] and out["analysis"] == "compounding-references"
    assert models["protocol"].startswith(out["protocol"].split("; no model")[0])
    train, held = split_episodes(hopper_random, 0.1, seed=0)
    m, horizon = TINY.max_step, 6
    starts = segment_starts(held, m - 1 + horizon, 8, np.random.default_rng(0))
    last = held.observations[starts + m - 1].astype(np.float64)
    mean_state = train.observations.astype(np.float64).mean(axis=0)
    for h in (1, horizon):
        true = held.next_observations[starts + m - 2 + h].astype(np.float64)
        expected = {"last-state": ((true - last) ** 2).mean(axis=1),
                    "train-mean-state": ((true - mean_state) ** 2).mean(axis=1)}
        for name, err in expected.items():
            got = out["models"][name]
            assert got["mean"][h - 1] == pytest.approx(err.mean(), rel=1e-9)
            assert got["median"][h - 1] == pytest.approx(np.median(err), rel=1e-9)
            assert got["overflow"][h - 1] == 0.0
    assert out["models"]["last-state"]["mean"][0] > 0  # hopper moves in one step


def test_uncertainty_vs_error_smoke(hopper_random):
    out = uncertainty_vs_error(hopper_random, "hopper", horizon=2, n_starts=8, seed=0, sizes=TINY,
                               learned_policy=lambda obs: torch.zeros(len(obs), 3),
                               learned_name="zero action")
    json.dumps(out)
    assert out["analysis"] == "uncertainty" and "metric" in out and out["sources"]["learned"] == "zero action"
    models = {p["model"] for p in out["points"]}
    sources = {p["source"] for p in out["points"]}
    assert models == {"adm", "adm-eq4", "ensemble"} and sources == {"random", "behavior", "learned"}
    assert all(p["error"] >= 0 and p["uncertainty"] >= 0 for p in out["points"])
    pooled = [c for c in out["correlations"] if c["source"] == "all"]
    assert {c["model"] for c in pooled} == models
    for c in out["correlations"]:
        assert set(c) >= {"model", "source", "pearson", "spearman", "n"}
        assert c["pearson"] is None or -1 <= c["pearson"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["compounding-error", "uncertainty"])
def test_run_analysis_smoke_budget(tiny_data, name):
    out = run_analysis(AnalysisJob(name, "local/hopper-random", 0, "smoke"))
    json.dumps(out)
    assert out["analysis"] == name and out["task"] == "local/hopper-random" and out["budget"] == "smoke"
    assert out["max_step"] == 5  # from adm/configs/admpo-off/hopper-random-v2.yaml
    key = "models" if name == "compounding-error" else "correlations"
    assert out[key] and out["metric"] and out["horizons"]


def test_run_analysis_rejects_unknown_names_and_fields():
    with pytest.raises(ValueError, match="unknown analysis"):
        run_analysis(AnalysisJob("nope", "local/hopper-random", 0, "smoke"))
    with pytest.raises(ValueError, match="unknown budget"):
        run_analysis(AnalysisJob("uncertainty", "local/hopper-random", 0, "huge"))
    # the sizes resolve like any config: an unknown field is refused by name
    with pytest.raises(ValueError, match="unknown field 'm'"):
        run_analysis(AnalysisJob("uncertainty", "local/hopper-random", 0, "smoke", overrides={"m": 3}))


def test_analysis_sizes_resolve_like_configs():
    """Budget sizes come from the sizes class, m and the GRU width from the task's admpo-off config (named in
    the provenance); the record's config hash is the job's identity, as before the analyses registered."""
    from benchmark.config import config_hash
    from benchmark.runner import prepare_analysis

    job = AnalysisJob("uncertainty", "local/hopper-random", 0, "smoke")
    spec, task, sizes, cfg, provenance, chash = prepare_analysis(job)
    assert spec.name == "uncertainty" and task.env_key == "hopper"
    assert (sizes.max_step, sizes.hidden_dim) == (5, 200)
    inherited = provenance["inherited"]
    assert inherited["from"] == "the admpo-off config (adm/configs/admpo-off/hopper-random-v2.yaml)"
    assert inherited["values"] == {"max_step": 5, "hidden_dim": 200}
    assert (sizes.horizon, sizes.n_starts, sizes.bc_steps, sizes.train_transitions) == (3, 20, 50, 3000)
    assert (sizes.model_max_epochs, sizes.ensemble_max_epochs, sizes.ensemble_max_steps) == (1, 2, 30)
    paper = prepare_analysis(AnalysisJob("uncertainty", "local/hopper-random", 0, "paper"))[2]
    assert (paper.horizon, paper.n_starts, paper.bc_steps, paper.ensemble_max_steps) == (5, 5000, 100_000,
                                                                                          None)
    assert chash == config_hash({"analysis": "uncertainty", "task": "local/hopper-random", "seed": 0,
                                 "budget": "smoke"})


def test_run_many_refuses_an_unknown_analysis_before_any_work(tmp_path):
    from benchmark.executor import run_many

    with pytest.raises(ValueError, match="unknown analysis 'nope'"):
        run_many([AnalysisJob("nope", "local/hopper-random", 0, "smoke")], tmp_path, workers=1,
                 progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_analysis_record_keeps_its_cpu_time(tmp_path, tiny_data, monkeypatch):
    """--plan estimates analysis jobs from their records' CPU time, so the record must carry it."""
    from benchmark import runner

    def busy(job, prepared=None, stages=None):
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        return {"task": job.task}

    monkeypatch.setattr(runner, "run_analysis", busy)
    rec = runner.run_analysis_job(AnalysisJob("uncertainty", "local/hopper-random", 0, "smoke"), tmp_path)
    assert rec["status"] == "ok" and rec["cpu_time_s"] >= 0.05 and rec["wall_time_s"] >= 0.05


@pytest.mark.parametrize("name", ["compounding-error", "uncertainty"])
def test_an_analysis_killed_after_its_first_model_resumes_to_the_same_record(tmp_path, tiny_data, monkeypatch,
                                                                            name):
    """Each fitted model is a stage kept beside the record: a job killed while fitting its second model
    loads the first (with the random states after it) and ends with the record an uninterrupted job
    writes; the stage files go once the record is ok, and the CPU time counts the loaded stage's."""
    from benchmark import runner
    from benchmark.rl.checkpoint import StageCheckpoints

    job = AnalysisJob(name, "local/hopper-random", 0, "smoke")
    whole = runner.run_analysis_job(job, tmp_path / "whole")
    assert whole["status"] == "ok" and "resumed_stages" not in whole

    real_run = StageCheckpoints.run

    def dies_at_second_model(self, stage, compute, share_key=None):
        if stage != "model-adm":
            raise KeyboardInterrupt  # the process is killed mid-job: nothing is recorded
        return real_run(self, stage, compute, share_key)

    monkeypatch.setattr(StageCheckpoints, "run", dies_at_second_model)
    with pytest.raises(KeyboardInterrupt):
        runner.run_analysis_job(job, tmp_path / "killed")
    stage_dir = job.path(tmp_path / "killed").with_suffix(".checkpoints")
    assert [p.name for p in stage_dir.iterdir()] == ["stage-model-adm.pt"]
    assert not job.path(tmp_path / "killed").exists()

    monkeypatch.setattr(StageCheckpoints, "run", real_run)
    resumed = runner.run_analysis_job(job, tmp_path / "killed")
    assert resumed["status"] == "ok" and resumed["resumed_stages"] == ["model-adm"]
    assert set(resumed["stage_costs"]) == set(whole["stage_costs"]) and "model-adm" in whole["stage_costs"]
    assert resumed["stage_costs"]["model-adm"]["cpu_s"] > 0  # the loaded stage keeps the cost it had
    assert _without_timings(resumed["result"]) == _without_timings(whole["result"])
    assert not stage_dir.exists()
    assert resumed["cpu_time_s"] > 0


def _without_timings(value):
    """A result with its wall-clock fields (``*_time_s``: they differ between any two runs) left out."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not str(k).endswith("time_s")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_figure_4_uses_figure_2s_fitted_models_and_writes_the_record_it_would_fit_itself(tmp_path, tiny_data):
    """The uncertainty job trains ADM and the ensemble on the compounding-error split with the same seeds,
    so after a compounding-error job it loads those two models from the shared folder instead of fitting
    them: its record equals that of a job that fitted them itself (no cache state changes a result), it
    names the shared stages, and its CPU time leaves out the models' fits (the other job's record has it)."""
    from benchmark import runner

    fig2 = runner.run_analysis_job(AnalysisJob("compounding-error", "local/hopper-random", 0, "smoke"),
                                   tmp_path / "shared")
    assert fig2["status"] == "ok" and "shared_stages" not in fig2
    fig4 = runner.run_analysis_job(AnalysisJob("uncertainty", "local/hopper-random", 0, "smoke"),
                                   tmp_path / "shared")
    alone = runner.run_analysis_job(AnalysisJob("uncertainty", "local/hopper-random", 0, "smoke"),
                                    tmp_path / "alone")
    assert fig4["status"] == alone["status"] == "ok"
    assert set(fig4["shared_stages"]) == {"model-adm", "model-ensemble"} and "shared_stages" not in alone
    assert all(fig4["stage_costs"][name]["shared"] for name in fig4["shared_stages"])
    assert _without_timings(fig4["result"]) == _without_timings(alone["result"])
    for name in ("adm", "ensemble"):  # the very models Figure 2 fitted
        assert fig4["result"]["models"][name]["train"] == fig2["result"]["models"][name]["train"]
    shared = sorted(p.name for p in (tmp_path / "shared" / runner.SHARED_STAGES).glob("*.pt"))
    assert [n.split("-")[1] for n in shared] == ["adm", "bootrnn", "ensemble"]
    # another seed fits (and shares) its own models
    other = runner.run_analysis_job(AnalysisJob("uncertainty", "local/hopper-random", 1, "smoke"),
                                    tmp_path / "shared")
    assert other["status"] == "ok" and "shared_stages" not in other
