"""Fast carried rollouts equal the official per-k loop; masking, start windows and switches."""

import numpy as np
import pytest
import torch

from adm.model import ADMConfig, AnyStepDynamics
from adm.rollout import RolloutConfig, rollout, sample_start_windows
from benchmark.rl.buffers import WindowSampler
from benchmark.rl.dataset import OfflineDataset
from benchmark.rl.termination import get_termination_fn

OBS, ACT = 11, 3


def model_and_starts(m, batch=48, seed=0):
    torch.manual_seed(seed)
    model = AnyStepDynamics(OBS, ACT, ADMConfig(hidden_dim=24))
    g = torch.Generator().manual_seed(seed)
    hist_obs = 0.1 * torch.randn(batch, m - 1, OBS, generator=g)
    hist_act = torch.rand(batch, m - 1, ACT, generator=g) * 2 - 1
    start = 0.1 * torch.randn(batch, OBS, generator=g)
    start[:, 0] += 1.25  # hopper height: most rollouts alive at first
    return model, hist_obs, hist_act, start


def policy(obs):
    return torch.tanh(obs[:, :ACT] + torch.randn(obs.shape[0], ACT))


def run(model, hist_obs, hist_act, start, cfg, term="hopper"):
    torch.manual_seed(123)  # the policy's noise
    return rollout(model, policy, hist_obs, hist_act, start, cfg, get_termination_fn(term),
                   torch.Generator().manual_seed(7))


@pytest.mark.parametrize("m", [1, 2, 5])
@pytest.mark.parametrize("k_mode", ["batch", "sample"])
@pytest.mark.parametrize("uncertainty", ["mean_std", "mixture_l1", "max_aleatoric", "max_pairwise"])
def test_carried_rollout_equals_per_k_loop(m, k_mode, uncertainty):
    model, ho, ha, s = model_and_starts(m)
    out = {}
    for impl in ("carry", "loop"):
        cfg = RolloutConfig(max_step=m, length=4, penalty_coef=2.0, uncertainty=uncertainty, k_mode=k_mode,
                            dropout=True, impl=impl, chunk_size=32)
        out[impl] = run(model, ho, ha, s, cfg)
    (fast, fast_info), (ref, ref_info) = out["carry"], out["loop"]
    assert len(fast["obs"]) == len(ref["obs"]) > 0
    for key in ref:
        assert torch.allclose(fast[key], ref[key], atol=1e-4, rtol=1e-4), key
    assert fast_info["penalty"] == pytest.approx(ref_info["penalty"], rel=1e-4, abs=1e-6)
    spread_only = uncertainty in ("mean_std", "max_pairwise")
    assert fast_info["penalty"] > 0 or (m == 1 and spread_only)  # one prediction has no spread


def test_penalty_is_subtracted_and_dropout_switch_matters():
    model, ho, ha, s = model_and_starts(3)
    base = RolloutConfig(max_step=3, length=1, penalty_coef=0.0, dropout=False, impl="carry")
    pen = RolloutConfig(max_step=3, length=1, penalty_coef=3.0, dropout=False, impl="carry")
    t0, _ = run(model, ho, ha, s, base)
    t1, info = run(model, ho, ha, s, pen)
    # same k and noise drawn first, so the raw sample is identical; the reward drops by 3 * u with u the
    # code's sqrt(mean_d Var_k) of the three deterministic next-state means
    assert torch.allclose(t0["next_obs"], t1["next_obs"])
    obs_hist = torch.cat([ho, s.unsqueeze(1)], dim=1)
    act_hist = torch.cat([ha, t0["act"].unsqueeze(1)], dim=1)
    model.eval()
    _, _, next_means = model.predict_all_k(obs_hist, act_hist)
    u = next_means.var(dim=0, unbiased=False).mean(-1, keepdim=True).sqrt()
    assert torch.allclose(t0["rew"] - t1["rew"], 3.0 * u, atol=1e-5)
    assert info["penalty"] == pytest.approx(u.mean().item(), rel=1e-5)
    with_dropout = RolloutConfig(max_step=3, length=1, penalty_coef=3.0, dropout=True, impl="carry")
    t2, _ = run(model, ho, ha, s, with_dropout)
    assert not torch.allclose(t1["next_obs"], t2["next_obs"])


