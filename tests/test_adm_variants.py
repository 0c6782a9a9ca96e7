"""BootRNN, the ADMPO-OFF-zero model variant, fixed-k rollouts and admpo-off-ablation (adm/bootrnn.py,
adm/variants.py)."""

import pytest
import torch

from adm.bootrnn import BootRNN, bootrnn_holdout_mse, train_bootrnn
from adm.model import ADMConfig, AnyStepDynamics
from adm.rollout import RolloutConfig
from adm.training import ADMTrainConfig, train_adm
from adm.uncertainty import mean_std
from adm.variants import (
    ADMPOOffAblation,
    ADMPOOffAblationConfig,
    ZeroInputADM,
    ablation_rollout,
    train_adm_variant,
    zero_variant_inputs,
)
from benchmark.data.local import build_local_dataset
from benchmark.rl.algorithm import Context

SMALL = ADMConfig(hidden_dim=16)


@pytest.fixture(scope="module")
def hopper_random():
    return build_local_dataset("hopper", "random", size=1000)


def test_bootrnn_shapes_and_one_step_target():
    torch.manual_seed(0)
    model = BootRNN(11, 3, SMALL, history=4).eval()
    obs, act = torch.randn(5, 4, 11), torch.randn(5, 4, 3)
    mean, logvar = model(obs, act)
    assert mean.shape == logvar.shape == (5, 12)
    next_obs, rew = model.dstep(obs, act)
    # the delta is taken from the LATEST state of the history, not the first
    assert torch.allclose(next_obs, obs[:, -1] + mean[:, :-1])
    assert rew.shape == (5, 1)
    assert torch.all(logvar <= model.max_logvar) and torch.all(logvar >= model.min_logvar)
    # same parameter count as ADM of the same size
    n_adm = sum(p.numel() for p in AnyStepDynamics(11, 3, SMALL).parameters())
    assert sum(p.numel() for p in model.parameters()) == n_adm
    # the history matters: changing an old state changes the prediction (ADM would only see one state)
    obs2 = obs.clone()
    obs2[:, 0] += 1.0
    assert not torch.allclose(model(obs2, act)[0], mean)
    with pytest.raises(ValueError, match="obs_seq"):
        model(obs[:, 0], act)


