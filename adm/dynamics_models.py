"""The any-step model and BootRNN as :class:`benchmark.rl.dynamics_protocol.DynamicsModel`s.

Each adapter holds its training settings; ``fit`` trains a fresh network (:func:`adm.training.train_adm`,
:func:`adm.bootrnn.train_bootrnn`) and keeps it as ``model``. Prediction reads the history the caller passes
(at most m pairs, oldest first):

* :class:`AnyStepModel` (ADM-Roll): one backtracking length ``k ~ U{1..L}`` for the whole batch, the k-step
  prediction from the k-th last state with the last k actions;
* :class:`BootRNNModel`: the one-step prediction from the whole window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from adm.bootrnn import train_bootrnn
from adm.model import ADMConfig, AnyStepDynamics
from adm.training import ADMTrainConfig, train_adm
from benchmark.rl.dataset import OfflineDataset

Tensor = torch.Tensor


@dataclass
class AnyStepModel:
    train_cfg: ADMTrainConfig
    model_cfg: ADMConfig = field(default_factory=ADMConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    generator: torch.Generator | None = None  # training draws (windows, k, dropout)
    model: AnyStepDynamics | None = None  # the trained network (set by fit, or given)
    # a benchmark.rl.checkpoint.LoopCheckpoint: fit resumes mid-training after a kill (analysis stages)
    checkpoint: Any = None

    def fit(self, dataset: OfflineDataset) -> dict:
        self.model, info = train_adm(dataset, self.train_cfg, self.model_cfg, self.device, self.generator,
                                     checkpoint=self.checkpoint)
        self.checkpoint = None  # a finished model keeps no handle on its loop file
        return info

    def eval(self) -> AnyStepModel:
        self.model.eval()
        return self

    def _k(self, obs_hist: Tensor, generator: torch.Generator | None) -> int:
        return int(torch.randint(1, obs_hist.shape[1] + 1, (1,), generator=generator))

    @torch.no_grad()
    def predict_mean(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator | None = None
                     ) -> Tensor:
        k = self._k(obs_hist, generator)
        return self.model.dstep(obs_hist[:, -k], act_hist[:, -k:])[0]

    @torch.no_grad()
    def sample(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        k = self._k(obs_hist, generator)
        return self.model.step(obs_hist[:, -k], act_hist[:, -k:], generator)


@dataclass
class BootRNNModel(AnyStepModel):
    def fit(self, dataset: OfflineDataset) -> dict:
        self.model, info = train_bootrnn(dataset, self.train_cfg, self.model_cfg, self.device, self.generator,
                                         checkpoint=self.checkpoint)
        self.checkpoint = None
        return info

    @torch.no_grad()
    def predict_mean(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator | None = None
                     ) -> Tensor:
        return self.model.dstep(obs_hist, act_hist)[0]

    @torch.no_grad()
    def sample(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        return self.model.step(obs_hist, act_hist, generator)
