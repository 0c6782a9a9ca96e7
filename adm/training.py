"""Training the any-step model exactly as the official code does (REFERENCE.md 1.4-1.5).

* A fresh model and a fresh Adam (lr 3e-4, no weight decay) on every call.
* Normalisation statistics from the whole buffer, holdout included.
* Holdout: the last ``min(int(0.2 N), max_holdout)`` indices (contiguous tail); training windows start
  below ``train_size`` (they may run into the holdout), holdout windows start at or after it.
* An epoch is ``(train_size // batch_size) * m`` minibatches; each minibatch draws ONE k ~ U{1..m} for
  the whole batch of k-step windows (``per_sample_k=True``: one k per window, a packed GRU pass).
* Loss (1.4): ``mean((mu - y)^2 exp(-logvar)) + mean(logvar) + 0.01 sum(max_logvar) - 0.01 sum(min_logvar)``.
* After each epoch, for every k one batch of holdout windows is scored by the MSE of the mean, in train
  mode (dropout active). A snapshot is taken when ANY k improved on its best loss AND the mean over k
  improved on the mean of the best losses (then all best losses are replaced); otherwise a patience
  counter grows. Training stops after ``patience`` epochs without a snapshot (and at least
  ``min_epochs``); the best snapshot is restored.
* ``max_epochs`` / ``max_time_s`` bound the cost for small budgets (0 = no bound, the code's behaviour).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from adm.model import ADMConfig, AnyStepDynamics
from benchmark.progress import Progress
from benchmark.rl.buffers import WindowSampler, draw_indices, index_generator, tail_holdout_split
from benchmark.rl.dataset import OfflineDataset
from benchmark.rl.trainers import read_once


@dataclass
class ADMTrainConfig:
    max_step: int = 10  # m
    batch_size: int = 256
    lr: float = 3e-4
    logvar_reg: float = 0.01  # coefficient of sum(max_logvar) - sum(min_logvar)
    holdout_fraction: float = 0.2
    max_holdout: int = 1000  # 1000 offline, 500 online
    patience: int = 25
    min_epochs: int = 1
    max_epochs: int = 0  # 0: until early stopping (code); >0: budget cap
    # 0: no time cap; checked after each epoch, counting earlier processes of a resumed loop. A wall-clock
    # cap makes the model depend on the machine's speed and load: no suite budget uses it
    max_time_s: float = 0.0
    per_sample_k: bool = False  # code: one k per minibatch


def adm_nll_loss(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, max_logvar: torch.Tensor,
                 min_logvar: torch.Tensor, logvar_reg: float = 0.01) -> torch.Tensor:
    """Gaussian NLL averaged over batch and all obs_dim+1 dims, plus the log-variance bound regulariser."""
    nll = ((mean - target).pow(2) * torch.exp(-logvar)).mean() + logvar.mean()
    return nll + logvar_reg * max_logvar.sum() - logvar_reg * min_logvar.sum()


class WindowBatcher:
    """k-step windows with targets ``(s_{t+k} - s_t, r_{t+k-1})``, training and holdout sides."""

    def __init__(self, sampler: WindowSampler, train_size: int, device: torch.device):
        self.sampler, self.train_size, self.device = sampler, int(train_size), device
        self._holdout_starts: dict[tuple[int, torch.device], torch.Tensor] = {}

    def holdout_starts(self, k: int, device: str | torch.device = "cpu") -> torch.Tensor:
        key = (k, torch.device(device))
        if key not in self._holdout_starts:
            idx = np.arange(self.train_size, self.sampler.n)
            ok = idx[self.sampler.dist_to_end[self.train_size:] >= k - 1]
            if len(ok) == 0:
                raise ValueError(f"ADM training: no holdout window of length {k} (holdout holds "
                                 f"{self.sampler.n - self.train_size} transitions); use more data or a "
                                 "smaller m")
            self._holdout_starts[key] = torch.as_tensor(ok, dtype=torch.long, device=device)
        return self._holdout_starts[key]

    def fixed_k(self, starts: torch.Tensor, k: int):
        w = self.sampler.gather(starts, k)
        s0 = w["obs"][:, 0]
        target = torch.cat([w["next_obs"][:, -1] - s0, w["rew"][:, -1:]], dim=-1)
        return s0, w["act"], None, target

    def train_batch(self, batch: int, k: int, g: torch.Generator):
        return self.fixed_k(self.sampler.sample_starts(batch, k, self.train_size, g), k)

    def holdout_batch(self, batch: int, k: int, g: torch.Generator):
        starts = self.holdout_starts(k, g.device)  # drawn on the generator's device, as training windows
        return self.fixed_k(starts[draw_indices(len(starts), batch, g, g.device)], k)

    def train_batch_per_sample_k(self, batch: int, m: int, g: torch.Generator):
        """Each window its own k; actions right-padded to m, ``lengths`` for the packed GRU. (Drawn on the
        generator's device; the per-k counts are read on the host, one wait per k on a GPU.)"""
        ks = torch.randint(1, m + 1, (batch,), generator=g, device=g.device)
        starts = torch.empty(batch, dtype=torch.long, device=g.device)
        for k in range(1, m + 1):
            sel = ks == k
            if sel.any():
                starts[sel] = self.sampler.sample_starts(int(sel.sum()), k, self.train_size, g)
        dev = self.sampler.device
        idx = (starts.unsqueeze(1) + torch.arange(m, device=g.device)).clamp(max=self.sampler.n - 1).to(dev)
        last = (starts + ks - 1).to(dev)
        starts = starts.to(dev)
        s0 = self.sampler.obs[starts]
        acts = self.sampler.act[idx]
        target = torch.cat([self.sampler.next_obs[last] - s0, self.sampler.rew[last].reshape(-1, 1)], dim=-1)
        return s0, acts, ks, target


def _to(device, *tensors):
    """The tensors on ``device`` (those already there as they are: no call in the training loop)."""
    return [t if t is None or t.device == device else t.to(device) for t in tensors]


def fit_with_snapshot_rule(model: torch.nn.Module, cfg: ADMTrainConfig, steps_per_epoch: int,
                           train_loss: Callable[[], torch.Tensor], validate: Callable[[], list[float]],
                           progress=None, checkpoint=None) -> dict:
    """The official ADM training loop around any model (REFERENCE.md 1.5 steps 5-7).

    ``train_loss()`` draws a minibatch and returns its loss; ``validate()`` returns holdout MSEs (one per
    backtracking length, or one). A snapshot is taken when ANY entry improved on its best AND their mean
    improved; training stops after ``cfg.patience`` epochs without one (at least ``cfg.min_epochs``), or at
    ``cfg.max_epochs`` / ``cfg.max_time_s``; the best snapshot is restored. Returns diagnostics.

    ``checkpoint`` (a :class:`benchmark.rl.checkpoint.LoopCheckpoint` tracking the caller's generators)
    saves the loop at epoch ends now and then and resumes it, to the same result, after a kill."""
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    best_state = copy.deepcopy(model.state_dict())
    best: list[float] | None = None
    history, epoch, since_best, steps, t0 = [], 0, 0, 0, time.time()
    earlier_s = 0.0  # wall time the loop spent in the processes before this one, up to their last save
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:  # the random states are back too (the checkpoint restores them)
        model.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        best_state, best, history = saved["best_state"], saved["best"], saved["history"]
        epoch, since_best, steps = saved["epoch"], saved["since_best"], saved["steps"]
        earlier_s = float(saved.get("elapsed_s", 0.0))  # absent in files written before it was saved

    def elapsed() -> float:
        """The loop's wall time over all its processes: a resumed loop neither restarts ``max_time_s``'s
        clock (which would train a killed run longer than an uninterrupted one) nor reports only its last
        segment as ``time_s``."""
        return earlier_s + time.time() - t0

    def stop_reason(elapsed_s: float) -> str | None:
        """Why the loop ends after the epoch it has just finished, ``elapsed_s`` into it (None: it goes on).
        Also asked of a resumed state with the time it saved: a file saved at the last epoch resumes to the
        finished model, not one epoch more."""
        if epoch == 0:
            return None
        if since_best >= cfg.patience and epoch >= cfg.min_epochs:
            return "patience"
        if cfg.max_epochs and epoch >= cfg.max_epochs:
            return "max_epochs"
        if cfg.max_time_s and elapsed_s >= cfg.max_time_s:
            return "max_time"
        return None

    # early stopping: the length is only known when max_epochs caps it
    bar = Progress(f"{type(model).__name__} model training", unit="step",
                   total=steps_per_epoch * cfg.max_epochs if cfg.max_epochs else None)
    bar.update(steps)
    stopped = stop_reason(earlier_s)
    while stopped is None:
        epoch += 1
        losses = []
        for _ in range(steps_per_epoch):
            loss = train_loss()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(loss.detach())  # read once per epoch, below
            steps += 1
            bar.update(1)
        losses = read_once(torch.stack(losses)) if losses else []
        val = [float(v) for v in validate()]
        if best is None:
            best = [1e10] * len(val)
        if any(v < b for v, b in zip(val, best)) and np.mean(val) < np.mean(best):
            best_state, best, since_best = copy.deepcopy(model.state_dict()), val, 0
        else:
            since_best += 1
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                        "holdout_mse": float(np.mean(val)), "holdout_mse_k": val})
        if progress is not None:
            progress(history[-1])
        bar.update(0, epoch=epoch, holdout_mse=history[-1]["holdout_mse"],
                   since_best=f"{since_best}/{cfg.patience}")
        now_s = elapsed()
        stopped = stop_reason(now_s)
        # the last epoch is always saved: a process killed between the loop's end and its caller's next
        # checkpoint (a stage's file, a run's first checkpoint) resumes without training again
        if checkpoint is not None and (checkpoint.due() or stopped is not None):
            checkpoint.save({"model": model.state_dict(), "optim": optim.state_dict(),
                             "best_state": best_state, "best": best, "history": history, "epoch": epoch,
                             "since_best": since_best, "steps": steps, "elapsed_s": now_s})
    bar.close()
    model.load_state_dict(best_state)
    return {"holdout_mse": float(np.mean(best)), "holdout_mse_k": best, "epochs": epoch, "steps": steps,
            "stopped": stopped, "time_s": round(elapsed(), 3), "history": history}


