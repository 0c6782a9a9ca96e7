"""What the paper's model analyses share (REFERENCE.md 4.1, 4.5): their sizes and the models they train.

The analyses themselves are pure functions returning JSON-able dicts: :mod:`adm.compounding_error`
(Figure 2) and :mod:`adm.uncertainty_error` (Figure 4); :mod:`adm.analysis_jobs` registers them as jobs with
budgeted sizes. The paper gives neither the error metric, the horizon, the rollout policy nor the number of
starts for either figure, so every output names its protocol (``metric``, ``protocol``, sizes) next to the
numbers.

Every model is a :class:`benchmark.rl.dynamics_protocol.DynamicsModel`: ADM
(:class:`adm.dynamics_models.AnyStepModel`, trained by :func:`adm.training.train_adm`), the MBPO-style
ensemble (7 members / 5 elites, :class:`benchmark.rl.dynamics.EnsembleDynamics`) and BootRNN
(:class:`adm.dynamics_models.BootRNNModel`, :func:`adm.bootrnn.train_bootrnn`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from adm.dynamics_models import AnyStepModel, BootRNNModel
from adm.model import ADMConfig
from adm.training import ADMTrainConfig
from benchmark.rl.dataset import OfflineDataset
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig
from benchmark.rl.dynamics_protocol import DynamicsModel


@dataclass
class AnalysisSizes:
    """Sizes of one analysis run (budgets change these only)."""

    max_step: int = 5  # m of ADM and the history of BootRNN ([REPRO] and the hopper/walker2d configs: 5)
    hidden_dim: int = 200  # ADM/BootRNN GRU width (official default)
    horizon: int = 100  # model steps (compounding: [REPRO] 100; uncertainty: [REPRO] 5)
    n_starts: int = 1000  # replayed segments / rollout starts
    heldout_fraction: float = 0.1  # episodes held out for the compounding-error replay
    model_max_epochs: int = 0  # ADM/BootRNN epoch cap (0: early stopping only, the code)
    model_max_time_s: float = 0.0  # ADM/BootRNN wall-clock cap (0: none)
    ensemble_max_epochs: int | None = None  # None: early stopping only (OfflineRL-Kit)
    ensemble_max_steps: int | None = None
    train_transitions: int | None = None  # keep only the first N training transitions (smoke budgets)
    bc_steps: int = 10_000  # BC updates for the "learned" source
    max_points: int = 2000  # points stored per (model, source) for the scatter; correlations use all

    # what the models' fit reads of these sizes (the rest only shape the evaluation): a fitted model is shared
    # between analyses whose values of these agree (:func:`model_share_key`)
    FIT_FIELDS: ClassVar[tuple[str, ...]] = (
        "max_step", "hidden_dim", "model_max_epochs", "model_max_time_s", "ensemble_max_epochs",
        "ensemble_max_steps", "train_transitions")

    def validate(self) -> None:
        if self.max_step < 1 or self.horizon < 1 or self.n_starts < 1:
            raise ValueError(f"analysis sizes need max_step, horizon, n_starts >= 1, got {self}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")


# (training data, env key, sizes, device, seed, generator) -> an unfitted model
ModelBuilder = Callable[[OfflineDataset, str, AnalysisSizes, torch.device, int, torch.Generator],
                        DynamicsModel]


def _adm_settings(sizes: AnalysisSizes) -> tuple[ADMTrainConfig, ADMConfig]:
    return (ADMTrainConfig(max_step=sizes.max_step, max_epochs=sizes.model_max_epochs,
                           max_time_s=sizes.model_max_time_s), ADMConfig(hidden_dim=sizes.hidden_dim))


def _adm(train, env_key, sizes, device, seed, generator) -> DynamicsModel:
    return AnyStepModel(*_adm_settings(sizes), device, generator)


def _bootrnn(train, env_key, sizes, device, seed, generator) -> DynamicsModel:
    return BootRNNModel(*_adm_settings(sizes), device, generator)


def _ensemble(train, env_key, sizes, device, seed, generator) -> DynamicsModel:
    cfg = EnsembleDynamicsConfig(max_epochs=sizes.ensemble_max_epochs, max_steps=sizes.ensemble_max_steps)
    return EnsembleDynamics(train.obs_dim, train.act_dim, cfg, env_key, device, seed)


# the models an analysis may compare, by the name its output uses
MODELS: dict[str, ModelBuilder] = {"adm": _adm, "ensemble": _ensemble, "bootrnn": _bootrnn}


def holdout_curve(info: dict, model: DynamicsModel) -> list[float]:
    """The holdout MSE after each training epoch (ADM and BootRNN return their ``history``; the ensemble keeps
    it as ``model.history``), so a report can show where each model's curve flattens: the analyses' epoch
    caps are chosen past that knee. Each model's own holdout metric (ADM: mean over k = 1..m)."""
    rows = info["history"] if "history" in info else model.history
    return [float(row["holdout_mse"]) for row in rows]


