"""ADM architecture, normalisation, NLL loss and all-k prediction."""

import math

import numpy as np
import pytest
import torch

from adm.model import (
    ADMConfig,
    AnyStepCarry,
    AnyStepDynamics,
    gru_push,
    gru_state_projection,
    param_count,
    soft_clamp,
)
from adm.training import adm_nll_loss


def small(obs=4, act=2, hidden=16):
    torch.manual_seed(0)
    return AnyStepDynamics(obs, act, ADMConfig(hidden_dim=hidden))


def test_shapes_and_official_parameter_count():
    model = AnyStepDynamics(11, 3)
    # REFERENCE.md 1.1: hopper (11/3), H=200 has ~779k trainable parameters
    assert abs(param_count(model) - 779_000) < 1_000
    assert model.rnn.num_layers == 3 and len(model.blocks) == 4
    mean, logvar = model(torch.zeros(7, 11), torch.zeros(7, 4, 3))
    assert mean.shape == logvar.shape == (7, 12)
    assert torch.allclose(model.max_logvar, torch.full((12,), 0.5))
    assert torch.allclose(model.min_logvar, torch.full((12,), -10.0))


def test_logvar_soft_clamp_stays_inside_bounds():
    x = torch.linspace(-50, 50, 101)
    y = soft_clamp(x, torch.tensor(-10.0), torch.tensor(0.5))
    # the lower softplus is applied last, so the top may exceed 0.5 by softplus(-10.5) ~ 3e-5 (as the code)
    assert (y >= -10).all() and (y <= 0.5 + 1e-4).all()
    assert (y[:35] < -9.99).all() and (y[-40:] > 0.49).all()
    assert abs(soft_clamp(torch.tensor(-2.0), torch.tensor(-10.0), torch.tensor(0.5)).item() + 2.0) < 0.1


def test_normalizer_is_saved_in_state_dict_and_not_trainable():
    model = small()
    obs = np.array([[1.0, 2.0, 3.0, 5.0], [3.0, 2.0, 5.0, 5.0]])
    act = np.array([[0.0, 1.0], [1.0, 1.0]])
    model.set_normalizer(obs, act)
    assert torch.allclose(model.obs_mu, torch.tensor([2.0, 2.0, 4.0, 5.0]))
    # zero std replaced by 1 (official cal_mu_std)
    assert torch.allclose(model.obs_std, torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert torch.allclose(model.act_std, torch.tensor([0.5, 1.0]))
    state = model.state_dict()
    assert {"obs_mu", "obs_std", "act_mu", "act_std"} <= set(state)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not trainable & {"obs_mu", "obs_std", "act_mu", "act_std"}
    with pytest.raises(ValueError, match="set_normalizer"):
        model.set_normalizer(obs[:, :3], act)


def test_step_is_delta_from_backtracked_state_and_dstep_is_mean():
    model = small().eval()
    s = torch.randn(5, 4)
    a = torch.randn(5, 3, 2)
    mean, logvar = model(s, a)
    next_obs, rew = model.dstep(s, a)
    assert torch.allclose(next_obs, s + mean[:, :-1]) and torch.allclose(rew, mean[:, -1:])
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
    sample_obs, sample_rew = model.step(s, a, generator=g)
    expected = mean + noise * (0.5 * logvar).exp()
    assert torch.allclose(sample_obs, s + expected[:, :-1], atol=1e-6)
    assert torch.allclose(sample_rew, expected[:, -1:], atol=1e-6)


def test_nll_loss_hand_computed():
    mean = torch.tensor([[1.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    target = torch.zeros(1, 2)
    max_lv, min_lv = torch.full((2,), 0.5), torch.full((2,), -10.0)
    # mse/var: (1*1 + 4/2)/2 = 1.5; mean logvar: ln2/2; bounds: 0.01*1 - 0.01*(-20) = 0.21
    expected = 1.5 + math.log(2.0) / 2 + 0.21
    assert adm_nll_loss(mean, logvar, target, max_lv, min_lv).item() == pytest.approx(expected, rel=1e-6)


def test_all_k_prediction_equals_per_k_forward():
    model = small().eval()
    obs, act = torch.randn(6, 5, 4), torch.randn(6, 5, 2)
    mean, logvar, next_means = model.predict_all_k(obs, act)
    assert mean.shape == (5, 6, 5) and next_means.shape == (5, 6, 4)
    for k in range(1, 6):
        mu, lv = model(obs[:, -k], act[:, -k:])
        assert torch.allclose(mean[k - 1], mu, atol=1e-5) and torch.allclose(logvar[k - 1], lv, atol=1e-5)
        assert torch.allclose(next_means[k - 1], obs[:, -k] + mu[:, :-1], atol=1e-5)


def test_carry_opens_one_slot_per_push_up_to_m():
    model = small()
    carry = AnyStepCarry(model, 3, 2)
    sizes = [carry.push(torch.randn(2, 4), torch.randn(2, 2)).shape[0] for _ in range(5)]
    assert sizes == [1, 2, 3, 3, 3]


def test_packed_per_sample_lengths_equal_separate_passes():
    model = small().eval()
    s, a = torch.randn(4, 4), torch.randn(4, 5, 2)
    lengths = torch.tensor([1, 3, 5, 2])
    mean, _ = model(s, a, lengths)
    for b in range(4):
        ref, _ = model(s[b : b + 1], a[b : b + 1, : lengths[b]])
        assert torch.allclose(mean[b], ref[0], atol=1e-5)


def test_explicit_dropout_masks_match_manual_computation():
    model = small()
    f = torch.randn(3, 16)
    model.eval()
    # all-drop masks remove every block's branch, leaving only LayerNorm(x) of the residual path
    zero = torch.zeros(4, 3, 16)
    x = f
    for block in model.blocks:
        x = block.norm(x)
    expected = model.out(x).chunk(2, dim=-1)[0]
    assert torch.allclose(model.head(f, zero)[0], expected, atol=1e-5)


@pytest.mark.parametrize("grad", [False, True])
def test_gru_push_equals_torch_gru_step(grad):
    """The carry's GRU step (shared action projection, cached state projection, zero-state shortcut for
    the new sequence, tanh via sigmoid) equals one nn.GRU step, with and without autograd."""
    model = small(hidden=12)
    n, b = 4, 5
    states, act = torch.randn(n, b, 4), torch.randn(b, 2)
    hidden = torch.randn(3, n - 1, b, 12)
    with torch.set_grad_enabled(grad):
        h_new, out = gru_push(model.rnn, gru_state_projection(model.rnn, states), act, hidden)
        x = torch.cat([states, act.expand(n, -1, -1)], dim=-1).reshape(n * b, 1, -1)
        h0 = torch.cat([torch.zeros(3, 1, b, 12), hidden], dim=1).reshape(3, n * b, 12)
        ref_out, ref_h = model.rnn(x, h0)
    assert torch.allclose(h_new.reshape(3, n * b, 12), ref_h, atol=1e-5)
    assert torch.allclose(out.reshape(n * b, 12), ref_out[:, 0], atol=1e-5)
    with torch.set_grad_enabled(grad):  # with lead rows the outputs follow them, unchanged
        h_led, out_led = gru_push(model.rnn, gru_state_projection(model.rnn, states), act, hidden, lead=2)
    assert out_led.shape == (n + 2, b, 12)
    assert torch.allclose(out_led[2:], out, atol=1e-6) and torch.allclose(h_led, h_new, atol=1e-6)
    if grad:  # differentiable (no in-place op on a saved tensor)
        out.sum().backward()
        assert model.rnn.weight_hh_l0.grad is not None
