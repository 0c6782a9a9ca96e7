"""One protocol for a learned dynamics model, whatever its input: the MBPO-style ensemble
(:class:`benchmark.rl.dynamics.EnsembleDynamics`, one state), the any-step model and BootRNN (``adm``, a
history of states and actions).

A model is asked with a history ``obs_hist [B, L, obs]``, ``act_hist [B, L, act]`` (oldest first; the last
pair is the current state and the action taken in it) and reads as much of it as its own rule needs: the
ensemble the last pair, BootRNN the whole window, ADM the last k pairs for its own backtracking length k.
The caller passes the window it wants the model to see (an ADM of order m: at most m pairs).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from benchmark.rl.dataset import OfflineDataset

Tensor = torch.Tensor


@runtime_checkable
class DynamicsModel(Protocol):
    def fit(self, dataset: OfflineDataset) -> dict:
        """Train on ``dataset``; returns diagnostics (scalars, maybe a per-epoch ``history``)."""
        ...

    def predict_mean(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator) -> Tensor:
        """The model's mean next state ``[B, obs]`` under its own rollout rule (the ensemble: one random
        elite per row; ADM: one k for the batch); ``generator`` draws those choices."""
        ...

    def sample(self, obs_hist: Tensor, act_hist: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A Gaussian draw under the model's rollout rule: ``next_obs [B, obs]``, ``reward [B, 1]``."""
        ...

    def eval(self):
        """Prediction mode (dropout off)."""
        ...