def test_terminal_transition_kept_later_steps_masked():
    model, ho, ha, s = model_and_starts(2, batch=64)
    cfg = RolloutConfig(max_step=2, length=6, penalty_coef=1.0, impl="carry")
    tr, info = run(model, ho, ha, s, cfg)
    done = tr["done"].squeeze(1).bool()
    assert done.any()
    # walk the flat output step by step: step t+1 holds exactly the rows of step t that did not end,
    # in order, continuing from their next states; terminal transitions are kept at their step
    lo, rows, steps = 0, 64, 0
    while lo < len(done) and rows > 0:
        step_done = done[lo : lo + rows]
        nxt = tr["next_obs"][lo : lo + rows][~step_done]
        lo += rows
        rows = int((~step_done).sum())
        steps += 1
        if lo < len(done):
            assert torch.equal(tr["obs"][lo : lo + rows], nxt)
    assert lo == len(done) and steps <= 6
    assert info["mean_length"] == pytest.approx(len(done) / 64)
    assert info["done_frac"] == pytest.approx(done.float().mean().item())


def test_never_terminating_env_gives_full_length():
    model, ho, ha, s = model_and_starts(3, batch=10)
    cfg = RolloutConfig(max_step=3, length=5, penalty_coef=1.0)
    tr, info = run(model, ho, ha, s, cfg, term="neorl-halfcheetah")
    assert len(tr["obs"]) == 50 and not tr["done"].any()
    # consecutive steps chain: the next_obs of step t is the obs of step t+1 (row order preserved)
    assert torch.allclose(tr["next_obs"][:10], tr["obs"][10:20])


def test_start_windows_stay_in_one_episode():
    n = 40
    obs = np.arange(n, dtype=np.float32)[:, None].repeat(2, 1)
    terminals = np.zeros(n, bool)
    terminals[[4, 9, 30]] = True  # episodes [0..4], [5..9], [10..30], [31..39]
    ds = OfflineDataset(observations=obs, actions=np.zeros((n, 1), np.float32),
                        rewards=np.zeros(n, np.float32), next_observations=obs + 1, terminals=terminals,
                        timeouts=np.zeros(n, bool), name="toy", env_key="hopper")
    ho, ha, start = sample_start_windows(WindowSampler(ds), 500, 5, torch.Generator().manual_seed(0))
    assert ho.shape == (500, 4, 2) and start.shape == (500, 2)
    first = ho[:, 0, 0].long()
    ends = np.array([4, 9, 30, 39])
    # the 4 history steps and the start state's transition lie in the same episode
    for f in first.tolist():
        end = ends[np.searchsorted(ends, f)]
        assert f + 3 <= end
    assert torch.equal(start[:, 0], ho[:, -1, 0] + 1)


def test_bad_config_and_history_errors():
    with pytest.raises(ValueError, match="k_mode"):
        RolloutConfig(k_mode="per-step")
    with pytest.raises(ValueError, match="unknown uncertainty"):
        RolloutConfig(uncertainty="nope")
    model, ho, ha, s = model_and_starts(3)
    with pytest.raises(ValueError, match="needs m-1=4 history steps"):
        run(model, ho, ha, s, RolloutConfig(max_step=5, length=1))


def test_rollout_does_not_depend_on_thread_count():
    """Dropout masks come from fixed streams whatever the number of torch threads filling them."""
    model, hist_obs, hist_act, start = model_and_starts(5)
    cfg = RolloutConfig(max_step=5, length=3, penalty_coef=1.0, chunk_size=16)
    threads = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(123)
            outs.append(run(model, hist_obs, hist_act, start, cfg)[0])
    finally:
        torch.set_num_threads(threads)
    for key in outs[0]:  # float tolerance: matmuls may sum in another order with another thread count
        assert torch.allclose(outs[0][key], outs[1][key], atol=1e-5, rtol=1e-5), key


def test_dropout_masks_have_the_configured_keep_rate_and_are_seeded():
    """Keep flags are 0/1 floats with P(keep) = 1 - p, the same for the same rollout generator and
    different for another one."""
    from adm.rollout import _Randomness

    model, *_ = model_and_starts(5)
    cfg = RolloutConfig(max_step=5, length=2)

    def draw(seed):
        return _Randomness(model, cfg, torch.Generator().manual_seed(seed)).masks(6, 5000)

    flags = draw(0)
    assert flags.shape == (model.cfg.res_blocks, 6, 5000, model.cfg.hidden_dim)
    assert flags.dtype == torch.float32 and set(flags.unique().tolist()) == {0.0, 1.0}
    n = flags.numel()  # 2.9M flags: the keep rate's standard error is 1.8e-4
    assert abs(flags.mean().item() - (1 - model.cfg.dropout)) < 6 * (0.09 / n) ** 0.5
    assert torch.equal(flags, draw(0)) and not torch.equal(flags, draw(1))
    # both streams carry randomness: the two halves of the blocks differ
    half = model.cfg.res_blocks // 2
    assert not torch.equal(flags[:half], flags[half:])
