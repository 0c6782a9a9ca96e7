"""ADM training: windows, holdout rule, snapshot/patience rule, and a seeded learning test."""

import numpy as np
import pytest
import torch

from adm.model import ADMConfig
from adm.training import ADMTrainConfig, WindowBatcher, holdout_error_per_k, train_adm
from benchmark.data.local import build_local_dataset
from benchmark.rl.buffers import WindowSampler
from benchmark.rl.dataset import OfflineDataset


def toy_dataset(n=600, ep_len=25):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[ep_len - 1 :: ep_len] = True
    nxt = np.roll(obs, -1, axis=0)
    return OfflineDataset(observations=obs, actions=act, rewards=rng.normal(size=n).astype(np.float32),
                          next_observations=nxt, terminals=np.zeros(n, bool), timeouts=timeouts, name="toy",
                          env_key="hopper")


def test_windows_targets_and_holdout_side():
    ds = toy_dataset()
    sampler = WindowSampler(ds)
    batcher = WindowBatcher(sampler, train_size=480, device=torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    ep = np.arange(len(ds)) // 25
    for k in (1, 3, 5):
        s0, acts, lengths, target = batcher.train_batch(64, k, g)
        assert acts.shape == (64, k, 2) and lengths is None and target.shape == (64, 4)
        # recover the start index from the (unique) observation rows
        idx = np.array([np.flatnonzero((ds.observations == row.numpy()).all(1))[0] for row in s0])
        assert (idx < 480).all() and (ep[idx] == ep[idx + k - 1]).all()
        assert np.allclose(target[:, :3], ds.next_observations[idx + k - 1] - ds.observations[idx], atol=1e-6)
        assert np.allclose(target[:, 3], ds.rewards[idx + k - 1])
        h0, _, _, _ = batcher.holdout_batch(64, k, g)
        hidx = np.array([np.flatnonzero((ds.observations == row.numpy()).all(1))[0] for row in h0])
        assert (hidx >= 480).all() and (ep[hidx] == ep[hidx + k - 1]).all()


def test_per_sample_k_windows_never_cross_episodes():
    ds = toy_dataset()
    batcher = WindowBatcher(WindowSampler(ds), train_size=480, device=torch.device("cpu"))
    s0, acts, ks, target = batcher.train_batch_per_sample_k(256, 5, torch.Generator().manual_seed(1))
    assert acts.shape == (256, 5, 2) and set(ks.tolist()) == {1, 2, 3, 4, 5}
    ep = np.arange(len(ds)) // 25
    idx = np.array([np.flatnonzero((ds.observations == row.numpy()).all(1))[0] for row in s0])
    last = idx + ks.numpy() - 1
    assert (ep[idx] == ep[last]).all()
    assert np.allclose(target[:, :3], ds.next_observations[last] - ds.observations[idx], atol=1e-6)


def test_fresh_model_holdout_rule_and_budget_cap():
    ds = toy_dataset(n=1000)
    cfg = ADMTrainConfig(max_step=2, max_epochs=2, max_holdout=150)
    model, info = train_adm(ds, cfg, ADMConfig(hidden_dim=8), generator=torch.Generator().manual_seed(0))
    assert info["holdout_size"] == 150 and info["train_size"] == 850  # min(int(0.2 * 1000), 150)
    assert info["epochs"] == 2 and info["stopped"] == "max_epochs"
    assert info["steps"] == 2 * (850 // 256) * 2  # epoch = (train_size // 256) * m minibatches
    assert len(info["holdout_mse_k"]) == 2
    assert torch.allclose(model.obs_mu, torch.as_tensor(ds.observations.mean(0)), atol=1e-5)
    with pytest.raises(ValueError, match="train_size"):
        train_adm(toy_dataset(n=200), cfg, ADMConfig(hidden_dim=8))


def test_patience_stops_and_best_snapshot_is_restored():
    ds = toy_dataset(n=800)  # targets are noise: holdout loss stops improving quickly
    cfg = ADMTrainConfig(max_step=1, patience=2, max_epochs=60, lr=3e-3)
    model, info = train_adm(ds, cfg, ADMConfig(hidden_dim=8), generator=torch.Generator().manual_seed(0))
    assert info["stopped"] == "patience"
    hist = info["history"]
    # the rule: a snapshot when some k improved and the mean improved; the last `patience` epochs did not
    best = [1e10]
    snap_epochs = []
    for h in hist:
        val = h["holdout_mse_k"]
        if any(v < b for v, b in zip(val, best)) and np.mean(val) < np.mean(best):
            best = val
            snap_epochs.append(h["epoch"])
    assert hist[-1]["epoch"] - snap_epochs[-1] == 2
    assert info["holdout_mse_k"] == pytest.approx(best)


def test_adm_learns_every_k_beats_no_change():
    """Seeded learning test on local hopper-random (3000 transitions, hidden 64, m=3, 8 epochs).

    Thresholds: the best holdout MSE is below 60% of the first epoch's, and for every k the held-out
    state MSE (eval mode, 1000 windows) is below 50% of predicting "no change" (delta 0). Measured when
    written: ~0.18-0.26 of "no change"."""
    torch.manual_seed(0)
    ds = build_local_dataset("hopper", "random", size=3000)
    cfg = ADMTrainConfig(max_step=3, max_epochs=8)
    model, info = train_adm(ds, cfg, ADMConfig(hidden_dim=64), generator=torch.Generator().manual_seed(0))
    first = info["history"][0]["holdout_mse"]
    assert info["holdout_mse"] < 0.6 * first
    err = holdout_error_per_k(model, ds, cfg)
    for k, (mse, base) in enumerate(zip(err["mse_k"], err["no_change_mse_k"]), start=1):
        assert mse < 0.5 * base, f"k={k}: model {mse:.4f} vs no-change {base:.4f}"


@pytest.mark.parametrize("which", ["adm", "bootrnn"])
def test_training_killed_mid_way_resumes_to_the_same_model(tmp_path, which):
    """A LoopCheckpoint saved at every epoch end (every_s=0): a run killed in epoch 3 of 4 resumes from
    epoch 2's save (model, optimiser, best snapshot, patience, history and every random state) and ends
    with exactly the uninterrupted run's weights and history."""
    from adm.bootrnn import train_bootrnn
    from benchmark.rl.checkpoint import LoopCheckpoint

    train = {"adm": train_adm, "bootrnn": train_bootrnn}[which]
    ds = toy_dataset(n=1000)
    cfg = ADMTrainConfig(max_step=2, max_epochs=4, max_holdout=150)

    def fit(checkpoint=None, progress=None):
        torch.manual_seed(7)  # initialisation and dropout draw from the global generator
        return train(ds, cfg, ADMConfig(hidden_dim=8), generator=torch.Generator().manual_seed(0),
                     progress=progress, checkpoint=checkpoint)

    whole, whole_info = fit()

    def killed_in_epoch_3(row):
        if row["epoch"] == 3:
            raise KeyboardInterrupt

    path = tmp_path / "loop.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None), killed_in_epoch_3)
    assert torch.load(path, weights_only=False)["state"]["epoch"] == 2
    resumed_ckpt = LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None)
    resumed, info = fit(resumed_ckpt)
    assert resumed_ckpt.resumed_cost["cpu_s"] > 0
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert info["history"] == whole_info["history"] and info["epochs"] == 4
    # the file now holds the last epoch's save: a process killed after it resumes to the same finished
    # model, without training an epoch more
    assert torch.load(path, weights_only=False)["state"]["epoch"] == 4
    again, again_info = fit(LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None))
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), again.state_dict().values()))
    assert again_info["history"] == whole_info["history"] and again_info["epochs"] == 4
    # another config's file is never used: a fresh fit from scratch, equal to the uninterrupted one too
    other, _ = fit(LoopCheckpoint(path, "another-hash", every_s=1e9, log=lambda m: None))
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), other.state_dict().values()))


