"""The audited differences to the reference implementations (issue 21), each closed or made a switch:
alpha clamp, log-prob epsilon, CQL/COMBO log-sum-exp grouping, walker2d / non-finite termination,
RAMBO state standardisation and schedule, the per-algorithm settings. Numeric agreement with the
reference code itself is in tests/test_parity.py."""

import math

import numpy as np
import pytest
import torch
from helpers import build_model_based

from baselines.cql import CQLConfig, CQLLearner, conservative_gap
from benchmark.config import resolve_config
from benchmark.registry import get
from benchmark.rl.sac import ADMPO_LOGP_EPS, SAC, SACConfig, TanhGaussianActor
from benchmark.rl.termination import get_termination_fn


def test_alpha_clamp_is_a_sac_option_applied_only_to_the_auto_temperature():
    sac = SAC(3, 2, SACConfig(auto_alpha=True, alpha_max=1.0))
    with torch.no_grad():
        sac.log_alpha.fill_(0.5)
    assert sac.alpha.item() == 1.0  # OfflineRL-Kit: clamp(exp(0.5) = 1.65, 0, 1)
    with torch.no_grad():
        sac.log_alpha.fill_(-0.5)
    assert sac.alpha.item() == pytest.approx(math.exp(-0.5))
    free = SAC(3, 2, SACConfig(auto_alpha=True, alpha_max=None))
    with torch.no_grad():
        free.log_alpha.fill_(0.5)
    assert free.alpha.item() == pytest.approx(math.exp(0.5))
    fixed = SAC(3, 2, SACConfig(auto_alpha=False, alpha=2.0, alpha_max=1.0))
    assert fixed.alpha.item() == pytest.approx(2.0)  # a fixed temperature is never clamped


@pytest.mark.parametrize(
    "algo, alpha_max",
    [
        ("mopo", 1.0),
        ("rambo", 1.0),
        ("mobile", 1.0),
        ("edac", 1.0),
        ("cql", None),
        ("combo", None),
        ("cbop", None),
    ],
)
def test_alpha_clamp_per_algorithm_matches_its_reference(algo, alpha_max):
    spec = get(algo)
    cfg, _ = resolve_config(spec.config_cls, spec.config_dir, ["hopper-medium-v2"], "paper", {})
    assert cfg.alpha_max == alpha_max


def test_logp_eps_switch_changes_only_the_tanh_correction():
    torch.manual_seed(0)
    default = TanhGaussianActor(3, 2)
    admpo = TanhGaussianActor(3, 2, logp_eps=ADMPO_LOGP_EPS)
    admpo.load_state_dict(default.state_dict())
    obs = torch.randn(64, 3)
    torch.manual_seed(1)
    a1, lp1 = default.sample(obs)
    torch.manual_seed(1)
    a2, lp2 = admpo.sample(obs)
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)
    squashed = a1.clamp(-1, 1)
    expected = torch.log(1 - squashed.pow(2) + 1e-6).sum(-1, keepdim=True) - torch.log(
        1 - squashed.pow(2) + ADMPO_LOGP_EPS
    ).sum(-1, keepdim=True)
    torch.testing.assert_close(lp2 - lp1, expected, rtol=1e-4, atol=1e-5)
    assert SACConfig().logp_eps == 1e-6


def test_state_sample_grouping_is_offlinerlkits_per_pair_logsumexp():
    g = torch.Generator().manual_seed(0)
    n, b, m = 2, 3, 4
    q = torch.randn(n, b, 3 * m, generator=g)  # ordered (proposal, sample)
    logd = torch.randn(1, b, 3 * m, generator=g)
    q_data = torch.randn(n, b, 1, generator=g)
    x = (q - logd).reshape(n, b, 3, m)
    per_pair = torch.logsumexp(x, dim=2).mean(dim=(1, 2))  # OfflineRL-Kit: over the 3 proposals
    per_state = torch.logsumexp(x.reshape(n, b, 3 * m), dim=-1).mean(dim=1)
    data = q_data.mean(dim=(1, 2))
    torch.testing.assert_close(conservative_gap(q, logd, q_data, 1.0, groups=3), per_pair - data)
    torch.testing.assert_close(conservative_gap(q, logd, q_data, 1.0), per_state - data)
    # the log-sum-exp over 3M exceeds every per-pair one; with constant values by exactly log M
    gap = conservative_gap(q, logd, q_data, 1.0) - conservative_gap(q, logd, q_data, 1.0, groups=3)
    assert (gap > 0).all()
    flat = torch.zeros(n, b, 3 * m)
    shift = conservative_gap(flat, 0.0, q_data, 1.0) - conservative_gap(flat, 0.0, q_data, 1.0, groups=3)
    torch.testing.assert_close(shift, torch.full((n,), math.log(m)))


def test_lse_grouping_switch_reaches_the_critic_loss_and_is_validated():
    batch = {
        "obs": torch.randn(8, 3),
        "act": torch.rand(8, 2) * 2 - 1,
        "rew": torch.randn(8, 1),
        "next_obs": torch.randn(8, 3),
        "done": torch.zeros(8, 1),
    }
    gaps = {}
    for grouping in ("state", "state_sample"):
        torch.manual_seed(0)
        learner = CQLLearner(3, 2, CQLConfig(hidden=(16,), lse_grouping=grouping))
        learner.generator = torch.Generator().manual_seed(1)
        torch.manual_seed(2)
        gaps[grouping] = learner.critic_loss(batch)[1]["cql_gap"]
    assert gaps["state"] - gaps["state_sample"] == pytest.approx(math.log(10), abs=0.3)  # M = 10
    with pytest.raises(ValueError, match="lse_grouping"):
        CQLLearner(3, 2, CQLConfig(lse_grouping="pairs"))


