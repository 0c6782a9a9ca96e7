"""Compounding-error and uncertainty-vs-error analyses (adm/analysis.py) at smoke size, their data split,
overflow rule and the simulator-reset ground truth."""

import json

import numpy as np
import pytest
import torch

from adm.analysis import (
    FLOAT32_MAX,
    AnalysisSizes,
    SimulatorOracle,
    clipped_mse,
    compounding_error,
    episode_ids,
    open_loop_predictions,
    split_episodes,
    uncertainty_vs_error,
)
from adm.model import ADMConfig, AnyStepDynamics
from benchmark.data.local import build_local_dataset

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
    pred = open_loop_predictions(model, s0, acts, 3, torch.Generator().manual_seed(0))
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
    from adm.analysis import run_analysis

    out = run_analysis(name, "local/hopper-random", 0, "smoke")
    json.dumps(out)
    assert out["analysis"] == name and out["task"] == "local/hopper-random" and out["budget"] == "smoke"
    assert out["max_step"] == 5  # from adm/configs/admpo-off/hopper-random-v2.yaml
    key = "models" if name == "compounding-error" else "correlations"
    assert out[key] and out["metric"] and out["horizons"]


def test_run_analysis_rejects_unknown_names_and_fields():
    from adm.analysis import run_analysis

    with pytest.raises(ValueError, match="unknown analysis"):
        run_analysis("nope", "local/hopper-random", 0, "smoke")
    with pytest.raises(ValueError, match="unknown budget"):
        run_analysis("uncertainty", "local/hopper-random", 0, "huge")
    with pytest.raises(ValueError, match="unknown fields"):
        run_analysis("uncertainty", "local/hopper-random", 0, "smoke", {"m": 3})
