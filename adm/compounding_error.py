"""Compounding error vs rollout length (Figure 2, camera-ready E.1): :func:`compounding_error`.

The dataset's episodes are split at random (seeded) into training episodes and ``heldout_fraction`` held-out
episodes, so held-out trajectories are unseen (the third-party reproduction [REPRO] used an 80/10/10
trajectory split; we use 90/10, the models' own early-stopping holdout being the tail of the training part).
ADM (:func:`adm.training.train_adm`), the MBPO-style ensemble (7 members / 5 elites,
:class:`benchmark.rl.dynamics.EnsembleDynamics`) and BootRNN (:func:`adm.bootrnn.train_bootrnn`) are trained
on the training part. Each start is a segment of ``m - 1 + horizon`` transitions inside one held-out
episode: the first m states ``s_0 .. s_{m-1}`` and actions are real, then the recorded actions are replayed
open loop and every model feeds its own predictions back:

* ensemble: from ``s_{t}`` only; each step one elite drawn per start (MBPO's rule), its mean;
* ADM: one ``k ~ U{1..m}`` per step for all starts (the code's ADM-Roll rule), the mean of the k-step
  prediction from the k-th last state of its history (real states first, then its own predictions);
* BootRNN: the mean one-step prediction from the last m (state, action) pairs of its history.

Means, not Gaussian samples, and dropout off (eval mode): the figure is about the models' predictions,
not their noise. Metric: ``mean_d (s_hat - s)^2`` in raw observation space at every horizon h (the state
reached after h model steps), mean and std over starts. As the paper says, overflow counts as the float32
maximum: a non-finite or larger error is set to ``FLOAT32_MAX`` before averaging, and the averages are
clipped to it (``overflow`` gives the fraction of starts affected).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from adm.analysis import AnalysisSizes, train_models
from benchmark.rl.buffers import WindowSampler
from benchmark.rl.dataset import OfflineDataset, segment_starts, split_episodes, truncate
from benchmark.rl.dynamics_protocol import DynamicsModel

Tensor = torch.Tensor
FLOAT32_MAX = float(np.finfo(np.float32).max)
COMPOUNDING_MODELS = ("adm", "ensemble", "bootrnn")


@torch.no_grad()
def open_loop_predictions(model: DynamicsModel, hist_obs: Tensor, acts: Tensor, horizon: int,
                          generator: torch.Generator) -> Tensor:
    """Replay ``acts`` open loop after a real history; every model feeds its own predictions back.

    ``hist_obs [B, m, obs]`` are the real states ``s_0 .. s_{m-1}``; ``acts [B, m-1+horizon, act]`` the
    recorded actions ``a_0 ..``. Returns the predicted states ``s_m .. s_{m-1+horizon}``,
    ``[B, horizon, obs]``. Mean predictions under each model's own rule (see the module docstring)."""
    m = hist_obs.shape[1]
    states = list(hist_obs.unbind(1))  # s_0 .. s_t (t = m-1 at first)
    out = []
    for h in range(horizon):
        t = m - 1 + h  # predict s_{t+1} with a_t, from the last m states and their actions
        nxt = model.predict_mean(torch.stack(states[-m:], dim=1), acts[:, t - m + 1 : t + 1], generator)
        states.append(nxt)
        out.append(nxt)
    return torch.stack(out, dim=1)