def data_fingerprint(ds: OfflineDataset) -> str:
    """sha256 of a dataset's arrays (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, arr in sorted(ds.arrays().items()):
        arr = np.ascontiguousarray(arr)
        digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def model_share_key(name: str, init_seed: int, train: OfflineDataset, env_key: str,
                    sizes: AnalysisSizes, device: torch.device) -> str:
    """What a fitted model depends on, hashed: the model, its seed, the training data, the env and the sizes
    its fit reads. Two analysis jobs with the same key would fit the same model (the fit starts from reset
    random states), so the second one loads the first one's (:class:`benchmark.rl.checkpoint.
    StageCheckpoints`)."""
    payload = {"model": name, "init_seed": init_seed, "data": data_fingerprint(train), "env": env_key,
               "fit": {field: getattr(sizes, field) for field in sizes.FIT_FIELDS}, "device": str(device)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def train_models(train: OfflineDataset, env_key: str, names, sizes: AnalysisSizes, seed: int,
                 device: str | torch.device = "cpu", stages=None) -> tuple[dict[str, DynamicsModel], dict]:
    """Build and fit each named model (:data:`MODELS`) on ``train``; returns the models (eval mode) and their
    scalar diagnostics plus ``holdout_curve`` (:func:`holdout_curve`). ``stages`` (the runner's
    :class:`benchmark.rl.checkpoint.StageCheckpoints`) keeps each fitted model, so a job killed after it
    does not fit it again, and shares it (:func:`model_share_key`) with other jobs that fit the same model.
    A model's seed is ``seed * 1000 + i`` for the i-th name, and every random state is reset to it before
    its fit, so the fit does not depend on what the job did before."""
    device = torch.device(device)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown analysis model {unknown[0]!r}; expected one of {tuple(MODELS)}")
    models, infos = {}, {}
    for i, name in enumerate(names):
        def fit(i=i, name=name):
            torch.manual_seed(seed * 1000 + i)  # initialisation and training dropout
            np.random.seed(seed * 1000 + i)
            random.seed(seed * 1000 + i)
            g = torch.Generator().manual_seed(seed * 1000 + i)
            model = MODELS[name](train, env_key, sizes, device, seed * 1000 + i, g)
            if stages is not None and hasattr(model, "checkpoint"):  # each model resumes mid-training
                model.checkpoint = stages.loop(f"model-{name}")
            info = model.fit(train)
            model.eval()
            kept = {k: v for k, v in info.items() if k != "history" and not isinstance(v, list | dict)}
            kept["holdout_curve"] = holdout_curve(info, model)
            return model, kept

        if stages is None:
            models[name], infos[name] = fit()
            continue
        key = model_share_key(name, seed * 1000 + i, train, env_key, sizes, device)
        models[name], infos[name] = stages.run(f"model-{name}", fit, share_key=key)
    return models, infos
