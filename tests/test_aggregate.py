"""Aggregation: records -> frames -> score matrices -> rliable metrics, checked against direct rliable
calls and against hand computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from helpers import KNOWN_TASKS, known_records, known_scores, make_record, write_records
from rliable import library as rly
from rliable import metrics

from benchmark.reporting.frames import (
    aggregate_metrics,
    curves_frame,
    iqm_curve,
    per_task_stats,
    performance_profiles,
    probability_of_improvement,
    score_matrices,
    score_matrix,
)
from benchmark.reporting.records import RECORD_COLUMNS, load_records
from benchmark.reporting.stats import (
    METRICS,
    batched_probability_of_improvement,
    bootstrap_resamples,
    optimality_gap,
    percentile_interval,
)

REPS = 50


@pytest.fixture
def results(tmp_path):
    write_records(tmp_path, known_records())
    return tmp_path


def test_load_records_one_row_per_file_sorted(results):
    frame = load_records(results, "synth")
    assert len(frame) == 27
    assert list(frame.columns) == list(RECORD_COLUMNS)
    assert (frame["status"] == "ok").all()
    keys = list(zip(frame["algo"], frame["task"], frame["seed"]))
    assert keys == sorted(keys)


def test_load_records_suite_filter_when_reading_the_root(tmp_path):
    write_records(
        tmp_path,
        [
            make_record("bc", "local/hopper-medium", 0, 10.0, suite="a"),
            make_record("bc", "local/hopper-medium", 0, 20.0, suite="b"),
        ],
    )
    assert load_records(tmp_path, "a")["final_score"].tolist() == [10.0]
    assert len(load_records(tmp_path)) == 2
    # reading a suite folder directly keeps its records
    assert load_records(tmp_path / "b", "b")["final_score"].tolist() == [20.0]


def test_malformed_and_failed_records_are_rows_not_crashes(results):
    bad = results / "synth" / "bc" / "local__hopper-medium" / "seed-7.json"
    bad.write_text("{not json")
    no_field = results / "synth" / "bc" / "local__hopper-medium" / "seed-8.json"
    rec = make_record("bc", "local/hopper-medium", 8, 1.0, suite="synth")
    del rec["curve"]
    no_field.write_text(json.dumps(rec))
    write_records(
        results, [make_record("bc", "local/hopper-medium", 9, None, suite="synth", status="failed")]
    )
    frame = load_records(results, "synth")
    rows = frame[frame["seed"].isin([7, 8, 9])].set_index("seed")
    assert (rows["status"] == "failed").all()
    assert rows.loc[7, "malformed"] and "seed-7.json" in rows.loc[7, "reason"]
    assert rows.loc[8, "malformed"] and "curve" in rows.loc[8, "reason"]
    assert not rows.loc[9, "malformed"] and rows.loc[9, "reason"] == "RuntimeError: boom"
    assert rows.loc[7, "algo"] == "bc" and rows.loc[7, "task"] == "local/hopper-medium"
    # failed runs never enter the score matrix
    m = score_matrix(frame, "bc")
    assert m.n_runs == 3


def test_missing_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_records(tmp_path / "nope")


def test_score_matrix_matches_the_known_scores(results):
    frame = load_records(results, "synth")
    for algo, expected in known_scores().items():
        m = score_matrix(frame, algo)
        assert m.tasks == tuple(sorted(KNOWN_TASKS))
        order = [KNOWN_TASKS.index(t) for t in m.tasks]
        np.testing.assert_allclose(m.scores, expected[:, order])
        assert m.dropped == 0


def test_uneven_seeds_keep_the_lowest_seeds_and_count_the_dropped(tmp_path):
    recs = [make_record("bc", "local/hopper-medium", s, float(s)) for s in range(3)]
    recs += [make_record("bc", "local/walker2d-medium", s, 10.0 + s) for s in (4, 5)]
    write_records(tmp_path, recs)
    m = score_matrix(load_records(tmp_path), "bc")
    np.testing.assert_allclose(m.scores, [[0.0, 14.0], [1.0, 15.0]])
    assert m.seeds == ((0, 1), (4, 5)) and m.dropped == 1
    assert (
        score_matrix(load_records(tmp_path), "bc", ["local/hopper-medium", "local/hopper-expert"])
        is None
    )


def _hand_metrics(scores: np.ndarray) -> dict[str, float]:
    flat = np.sort(scores.ravel())
    n = flat.size
    cut = int(0.25 * n)  # scipy.trim_mean trims int(0.25 n) from each end
    task_means = scores.mean(axis=0)
    return {
        "mean": float(task_means.mean()),
        "median": float(np.median(task_means)),
        "iqm": float(flat[cut : n - cut].mean()),
        "optimality_gap": float(100.0 - np.minimum(flat, 100.0).mean()),
    }


def test_aggregates_equal_direct_rliable_and_hand_computation(results):
    frame = load_records(results, "synth")
    matrices = score_matrices(frame)
    table = aggregate_metrics(matrices, reps=REPS, seed=3)
    assert list(table.columns) == ["algo", "metric", "estimate", "ci_low", "ci_high"]
    assert sorted(set(table["algo"])) == sorted(known_scores())
    for algo, scores in known_scores().items():
        sub = table[table["algo"] == algo].set_index("metric")
        hand = _hand_metrics(scores)
        for metric in METRICS:
            assert sub.loc[metric, "estimate"] == pytest.approx(hand[metric], abs=1e-9)
        # the same bootstrap run directly through rliable, global generator seeded the same way
        np.random.seed(3)
        func = lambda s: np.array(
            [
                metrics.aggregate_mean(s),
                metrics.aggregate_median(s),
                metrics.aggregate_iqm(s),
                metrics.aggregate_optimality_gap(s, gamma=100),
            ]
        )
        point, interval = rly.get_interval_estimates({algo: matrices[algo].scores}, func, reps=REPS)
        np.testing.assert_allclose(sub.loc[list(METRICS), "estimate"], point[algo])
        np.testing.assert_allclose(sub.loc[list(METRICS), "ci_low"], interval[algo][0])
        np.testing.assert_allclose(sub.loc[list(METRICS), "ci_high"], interval[algo][1])
        assert (sub["ci_low"] <= sub["estimate"] + 1e-9).all() and (
            sub["estimate"] <= sub["ci_high"] + 1e-9
        ).all()


def test_aggregates_repeat_exactly_and_do_not_depend_on_other_algorithms(results):
    frame = load_records(results, "synth")
    matrices = score_matrices(frame)
    a = aggregate_metrics(matrices, reps=REPS, seed=0)
    np.random.seed(12345)  # global state before the call must not matter
    b = aggregate_metrics(matrices, reps=REPS, seed=0)
    assert a.equals(b)
    alone = aggregate_metrics({"bc": matrices["bc"]}, reps=REPS, seed=0)
    assert alone.reset_index(drop=True).equals(a[a["algo"] == "bc"].reset_index(drop=True))
    other_seed = aggregate_metrics(matrices, reps=REPS, seed=1)
    assert not a["ci_low"].equals(other_seed["ci_low"])


def test_optimality_gap_uses_gamma_100():
    scores = np.array([[120.0, 50.0], [100.0, 30.0]])
    # clip at 100: mean(100, 50, 100, 30) = 70 -> gap 30
    assert optimality_gap(scores) == pytest.approx(30.0)


def test_probability_of_improvement_against_rliable_and_hand(results):
    frame = load_records(results, "synth")
    poi = probability_of_improvement(frame, ("admpo-off", "admpo-on"), reps=REPS, seed=0)
    assert list(zip(poi["algo_x"], poi["algo_y"])) == [("admpo-off", "bc"), ("admpo-off", "td3bc")]
    x = score_matrix(frame, "admpo-off").scores
    y = score_matrix(frame, "bc").scores
    # hand: per task, fraction of (i, j) pairs with x_i > y_j (+0.5 ties), averaged over tasks
    hand = np.mean(
        [
            np.mean((x[:, t, None] > y[None, :, t]) + 0.5 * (x[:, t, None] == y[None, :, t]))
            for t in range(x.shape[1])
        ]
    )
    row = poi.iloc[0]
    assert row["estimate"] == pytest.approx(hand)
    np.random.seed(0)
    point, interval = rly.get_interval_estimates({"k": [x, y]}, metrics.probability_of_improvement, reps=REPS)
    assert row["estimate"] == pytest.approx(point["k"])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.ravel(interval["k"])))


def test_performance_profile_point_values_are_run_fractions(results):
    matrices = score_matrices(load_records(results, "synth"))
    taus = np.array([0.0, 55.0, 75.0, 200.0])
    prof = performance_profiles(matrices, taus=taus, reps=REPS, seed=0)
    for algo, scores in known_scores().items():
        got = prof[prof["algo"] == algo]["fraction"].to_numpy()
        np.testing.assert_allclose(got, [(scores > t).mean() for t in taus])
    np.random.seed(0)
    _, ci = rly.create_performance_profile({"bc": matrices["bc"].scores}, taus, reps=REPS)
    np.testing.assert_allclose(prof[prof["algo"] == "bc"]["ci_low"], ci["bc"][0])


def test_per_task_stats_mean_std_and_missing_cells(tmp_path):
    recs = [make_record("bc", "local/hopper-medium", s, v) for s, v in enumerate([10.0, 20.0, 30.0])]
    recs += [make_record("td3bc", "local/hopper-medium", 0, None, status="failed")]
    recs += [make_record("td3bc", "local/walker2d-medium", 0, 5.0)]
    write_records(tmp_path, recs)
    stats = per_task_stats(load_records(tmp_path)).set_index(["algo", "task"])
    bc = stats.loc[("bc", "local/hopper-medium")]
    assert bc["n_seeds"] == 3 and bc["mean"] == pytest.approx(20.0) and bc["std"] == pytest.approx(10.0)
    td = stats.loc[("td3bc", "local/hopper-medium")]
    assert td["n_seeds"] == 0 and np.isnan(td["mean"]) and td["n_failed"] == 1
    missing = stats.loc[("bc", "local/walker2d-medium")]
    assert missing["n_seeds"] == 0 and np.isnan(missing["mean"]) and missing["n_failed"] == 0


def test_per_task_stats_use_returns_where_there_is_no_score(tmp_path):
    write_records(
        tmp_path,
        [
            make_record(
                "sac", "mujoco/Hopper", s, None, final_return=100.0 * (s + 1), curve_scores=[None, None]
            )
            for s in range(2)
        ],
    )
    stats = per_task_stats(load_records(tmp_path))
    assert stats["unit"].tolist() == ["return"] and stats["mean"].tolist() == [150.0]


def test_iqm_curve_point_matches_rliable_and_ci_brackets_it(results):
    frame = load_records(results, "synth")
    curves = curves_frame(frame)
    assert set(curves.columns) == {"algo", "task", "seed", "step", "score", "return"}
    iqm = iqm_curve(curves, reps=REPS, seed=0)
    assert sorted(set(iqm["step"])) == [100, 200, 300, 400]
    for algo, scores in known_scores().items():
        last = iqm[(iqm["algo"] == algo) & (iqm["step"] == 400)].iloc[0]
        assert last["iqm"] == pytest.approx(metrics.aggregate_iqm(scores))
        half = iqm[(iqm["algo"] == algo) & (iqm["step"] == 200)].iloc[0]
        assert half["iqm"] == pytest.approx(scipy.stats.trim_mean(scores.ravel() / 2, 0.25))
        assert (iqm["ci_low"] <= iqm["iqm"] + 1e-9).all() and (iqm["iqm"] <= iqm["ci_high"] + 1e-9).all()
    again = iqm_curve(curves, reps=REPS, seed=0)
    assert iqm.equals(again)


def test_iqm_curve_intervals_equal_rliable_at_every_step():
    rng = np.random.default_rng(1)
    scores = rng.normal(50, 10, size=(2, 5, 4))  # [step, run, task]
    curves = pd.DataFrame(
        [
            {
                "algo": "a",
                "task": f"t{j}",
                "seed": i,
                "step": 100 * (k + 1),
                "score": scores[k, i, j],
                "return": 0.0,
            }
            for k in range(2)
            for i in range(5)
            for j in range(4)
        ]
    )
    ours = iqm_curve(curves, reps=REPS, seed=4)
    for k in range(2):
        np.random.seed(4)
        point, ci = rly.get_interval_estimates({"a": scores[k]}, metrics.aggregate_iqm, reps=REPS)
        row = ours.iloc[k]
        assert row["iqm"] == pytest.approx(point["a"])
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.ravel(ci["a"])))


def test_bootstrap_leaves_the_global_generator_alone(results):
    matrices = score_matrices(load_records(results, "synth"))
    np.random.seed(99)
    expected = np.random.random()
    np.random.seed(99)
    aggregate_metrics(matrices, reps=REPS, seed=0)
    assert np.random.random() == expected


def test_probability_of_improvement_bootstrap_with_unequal_runs_and_ties_equals_rliable():
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 7.0]])
    y = np.array([[2.0, 5.0], [0.0, 6.0]])
    rx, ry = bootstrap_resamples([x, y], REPS, seed=2)
    low, high = percentile_interval(batched_probability_of_improvement(rx, ry))
    np.random.seed(2)
    point, ci = rly.get_interval_estimates({"k": [x, y]}, metrics.probability_of_improvement, reps=REPS)
    assert (low[0], high[0]) == pytest.approx(tuple(np.ravel(ci["k"])))
    single = batched_probability_of_improvement(x[None], y[None])[0]
    assert single == pytest.approx(point["k"])
    # by hand: per task, P(x > y) + P(x = y) / 2 over all run pairs, then the mean over tasks
    t0 = np.mean([(a > b) + 0.5 * (a == b) for a in x[:, 0] for b in y[:, 0]])
    t1 = np.mean([(a > b) + 0.5 * (a == b) for a in x[:, 1] for b in y[:, 1]])
    assert single == pytest.approx((t0 + t1) / 2)