def test_walker2d_offlinerlkit_adds_the_state_bound_and_admpo_keeps_its_own():
    s = np.zeros((3, 17), np.float32)
    s[:, 0] = 1.2  # healthy height and angle
    s[1, 9] = 150.0  # one velocity at 150: done in OfflineRL-Kit / MOBILE, not in ADMPO
    s[2, 9] = np.nan
    admpo = get_termination_fn("walker2d")(s, None, s).numpy()
    okit = get_termination_fn("walker2d", "offlinerlkit")(s, None, s).numpy()
    np.testing.assert_array_equal(admpo, [False, False, False])
    np.testing.assert_array_equal(okit, [False, True, True])
    # the other environments are the same in both sources
    assert get_termination_fn("hopper", "offlinerlkit") is get_termination_fn("hopper")
    with pytest.raises(KeyError, match="unknown termination source"):
        get_termination_fn("hopper", "mbpo")


def test_non_finite_states_end_the_rollout_as_in_the_official_numpy_code():
    c = np.zeros((2, 17), np.float32)
    c[1, 4] = np.nan  # official halfcheetah: not (all > -100 and all < 100) -> done
    np.testing.assert_array_equal(get_termination_fn("halfcheetah")(c, None, c).numpy(), [False, True])
    h = np.zeros((2, 12), np.float32)
    h[:, 1] = 1.0
    h[1, 1] = np.inf  # official neorl-hopper: 0.7 < z < inf
    np.testing.assert_array_equal(get_termination_fn("neorl-hopper")(h, None, h).numpy(), [False, True])


@pytest.mark.parametrize(
    "algo, source",
    [
        ("mopo", "offlinerlkit"),
        ("mobile", "offlinerlkit"),
        ("rambo", "offlinerlkit"),
        ("combo", "offlinerlkit"),
        ("cbop", "admpo"),
    ],
)
def test_ensemble_baselines_use_their_references_termination(algo, source):
    spec = get(algo)
    cfg, _ = resolve_config(spec.config_cls, spec.config_dir, ["walker2d-medium-v2"], "paper", {})
    assert cfg.dynamics_config().termination == source


def test_cbop_paper_budget_uses_the_official_ensemble_sizes():
    spec = get("cbop")
    paper, _ = resolve_config(spec.config_cls, spec.config_dir, ["hopper-medium-v2"], "paper", {})
    smoke, _ = resolve_config(spec.config_cls, spec.config_dir, ["hopper-medium-v2"], "smoke", {})
    assert (paper.dynamics_members, paper.dynamics_elites) == (30, 20)  # official README command
    assert (smoke.dynamics_members, smoke.dynamics_elites) == (7, 5)
    assert paper.mask_terminated_horizons


def test_rambo_standardises_states_everywhere_and_terminates_on_raw_states():
    algo, cfg, _ = build_model_based("rambo", dynamics_max_steps=5, bc_epochs=0)
    assert (cfg.model_retain_epochs, cfg.normalize_states) == (5, True)
    spec = get("rambo")
    paper, _ = resolve_config(spec.config_cls, spec.config_dir, ["hopper-medium-v2"], "paper", {})
    assert (paper.rollout_freq, paper.model_retain_epochs) == (1000, 5)  # official schedule
    raw = torch.as_tensor(algo.ctx.dataset.observations)
    stored = algo.real.data["obs"]
    o = algo.ctx.dataset.observations.astype(np.float64)
    expected = (o - o.mean(0)) / (o.std(0) + 1e-3)  # OfflineRL-Kit ReplayBuffer.normalize_obs
    np.testing.assert_allclose(stored.numpy(), expected, rtol=0, atol=1e-4)
    # termination sees the de-standardised state: a healthy raw state stays alive
    healthy = raw[:1].clone()
    healthy[0, 0], healthy[0, 1] = 1.25, 0.0
    z = algo.obs_norm(healthy)
    assert not algo.dynamics.termination_fn(z, None, z).any()
    fallen = healthy.clone()
    fallen[0, 0] = 0.3
    zf = algo.obs_norm(fallen)
    assert algo.dynamics.termination_fn(zf, None, zf).all()
    # acting standardises the environment's observation first
    torch.manual_seed(0)
    a1 = algo.act(healthy.numpy(), deterministic=True)
    a2 = algo.sac.act(z, deterministic=True)
    np.testing.assert_allclose(a1, a2, rtol=0, atol=0)
    info = algo.setup()
    assert info["dynamics/holdout_mse"] > 0


def test_rambo_without_standardisation_is_the_raw_pipeline():
    algo, cfg, _ = build_model_based("rambo", dynamics_max_steps=5, bc_epochs=0, normalize_states=False)
    torch.testing.assert_close(algo.real.data["obs"], torch.as_tensor(algo.ctx.dataset.observations))