def test_a_resumed_loop_counts_its_earlier_processes_time_against_the_cap_and_in_time_s(tmp_path):
    """``max_time_s`` and ``time_s`` span the processes of a resumed loop: a loop whose earlier processes
    had spent its wall-clock cap by their last save ends there (a fresh clock would train on), and a
    resumed loop's ``time_s`` includes the earlier processes' time."""
    from benchmark.rl.checkpoint import LoopCheckpoint

    ds = toy_dataset(n=1000)
    path = tmp_path / "loop.pt"

    def fit(cfg, checkpoint, progress=None):
        torch.manual_seed(7)
        return train_adm(ds, cfg, ADMConfig(hidden_dim=8), generator=torch.Generator().manual_seed(0),
                         progress=progress, checkpoint=checkpoint)

    def killed_in_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    uncapped = ADMTrainConfig(max_step=2, max_epochs=4, max_holdout=150)
    with pytest.raises(KeyboardInterrupt):
        fit(uncapped, LoopCheckpoint(path, "h", every_s=0.0, log=lambda m: None), killed_in_epoch_2)
    payload = torch.load(path, weights_only=False)
    assert payload["state"]["epoch"] == 1 and 0 < payload["state"]["elapsed_s"] < 600
    payload["state"]["elapsed_s"] = 1000.0  # as if the first process had trained for 1000 s
    torch.save(payload, path)
    capped = ADMTrainConfig(max_step=2, max_epochs=4, max_holdout=150, max_time_s=900.0)
    _, info = fit(capped, LoopCheckpoint(path, "h", every_s=1e9, log=lambda m: None))
    assert info["stopped"] == "max_time" and info["epochs"] == 1 and info["time_s"] >= 1000.0
    _, info = fit(uncapped, LoopCheckpoint(path, "h", every_s=1e9, log=lambda m: None))
    assert info["stopped"] == "max_epochs" and info["epochs"] == 4 and 1000.0 <= info["time_s"] < 1600.0
