"""No host round trip per step in the hot loops: on a GPU every ``.item()``, ``float(t)`` or ``bool(t)`` of a
device tensor waits until the queue has drained. All three dispatch to ``aten._local_scalar_dense``, which
:class:`ScalarReads` counts, so these tests catch a per-step read on the CPU too. Reads inside
``torch.optim`` are not counted: the optimizers keep their step counters on the host for device parameters
(non-capturable Adam), so those reads never wait for the device."""

from __future__ import annotations

import sys

import pytest
import torch
from helpers import smoke_algorithm, smoke_sizes, standing_hopper_context
from torch.utils._python_dispatch import TorchDispatchMode

from adm.model import ADMConfig, AnyStepDynamics
from adm.rollout import RolloutConfig, rollout
from adm.training import ADMTrainConfig, train_adm
from benchmark import registry
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig, policy_rollout


class ScalarReads(TorchDispatchMode):
    """Counts the reads of a tensor's value into Python (``aten._local_scalar_dense``) outside torch.optim."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            frame = sys._getframe(1)
            while frame is not None and "/torch/optim/" not in frame.f_code.co_filename:
                frame = frame.f_back
            self.count += frame is None
        return func(*args, **(kwargs or {}))


def reads(fn, *args, **kwargs) -> tuple[int, object]:
    with ScalarReads() as counter:
        out = fn(*args, **kwargs)
    return counter.count, out


@pytest.mark.parametrize("algo_name", sorted(registry.algorithms()))
def test_a_gradient_step_reads_nothing_back(algo_name, tiny_data):
    algo, *_ = smoke_algorithm(algo_name, smoke_sizes(algo_name))
    algo.learn(algo.next_batch(0))  # step 0 may roll the model out (a few reads per rollout, below)
    per_step = []
    for step in range(1, 5):  # covers the every-other-step actor updates (TD3+BC, DDPPO) too
        n_batch, batch = reads(algo.next_batch, step)
        n_learn, info = reads(algo.learn, batch)
        per_step.append(n_batch + n_learn)
    assert per_step == [0, 0, 0, 0], "a gradient step waited for the device (.item(), float(t), bool(t))"
    assert info, "learn still returns its diagnostics"


def _adm_rollout(length: int, chunk_size: int, penalty_coef: float):
    torch.manual_seed(0)
    model = AnyStepDynamics(11, 3, ADMConfig(hidden_dim=16))
    g = torch.Generator().manual_seed(0)
    batch, m = 60, 3
    hist_obs, hist_act = 0.05 * torch.randn(batch, m - 1, 11, generator=g), torch.zeros(batch, m - 1, 3)
    start = 0.05 * torch.randn(batch, 11, generator=g)
    start[:, 0] += 1.25  # a standing hopper: the rollouts go on
    cfg = RolloutConfig(max_step=m, length=length, penalty_coef=penalty_coef, chunk_size=chunk_size)
    never_done = lambda obs, act, next_obs: torch.zeros(len(obs), 1, dtype=torch.bool)  # noqa: E731
    return reads(rollout, model, lambda o: torch.tanh(o[:, :3]), hist_obs, hist_act, start, cfg, never_done,
                 torch.Generator().manual_seed(1))


@pytest.mark.parametrize("penalty_coef", [1.0, 0.0])  # the carried impl (ADMPO-OFF) and the loop (ADMPO-ON)
def test_an_adm_rollout_reads_once_per_model_step_and_once_at_the_end(penalty_coef):
    chunks, length = 3, 5
    count, (transitions, info) = _adm_rollout(length, 20, penalty_coef)
    assert len(transitions["obs"]) == 60 * length and info["raw_reward"] == info["raw_reward"]
    # per chunk and model step only how many rollouts go on (it sets the next shapes); the sums and means
    # are read once per rollout (plus the mask streams' seeds)
    assert count <= chunks * length + 4, count
    longer, _ = _adm_rollout(2 * length, 20, penalty_coef)
    assert longer - count == chunks * length


def test_a_model_rollout_reads_once_per_model_step(tiny_data):
    ctx = standing_hopper_context(n=600)
    cfg = EnsembleDynamicsConfig(members=3, elites=2, hidden=(16,), weight_decays=(0.0, 0.0), max_epochs=1)
    model = EnsembleDynamics(ctx.obs_dim, ctx.act_dim, cfg, "hopper")
    model.fit(ctx.dataset)
    start = torch.as_tensor(ctx.dataset.observations[:50])
    policy = lambda obs: torch.zeros(len(obs), ctx.act_dim)  # noqa: E731
    short, _ = reads(policy_rollout, model, policy, start, 2)
    long, (transitions, _) = reads(policy_rollout, model, policy, start, 6)
    if len(transitions["obs"]) == 6 * 50:  # no rollout ended early: one read per step (who goes on)
        assert long - short == 4, (short, long)
    assert short <= 2 + 1


def test_ensemble_training_reads_a_constant_per_epoch():
    ctx = standing_hopper_context(n=2000)
    counts = []
    for epochs in (1, 3):
        cfg = EnsembleDynamicsConfig(members=3, elites=2, hidden=(16,), weight_decays=(0.0, 0.0),
                                     batch_size=64, max_epochs=epochs, max_epochs_since_update=100)
        model = EnsembleDynamics(ctx.obs_dim, ctx.act_dim, cfg, "hopper")
        count, info = reads(model.fit, ctx.dataset)
        assert info["dynamics/epochs"] == epochs
        counts.append(count)
    steps_per_epoch = info["dynamics/steps"] // 3
    assert steps_per_epoch >= 20
    # losses, holdout, elites: a few reads per epoch, none per gradient step
    assert counts[1] - counts[0] <= 2 * 4, counts


def test_adm_training_reads_only_its_host_drawn_k_per_step():
    ctx = standing_hopper_context(n=1200)
    counts = []
    for epochs in (1, 2):
        cfg = ADMTrainConfig(max_step=2, max_epochs=epochs, batch_size=64, max_holdout=200)
        count, (_, info) = reads(train_adm, ctx.dataset, cfg, ADMConfig(hidden_dim=8),
                                 generator=torch.Generator().manual_seed(0))
        counts.append((count, info["steps"]))
    (one, steps_one), (two, steps_two) = counts
    per_epoch = steps_two - steps_one
    assert per_epoch >= 20
    # one read per step: the code's k ~ U{1..m}, drawn by a host generator (a CPU tensor: no device wait)
    # and needed on the host for the window length; the epoch's losses and holdout MSEs are read once
    assert two - one <= per_epoch + 2, (one, two, per_epoch)