def checked_train_size(dataset: OfflineDataset, cfg: ADMTrainConfig, model_name: str) -> int:
    """Rows before the tail holdout (shared by ADM, its variants and BootRNN); an error when there is no
    holdout or fewer training rows than one batch."""
    n = len(dataset)
    train_size = tail_holdout_split(n, cfg.holdout_fraction, cfg.max_holdout)
    if train_size >= n or train_size < cfg.batch_size:
        raise ValueError(f"{model_name} training on {dataset.name!r}: {n} transitions give "
                         f"train_size={train_size} (holdout {n - train_size}); need a holdout and at least "
                         f"batch_size={cfg.batch_size} training transitions")
    return train_size


def train_adm(dataset: OfflineDataset, cfg: ADMTrainConfig, model_cfg: ADMConfig | None = None,
              device: str | torch.device = "cpu", generator: torch.Generator | None = None,
              sampler: WindowSampler | None = None, progress=None,
              batch_generator: torch.Generator | None = None, checkpoint=None
              ) -> tuple[AnyStepDynamics, dict]:
    """Train a fresh ADM on ``dataset``; returns the best snapshot and diagnostics.

    ``generator`` draws each minibatch's k (on the host: it picks the window length); ``batch_generator``
    draws the windows on the data's device (default: :func:`benchmark.rl.buffers.index_generator` of
    ``generator``, which on the CPU is ``generator`` itself).

    ``info``: ``holdout_mse`` (mean over k of the restored snapshot's per-k losses, the code's returned
    "model loss"), ``holdout_mse_k`` (list, k = 1..m), ``history`` (per epoch: train loss and per-k
    holdout MSE), ``epochs``, ``steps``, ``stopped`` (``patience`` | ``max_epochs`` | ``max_time``)."""
    device = torch.device(device)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    windows_g = batch_generator if batch_generator is not None else index_generator(g, device)
    m = cfg.max_step
    train_size = checked_train_size(dataset, cfg, "ADM")
    sampler = sampler or WindowSampler(dataset, device)
    batcher = WindowBatcher(sampler, train_size, device)

    model = AnyStepDynamics(dataset.obs_dim, dataset.act_dim, model_cfg).to(device)
    model.set_normalizer(dataset.observations, dataset.actions)
    steps_per_epoch = (train_size // cfg.batch_size) * m

    def train_loss() -> torch.Tensor:
        if cfg.per_sample_k:
            batch = batcher.train_batch_per_sample_k(cfg.batch_size, m, windows_g)
        else:  # the code's rule: one k ~ U{1..m} for the whole minibatch (drawn on the host: it is a shape)
            k = int(torch.randint(1, m + 1, (1,), generator=g, device="cpu"))
            batch = batcher.train_batch(cfg.batch_size, k, windows_g)
        s0, acts, lengths, target = _to(device, *batch)
        mean, logvar = model(s0, acts, lengths)
        return adm_nll_loss(mean, logvar, target, model.max_logvar, model.min_logvar, cfg.logvar_reg)

    if checkpoint is not None:
        checkpoint.track(g, windows_g)
    fit = fit_with_snapshot_rule(
        model, cfg, steps_per_epoch, train_loss,
        lambda: validate_per_k(model, batcher, cfg.batch_size, m, windows_g), progress, checkpoint,
    )
    info = {
        "holdout_mse": fit["holdout_mse"],
        "holdout_mse_k": fit["holdout_mse_k"],
        "epochs": fit["epochs"],
        "steps": fit["steps"],
        "train_size": train_size,
        "holdout_size": len(dataset) - train_size,
        "stopped": fit["stopped"],
        "time_s": fit["time_s"],
        "history": fit["history"],
    }
    return model, info


@torch.no_grad()
def validate_per_k(model: AnyStepDynamics, batcher: WindowBatcher, batch: int, m: int,
                   g: torch.Generator) -> list[float]:
    """One holdout batch per k; MSE of the mean over all obs_dim+1 dims, in the model's current mode
    (train mode during training: dropout active, as in the code)."""
    out = []
    for k in range(1, m + 1):
        s0, acts, _, target = _to(batcher.device, *batcher.holdout_batch(batch, k, g))
        mean, _ = model(s0, acts)
        out.append(((mean - target) ** 2).mean())
    return read_once(torch.stack(out))  # one read per validation


@torch.no_grad()
def holdout_error_per_k(model: AnyStepDynamics, dataset: OfflineDataset, cfg: ADMTrainConfig,
                        n_windows: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Held-out MSE of the mean per k in eval mode, next to the "no change" baseline (delta 0, reward 0)
    on the same windows. Used by the learning test and the analyses."""
    g = torch.Generator().manual_seed(seed)
    train_size = tail_holdout_split(len(dataset), cfg.holdout_fraction, cfg.max_holdout)
    device = model.obs_mu.device
    batcher = WindowBatcher(WindowSampler(dataset, device), train_size, device)
    was = model.training
    model.eval()
    mse, baseline = [], []
    for k in range(1, cfg.max_step + 1):
        s0, acts, _, target = _to(device, *batcher.holdout_batch(n_windows, k, g))
        mean, _ = model(s0, acts)
        mse.append(float(((mean[:, :-1] - target[:, :-1]) ** 2).mean()))
        baseline.append(float((target[:, :-1] ** 2).mean()))
    model.train(was)
    return {"mse_k": mse, "no_change_mse_k": baseline}
