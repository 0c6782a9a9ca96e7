"""WindowSampler: k-step windows never cross an episode end, for every k in 1..m."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.rl.buffers import WindowSampler
from benchmark.rl.dataset import OfflineDataset


def chained_dataset(lengths, terminal_every=3, obs_dim=4, seed=0) -> OfflineDataset:
    """Episodes whose obs are chained (next_obs[t] = obs[t+1] inside an episode), with an episode id
    stored in obs[:, 0] so a test can see which episode a row belongs to."""
    rng = np.random.default_rng(seed)
    obs, nxt, term, tout = [], [], [], []
    for ep, n in enumerate(lengths):
        states = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
        states[:, 0] = ep
        obs.append(states[:-1])
        nxt.append(states[1:])
        t = np.zeros(n, bool)
        t[-1] = ep % terminal_every == 0
        term.append(t)
        tout.append(~t & (np.arange(n) == n - 1))
    n_rows = sum(lengths)
    return OfflineDataset(
        observations=np.concatenate(obs), actions=rng.normal(size=(n_rows, 2)), rewards=np.arange(n_rows),
        next_observations=np.concatenate(nxt), terminals=np.concatenate(term), timeouts=np.concatenate(tout),
    )


LENGTHS = [1, 2, 7, 1, 3, 12, 5, 1, 9, 4, 2, 6]


def test_dist_to_end_counts_rows_left_in_episode():
    ds = chained_dataset([3, 1, 2])
    np.testing.assert_array_equal(ds.dist_to_end(), [2, 1, 0, 0, 1, 0])


@pytest.mark.parametrize("k", range(1, 11))
def test_windows_stay_inside_one_episode(k):
    ds = chained_dataset(LENGTHS)
    sampler = WindowSampler(ds)
    gen = torch.Generator().manual_seed(k)
    batch = sampler.sample(512, k, generator=gen)
    assert batch["obs"].shape == (512, k, 4) and batch["rew"].shape == (512, k)
    episode = batch["obs"][:, :, 0]
    assert (episode == episode[:, :1]).all()  # one episode per window
    # consecutive rows: s' of step t is s of step t+1, so the window is a real trajectory piece
    assert torch.equal(batch["next_obs"][:, :-1], batch["obs"][:, 1:])
    # only the last step of a window can be terminal
    assert not batch["done"][:, :-1].any()
    # every valid start is reachable: episodes long enough for k are all sampled
    long_enough = {ep for ep, n in enumerate(LENGTHS) if n >= k}
    assert set(episode[:, 0].long().tolist()) == long_enough


def test_end_restricts_starts_and_too_long_windows_fail():
    ds = chained_dataset(LENGTHS)
    sampler = WindowSampler(ds)
    starts = sampler.sample_starts(1000, 3, end=20, generator=torch.Generator().manual_seed(0))
    assert starts.max() < 20
    assert set(starts.tolist()) == {i for i in range(20) if ds.dist_to_end()[i] >= 2}
    with pytest.raises(ValueError, match="no episode of length >= 13"):
        sampler.sample(4, 13)
    with pytest.raises(ValueError, match="window length must be >= 1"):
        sampler.sample(4, 0)


def test_same_generator_seed_same_windows():
    sampler = WindowSampler(chained_dataset(LENGTHS))
    a = sampler.sample(64, 4, generator=torch.Generator().manual_seed(7))
    b = sampler.sample(64, 4, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(a[key], b[key]) for key in a)
