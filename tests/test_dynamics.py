"""The shared Gaussian ensemble dynamics model (benchmark/rl/dynamics.py)."""

import math

import pytest
import torch

from benchmark.data.local import load_local_dataset
from benchmark.rl.dynamics import (
    EnsembleDynamics,
    EnsembleDynamicsConfig,
    EnsembleModelBasedConfig,
    penalty_max_std_norm,
    policy_rollout,
    soft_clamp,
)
from benchmark.rl.termination import get_termination_fn


@pytest.fixture(scope="module")
def hopper_random():
    return load_local_dataset("hopper", "random", size=3000)


@pytest.fixture(scope="module")
def trained(hopper_random):
    ds = hopper_random
    model = EnsembleDynamics(
        ds.obs_dim, ds.act_dim, EnsembleDynamicsConfig(max_epochs=5), env_key="hopper", seed=0
    )
    info = model.fit(ds)
    return model, info


def test_members_are_one_batched_op_and_shapes():
    model = EnsembleDynamics(
        3, 2, EnsembleDynamicsConfig(members=4, elites=2, hidden=(8, 8), weight_decays=(0, 0, 0))
    )
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    mean, logvar = model(obs, act)
    assert mean.shape == logvar.shape == (4, 5, 4)
    # member i's output equals an unbatched evaluation of member i's weights
    x = (torch.cat([obs, act], -1) - model.input_mean) / model.input_std
    for i in range(4):
        h = x
        for j, layer in enumerate(model.net.layers):
            h = h @ layer.weight[i] + layer.bias[i]
            if j < len(model.net.layers) - 1:
                h = h * torch.sigmoid(h)
        torch.testing.assert_close(h.chunk(2, -1)[0], mean[i])
    next_mean, _ = model.predict(obs, act)
    torch.testing.assert_close(next_mean[..., :-1], mean[..., :-1] + obs)
    torch.testing.assert_close(next_mean[..., -1], mean[..., -1])


def test_loss_matches_hand_computed_case():
    cfg = EnsembleDynamicsConfig(
        members=2, elites=1, hidden=(4,), weight_decays=(0.0, 0.0), logvar_loss_coef=0.01
    )
    model = EnsembleDynamics(1, 1, cfg)
    with torch.no_grad():  # zero network -> mean 0, logvar soft-clamped 0
        for p in model.net.parameters():
            p.zero_()
    obs, act = torch.zeros(2, 1), torch.zeros(2, 1)
    target = torch.tensor([[1.0, 0.0], [2.0, 1.0]]).expand(2, 2, 2)
    lv = soft_clamp(torch.tensor(0.0), torch.tensor(-10.0), torch.tensor(0.5)).item()
    # per member: mean over 4 entries of y^2 exp(-lv) + lv; summed over 2 members;
    # bound penalty 0.01 * 2 dims * (0.5 + 10)
    expected = 2 * ((1 + 0 + 4 + 1) / 4 * math.exp(-lv) + lv) + 0.01 * 2 * (0.5 + 10.0)
    assert model.loss(obs, act, target).item() == pytest.approx(expected, rel=1e-5)


def test_soft_clamp_stays_inside_bounds():
    x = torch.linspace(-20, 10, 101)
    y = soft_clamp(x, torch.tensor(-10.0), torch.tensor(0.5))
    assert (y > -10.0).all() and (y < 0.5).all()
    assert (y.diff() > 0).all()  # monotone, so gradients keep flowing


def test_holdout_loss_falls_and_elites_are_best_members(trained):
    model, info = trained
    assert info["dynamics/holdout_mse"] < 0.5 * info["dynamics/holdout_mse_first_epoch"]
    assert len(model.history) == info["dynamics/epochs"] <= 5
    assert len(set(model.elites.tolist())) == 5


def test_training_is_deterministic(hopper_random):
    ds = hopper_random
    cfg = EnsembleDynamicsConfig(max_epochs=1, max_steps=3, hidden=(16, 16), weight_decays=(0, 0, 0))
    runs = [EnsembleDynamics(ds.obs_dim, ds.act_dim, cfg, "hopper", seed=3).fit(ds) for _ in range(2)]
    assert runs[0] == runs[1]


def test_max_steps_bounds_training(hopper_random):
    ds = hopper_random
    cfg = EnsembleDynamicsConfig(max_steps=4, hidden=(16,), weight_decays=(0, 0))
    info = EnsembleDynamics(ds.obs_dim, ds.act_dim, cfg, "hopper").fit(ds)
    assert info["dynamics/steps"] == 4 and info["dynamics/epochs"] == 1