def test_bootrnn_holdout_error_falls(hopper_random):
    cfg = ADMTrainConfig(max_step=2, batch_size=64, max_epochs=3, max_holdout=200)
    torch.manual_seed(0)
    fresh = BootRNN(11, 3, SMALL, history=2)
    fresh.set_normalizer(hopper_random.observations, hopper_random.actions)
    before = bootrnn_holdout_mse(fresh, hopper_random, cfg)
    torch.manual_seed(0)
    model, info = train_bootrnn(hopper_random, cfg, SMALL, generator=torch.Generator().manual_seed(0))
    after = bootrnn_holdout_mse(model, hopper_random, cfg)
    assert info["steps"] == 3 * (800 // 64) * 2 and info["stopped"] == "max_epochs"
    # threshold: the trained one-step holdout error is at most 60% of the untrained model's (measured 45%);
    # beating "no change" on uniform-random hopper needs more steps: see the slow test
    assert after["mse"] < 0.6 * before["mse"], (before, after)
    assert info["history"][-1]["holdout_mse"] < info["history"][0]["holdout_mse"]


@pytest.mark.slow
def test_bootrnn_beats_no_change_after_longer_training():
    ds = build_local_dataset("hopper", "random", size=3000)
    cfg = ADMTrainConfig(max_step=3, max_epochs=8, max_holdout=500)
    torch.manual_seed(0)
    model, _ = train_bootrnn(ds, cfg, ADMConfig(hidden_dim=64), generator=torch.Generator().manual_seed(0))
    err = bootrnn_holdout_mse(model, ds, cfg)
    # threshold: one-step holdout MSE below 80% of predicting "no change"
    assert err["mse"] < 0.8 * err["no_change_mse"], err


def test_zero_variant_inputs_hand_case():
    s = torch.tensor([[1.0, 2.0]])
    a = torch.tensor([[[0.1], [0.2], [0.3]]])
    x = zero_variant_inputs(s, a)
    expected = torch.tensor([[[1.0, 2.0, 0.1], [0.0, 0.0, 0.2], [0.0, 0.0, 0.3]]])
    assert torch.equal(x, expected)


def test_zero_variant_all_k_matches_per_k_and_differs_from_adm():
    torch.manual_seed(0)
    model = ZeroInputADM(4, 2, SMALL).eval()
    model.set_normalizer(torch.randn(50, 4).numpy() * 2 + 1, torch.randn(50, 2).numpy())
    obs_hist, act_hist = torch.randn(6, 3, 4), torch.randn(6, 3, 2)
    mean, logvar, next_means = model.predict_all_k(obs_hist, act_hist)
    for k in (1, 2, 3):
        mk, lk = model(obs_hist[:, -k], act_hist[:, -k:])
        assert torch.allclose(mean[k - 1], mk, atol=1e-5) and torch.allclose(logvar[k - 1], lk, atol=1e-5)
        assert torch.allclose(next_means[k - 1], obs_hist[:, -k] + mk[:, :-1], atol=1e-5)
    adm = AnyStepDynamics(4, 2, SMALL).eval()
    adm.load_state_dict(model.state_dict())
    assert torch.allclose(adm(obs_hist[:, -1], act_hist[:, -1:])[0], mean[0], atol=1e-6)  # k=1: same input
    assert not torch.allclose(adm(obs_hist[:, 0], act_hist)[0], mean[2], atol=1e-4)  # k=3: zeros differ


def test_variant_trainer_reproduces_train_adm(hopper_random):
    cfg = ADMTrainConfig(max_step=2, batch_size=64, max_epochs=1, max_holdout=200)
    torch.manual_seed(3)
    a, ia = train_adm(hopper_random, cfg, SMALL, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    b, ib = train_adm_variant(hopper_random, cfg, SMALL, "adm", generator=torch.Generator().manual_seed(1))
    assert ia["holdout_mse_k"] == ib["holdout_mse_k"]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    torch.manual_seed(3)
    z, iz = train_adm_variant(hopper_random, cfg, SMALL, "zero", generator=torch.Generator().manual_seed(1))
    assert isinstance(z, ZeroInputADM) and iz["variant"] == "zero" and len(iz["holdout_mse_k"]) == 2
    with pytest.raises(ValueError, match="variant"):
        train_adm_variant(hopper_random, cfg, SMALL, variant="nope")


# ----- ablation rollouts and the admpo-off-ablation algorithm ------------------------------------------


def _noiseless(model):
    """Log-variance bounds pushed far down: a Gaussian sample equals the mean to ~1e-9."""
    model.max_logvar.data.fill_(-40.0)
    model.min_logvar.data.fill_(-50.0)
    return model.eval()


def test_fixed_k_rollout_backtracks_k_and_penalises_with_all_k():
    torch.manual_seed(0)
    model = _noiseless(AnyStepDynamics(4, 2, SMALL))
    hist_obs, hist_act, start = torch.randn(5, 2, 4), torch.randn(5, 2, 2), torch.randn(5, 4)
    act = torch.randn(5, 2)
    cfg = RolloutConfig(max_step=3, length=1, penalty_coef=0.5, dropout=False)
    out, info = ablation_rollout(model, lambda o: act, hist_obs, hist_act, start, cfg,
                                 lambda o, a, n: torch.zeros(len(o), dtype=torch.bool), fixed_k=3)
    s_all, a_all = torch.cat([hist_obs, start[:, None]], 1), torch.cat([hist_act, act[:, None]], 1)
    next_obs, rew = model.dstep(s_all[:, 0], a_all)  # k = 3 backtracks to the oldest state
    _, _, next_means = model.predict_all_k(s_all, a_all)
    assert torch.allclose(out["next_obs"], next_obs, atol=1e-5)
    assert torch.allclose(out["rew"], rew - 0.5 * mean_std(next_means), atol=1e-5)
    assert info["penalty"] > 0


def test_bootrnn_rollout_feeds_its_predictions_back():
    torch.manual_seed(0)
    model = _noiseless(BootRNN(4, 2, SMALL, history=2))
    hist_obs, hist_act, start = torch.randn(3, 1, 4), torch.randn(3, 1, 2), torch.randn(3, 4)
    acts = [torch.randn(3, 2), torch.randn(3, 2)]
    calls = iter(acts)
    cfg = RolloutConfig(max_step=2, length=2, penalty_coef=0.0, dropout=False)
    out, _ = ablation_rollout(model, lambda o: next(calls), hist_obs, hist_act, start, cfg,
                              lambda o, a, n: torch.zeros(len(o), dtype=torch.bool))
    s1, _ = model.dstep(torch.stack([hist_obs[:, 0], start], 1), torch.stack([hist_act[:, 0], acts[0]], 1))
    s2, _ = model.dstep(torch.stack([start, s1], 1), torch.stack([acts[0], acts[1]], 1))
    assert torch.allclose(out["next_obs"][:3], s1, atol=1e-5)
    assert torch.allclose(out["obs"][3:], s1, atol=1e-5)
    assert torch.allclose(out["next_obs"][3:], s2, atol=1e-5)


@pytest.mark.parametrize("variant,fixed_k", [("zero", 0), ("bootrnn", 0), ("adm", 2)])
def test_admpo_off_ablation_trains_and_rolls_out(hopper_random, variant, fixed_k):
    cfg = ADMPOOffAblationConfig(
        model_variant=variant, rollout_fixed_k=fixed_k, max_arm_step=2, arm_hidden_dim=16, model_max_epochs=1,
        model_batch_size=64, max_holdout=200, rollout_batch_size=40, rollout_length=2, rollout_freq=4,
        hidden=(32, 32), batch_size=32, seed=0,
    )
    ctx = Context(hopper_random, "hopper", 11, 3, 1.0, torch.device("cpu"), 0)
    algo = ADMPOOffAblation(cfg, ctx)
    info = algo.setup()
    assert info["model_epochs"] == 1
    expected = {"zero": ZeroInputADM, "bootrnn": BootRNN, "adm": AnyStepDynamics}[variant]
    assert type(algo.dynamics) is expected
    for step in range(5):
        stats = algo.learn(algo.next_batch(step))
    assert len(algo.fake) > 0 and all(torch.isfinite(torch.as_tensor(v)) for v in stats.values())
    assert algo.rollout_info["penalty"] > 0
    with pytest.raises(ValueError, match="model_variant"):
        ADMPOOffAblationConfig(model_variant="ensemble")


def test_zero_variant_carried_rollout_equals_per_k_loop():
    """adm.rollout picks the model's own carry (model.new_carry), so the zero variant stays exact."""
    from adm.model import ADMConfig
    from adm.rollout import RolloutConfig, rollout
    from adm.variants import ZeroInputADM
    from benchmark.rl.termination import get_termination_fn

    obs_dim, act_dim, m, batch = 11, 3, 3, 32
    torch.manual_seed(0)
    model = ZeroInputADM(obs_dim, act_dim, ADMConfig(hidden_dim=24))
    g = torch.Generator().manual_seed(0)
    hist_obs = 0.1 * torch.randn(batch, m - 1, obs_dim, generator=g)
    hist_act = torch.rand(batch, m - 1, act_dim, generator=g) * 2 - 1
    start = 0.1 * torch.randn(batch, obs_dim, generator=g)
    start[:, 0] += 1.25
    out = {}
    for impl in ("carry", "loop"):
        torch.manual_seed(123)
        cfg = RolloutConfig(max_step=m, length=3, penalty_coef=2.0, dropout=True, impl=impl, chunk_size=16)
        out[impl] = rollout(model, lambda o: torch.tanh(o[:, :act_dim] + torch.randn(o.shape[0], act_dim)),
                            hist_obs, hist_act, start, cfg, get_termination_fn("hopper"),
                            torch.Generator().manual_seed(7))
    (fast, fast_info), (ref, ref_info) = out["carry"], out["loop"]
    assert len(fast["obs"]) == len(ref["obs"]) > 0
    for key in ref:
        assert torch.allclose(fast[key], ref[key], atol=1e-4, rtol=1e-4), key
    assert fast_info["penalty"] == pytest.approx(ref_info["penalty"], rel=1e-4, abs=1e-6)
