"""One dynamics-model protocol (benchmark/rl/dynamics_protocol.py): the ensemble, the any-step model and
BootRNN answer the same questions from a history, each under its own rule."""

import pytest
import torch

from adm.bootrnn import BootRNN
from adm.dynamics_models import AnyStepModel, BootRNNModel
from adm.model import ADMConfig, AnyStepDynamics
from adm.training import ADMTrainConfig
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig
from benchmark.rl.dynamics_protocol import DynamicsModel

OBS, ACT, B, M = 3, 2, 5, 4


def _history(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, M, OBS, generator=g), torch.randn(B, M, ACT, generator=g)


def _models():
    torch.manual_seed(0)
    cfg = EnsembleDynamicsConfig(members=3, elites=2, hidden=(8,), weight_decays=(0.0, 0.0))
    ens = EnsembleDynamics(OBS, ACT, cfg, "hopper", "cpu", seed=0).eval()
    adm = AnyStepModel(ADMTrainConfig(max_step=M),
                       model=AnyStepDynamics(OBS, ACT, ADMConfig(hidden_dim=8))).eval()
    boot = BootRNNModel(ADMTrainConfig(max_step=M),
                        model=BootRNN(OBS, ACT, ADMConfig(hidden_dim=8), history=M)).eval()
    return {"ensemble": ens, "adm": adm, "bootrnn": boot}


@pytest.mark.parametrize("name", ["ensemble", "adm", "bootrnn"])
def test_every_model_serves_the_protocol(name):
    model = _models()[name]
    assert isinstance(model, DynamicsModel)
    obs, act = _history()
    mean = model.predict_mean(obs, act, torch.Generator().manual_seed(1))
    assert mean.shape == (B, OBS) and torch.isfinite(mean).all()
    # the same generator state gives the same answer: the rule's draws come from the caller's generator
    assert torch.equal(mean, model.predict_mean(obs, act, torch.Generator().manual_seed(1)))
    next_obs, reward = model.sample(obs, act, torch.Generator().manual_seed(2))
    assert next_obs.shape == (B, OBS) and reward.shape == (B, 1)


def test_each_rule_reads_its_part_of_the_history():
    models = _models()
    obs, act = _history()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    # ensemble: the last pair only, one elite's mean per row
    ens = models["ensemble"]
    mean, _ = ens.predict(obs[:, -1], act[:, -1])
    pick = ens.elites[torch.randint(len(ens.elites), (B,), generator=g())]
    assert torch.equal(ens.predict_mean(obs, act, g()), mean[pick, torch.arange(B), :-1])
    # ADM: one k ~ U{1..L} for the batch, the k-step prediction from the k-th last state
    adm = models["adm"]
    k = int(torch.randint(1, M + 1, (1,), generator=g()))
    assert torch.equal(adm.predict_mean(obs, act, g()), adm.model.dstep(obs[:, -k], act[:, -k:])[0])
    # BootRNN: the whole window
    boot = models["bootrnn"]
    assert torch.equal(boot.predict_mean(obs, act, g()), boot.model.dstep(obs, act)[0])