def test_step_uses_true_termination_and_elites(trained, hopper_random):
    model, _ = trained
    obs = torch.as_tensor(hopper_random.observations[:512])
    act = torch.as_tensor(hopper_random.actions[:512])
    next_obs, reward, terminal, info = model.step(obs, act)
    assert next_obs.shape == (512, 11) and reward.shape == terminal.shape == (512, 1)
    torch.testing.assert_close(terminal.squeeze(-1), get_termination_fn("hopper")(obs, act, next_obs))
    assert set(info["member"].tolist()) <= set(model.elites.tolist())
    assert info["std"].shape == (7, 512, 12)
    samples = model.sample_next_obs(obs[:4], act[:4], num_samples=3)
    assert samples.shape == (3, 5, 4, 11)


def test_mopo_penalty_is_max_over_members_of_std_norm():
    std = torch.tensor([[[3.0, 4.0]], [[1.0, 1.0]], [[0.0, 6.0]]])  # 3 members, 1 transition
    assert penalty_max_std_norm(std).item() == pytest.approx(6.0)


def test_rollouts_stop_at_true_termination(trained, hopper_random):
    model, _ = trained
    init = torch.as_tensor(hopper_random.observations[:300])
    # a violent policy makes hopper fall: some rollouts terminate at the first step
    trans, info = policy_rollout(model, lambda o: torch.ones(len(o), 3), init, horizon=2)
    done = trans["done"].squeeze(-1).bool()
    torch.testing.assert_close(
        done, get_termination_fn("hopper")(trans["obs"], trans["act"], trans["next_obs"])
    )
    first_done = int(done[:300].sum())
    assert first_done > 0
    # only the survivors of step 1 are extended, from their model next states
    assert len(trans["obs"]) == info["num_transitions"] == 300 + (300 - first_done)
    torch.testing.assert_close(trans["obs"][300:], trans["next_obs"][:300][~done[:300]])


def test_config_fields_reach_the_model():
    cfg = EnsembleModelBasedConfig(dynamics_max_epochs=30, dynamics_elites=3)
    dyn = cfg.dynamics_config()
    assert dyn.max_epochs == 30 and dyn.elites == 3 and dyn.members == 7


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="weight_decays"):
        EnsembleDynamics(3, 1, EnsembleDynamicsConfig(hidden=(8,), weight_decays=(0.0,)))
    with pytest.raises(ValueError, match="elites"):
        EnsembleDynamics(3, 1, EnsembleDynamicsConfig(members=2, elites=3))


def test_ensemble_training_killed_mid_way_resumes_to_the_same_model(tmp_path, hopper_random, monkeypatch):
    """A LoopCheckpoint saved at every epoch end: a fit killed in epoch 3 of 4 resumes from epoch 2's save
    (weights, optimiser, bootstraps, best snapshots, patience, history, the model's generator) and ends with
    exactly the uninterrupted fit's weights, elites and history; another config's file is never used."""
    from benchmark.rl.checkpoint import LoopCheckpoint

    ds = hopper_random
    cfg = EnsembleDynamicsConfig(max_epochs=4, hidden=(16, 16), weight_decays=(0, 0, 0), batch_size=512)

    def fit(checkpoint=None):
        model = EnsembleDynamics(ds.obs_dim, ds.act_dim, cfg, "hopper", seed=5)
        model.checkpoint = checkpoint
        return model, model.fit(ds)

    whole, whole_info = fit()
    path = tmp_path / "loop.pt"
    real = EnsembleDynamics.holdout_mse
    calls = []

    def killed_in_epoch_3(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(EnsembleDynamics, "holdout_mse", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None))
    monkeypatch.setattr(EnsembleDynamics, "holdout_mse", real)
    assert torch.load(path, weights_only=False)["state"]["epoch"] == 2
    resumed, info = fit(LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None))
    assert resumed.checkpoint is None  # a fitted model keeps no handle on its loop file
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert info == whole_info and resumed.history == whole.history and len(whole.history) == 4
    # the file now holds the last epoch's save: a process killed after it (before the run's own checkpoint
    # or the stage's file) resumes to the same finished model, without training an epoch more
    assert torch.load(path, weights_only=False)["state"]["epoch"] == 4
    again, again_info = fit(LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None))
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), again.state_dict().values()))
    assert again_info == whole_info and again.history == whole.history
    other, _ = fit(LoopCheckpoint(path, "another-hash", every_s=1e9, log=lambda m: None))
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), other.state_dict().values()))