def clipped_mse(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-start, per-horizon ``mean_d (pred - true)^2`` in float64, overflow (non-finite or above the
    float32 maximum) set to ``FLOAT32_MAX``; returns the errors and the overflow flags."""
    with np.errstate(over="ignore", invalid="ignore"):
        err = ((pred.astype(np.float64) - true.astype(np.float64)) ** 2).mean(axis=-1)
    overflow = ~np.isfinite(err) | (err > FLOAT32_MAX)
    return np.where(overflow, FLOAT32_MAX, err), overflow


def compounding_error(dataset: OfflineDataset, env_key: str, models=COMPOUNDING_MODELS, horizon: int = 100,
                      n_starts: int = 1000, seed: int = 0, sizes: AnalysisSizes | None = None,
                      device: str | torch.device = "cpu", stages=None) -> dict:
    """Compounding error vs rollout length (see the module docstring). Returns::

        {"analysis": "compounding-error", "metric": ..., "protocol": ..., "horizons": [1..H],
         "models": {name: {"mean": [H], "std": [H], "median": [H], "overflow": [H], "train": {...}}},
         "n_starts": N, "max_step": m, "split": {...}, "sizes": {...}, "seed": seed}
    """
    sizes = replace(sizes or AnalysisSizes(), horizon=horizon, n_starts=n_starts)
    sizes.validate()
    m = sizes.max_step
    segments = heldout_segments(dataset, sizes, seed)
    w = segments.window
    hist_obs = w["obs"][:, :m]  # s_0 .. s_{m-1}
    trained, infos = train_models(segments.train, env_key, models, sizes, seed, device, stages)
    results = {}
    for i, name in enumerate(models):
        g = torch.Generator().manual_seed(seed * 1000 + 100 + i)
        pred = open_loop_predictions(trained[name], hist_obs.to(device), w["act"].to(device), horizon, g)
        results[name] = {**error_summary(pred.cpu().numpy(), segments.true), "train": infos[name]}
    return {
        "analysis": "compounding-error",
        "metric": METRIC,
        "protocol": (f"{segments.protocol}; mean predictions, dropout off; ADM k~U{{1..m}} per step; "
                     "ensemble one random elite per start and step"),
        **segments.fields(sizes, seed),
        "models": results,
    }


METRIC = "raw-state MSE mean_d (s_hat_h - s_h)^2 per start; mean/std over starts; overflow -> float32 max"


@dataclass
class HeldoutSegments:
    """The episode split and the held-out segments every compounding-error model is scored on: the
    training part (truncated to ``train_transitions``), the held-out part, the segment starts, their
    windows (``obs``, ``act``, ``next_obs`` of ``m - 1 + horizon`` transitions) and the true states
    ``s_m .. s_{m-1+H}`` ``[N, H, obs]``."""

    train: OfflineDataset
    held: OfflineDataset
    starts: np.ndarray
    window: dict
    true: np.ndarray
    max_step: int
    horizon: int
    heldout_fraction: float

    @property
    def protocol(self) -> str:
        frac = self.heldout_fraction
        return (f"episode split {1 - frac:.0%}/{frac:.0%}; {len(self.starts)} held-out segments, first "
                f"m={self.max_step} states real, recorded actions replayed open loop for {self.horizon} "
                "steps")

    def fields(self, sizes: AnalysisSizes, seed: int) -> dict:
        """The record fields that say what was scored (shared by every analysis on these segments)."""
        return {
            "horizons": list(range(1, self.horizon + 1)),
            "n_starts": int(len(self.starts)),
            "max_step": self.max_step,
            "split": {"train_transitions": len(self.train), "heldout_transitions": len(self.held),
                      "heldout_episodes": int(self.held.episode_ends.sum())},
            "sizes": asdict(sizes),
            "seed": seed,
        }


def heldout_segments(dataset: OfflineDataset, sizes: AnalysisSizes, seed: int) -> HeldoutSegments:
    """The seeded episode split and held-out segments of :func:`compounding_error` (their one home, so
    :func:`reference_errors` scores exactly the same starts)."""
    m, horizon = sizes.max_step, sizes.horizon
    train, held = split_episodes(dataset, sizes.heldout_fraction, seed)
    train = truncate(train, sizes.train_transitions)
    rng = np.random.default_rng(seed)
    length = m - 1 + horizon
    starts = segment_starts(held, length, sizes.n_starts, rng)
    window = WindowSampler(held, "cpu").gather(torch.as_tensor(starts), length)
    true = window["next_obs"][:, m - 1 :].numpy()  # s_m .. s_{m-1+H}
    return HeldoutSegments(train, held, starts, window, true, m, horizon, sizes.heldout_fraction)


def error_summary(pred: np.ndarray, true: np.ndarray) -> dict:
    """Per rollout length: mean, std and median over starts of :func:`clipped_mse`, and the fraction of
    starts that overflowed."""
    err, overflow = clipped_mse(pred, true)
    return {
        "mean": np.minimum(err.mean(axis=0), FLOAT32_MAX).tolist(),
        "std": np.minimum(err.std(axis=0), FLOAT32_MAX).tolist(),
        "median": np.median(err, axis=0).tolist(),
        "overflow": overflow.mean(axis=0).tolist(),
    }


REFERENCE_PREDICTORS = ("last-state", "train-mean-state")


def reference_errors(dataset: OfflineDataset, sizes: AnalysisSizes, seed: int = 0) -> dict:
    """What the compounding error is worth: two predictors that use no model, scored on exactly the segments
    of :func:`compounding_error` (same split, seed and sizes) with the same metric. ``last-state`` holds the
    last real state ``s_{m-1}`` for every h (the error of assuming nothing moves); ``train-mean-state``
    predicts the training part's mean state for every h (the error of knowing only where the data usually
    is). A model whose error at length h is above the latter's has no information left about the state h
    steps ahead. Seconds of CPU, no training. Returns the record's ``result`` in the shape of
    :func:`compounding_error`'s, with these predictors as its models."""
    sizes.validate()
    segments = heldout_segments(dataset, sizes, seed)
    last = segments.window["obs"][:, segments.max_step - 1].numpy()
    mean_state = segments.train.observations.astype(np.float64).mean(axis=0)
    predictions = {"last-state": np.broadcast_to(last[:, None], segments.true.shape),
                   "train-mean-state": np.broadcast_to(mean_state, segments.true.shape)}
    return {
        "analysis": "compounding-references",
        "metric": METRIC,
        "protocol": (f"{segments.protocol}; no model: last-state holds s_(m-1), train-mean-state predicts "
                     "the training part's mean observation"),
        **segments.fields(sizes, seed),
        "models": {name: error_summary(predictions[name], segments.true) for name in REFERENCE_PREDICTORS},
    }
