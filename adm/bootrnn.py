"""BootRNN: the bootstrapping-RNN baseline of the compounding-error figure and the E.4 ablation.

REFERENCE.md 4.1: "a bootstrapping RNN with the same structure as ADM, which predicts ``s_{t+m+1}`` from
the history ``(s_t, a_t, ..., s_{t+m}, a_{t+m})``". Here: the same network as ADM
(:class:`adm.model.AnyStepDynamics`: 3-layer GRU, 4 residual blocks, a Gaussian head with learnable
soft-clamped log-variance bounds, normalisation from the whole buffer), but each GRU input step is a
*different* state with its action, ``[norm(s_i), norm(a_i)]`` for ``i = t-m+1 .. t``, and the output is
one step ahead: the mean and log-variance of ``(s_{t+1} - s_t, r_t)`` (delta from the *latest* state).
In a rollout the model's own predictions enter the history (bootstrapping), so after m steps every
input state is a prediction; ADM instead restarts from a backtracked state with real actions.

Training uses ADM's machinery (REFERENCE.md 1.4-1.5, :mod:`adm.training`): Adam 3e-4, batch 256, the
Gaussian NLL plus the log-variance bound regulariser (:func:`adm.training.adm_nll_loss`), a contiguous
tail holdout of ``min(20%, max_holdout)`` transitions, holdout MSE of the mean after every epoch,
snapshot when it improves, patience 25, best snapshot restored. Windows are exactly ``history`` (= m)
transitions of one episode (:class:`benchmark.rl.buffers.WindowSampler`). An epoch has as many
minibatches as an ADM epoch, ``(train_size // batch) * m``, so the patience rule spends the same
compute. These training settings are ours: the paper gives BootRNN only as "the same structure as ADM"
(REFERENCE.md 4.1) and the official repository has no BootRNN (REFERENCE.md 7), so it is trained as ADM
is, which makes the comparison one of model design, not of training budget. The loop itself is
:func:`adm.training.fit_with_snapshot_rule`, shared with ADM and the ADM input variants of
:mod:`adm.variants`.
"""

from __future__ import annotations

import numpy as np
import torch

from adm.model import ADMConfig, AnyStepDynamics
from adm.training import ADMTrainConfig, adm_nll_loss, checked_train_size, fit_with_snapshot_rule
from benchmark.rl.buffers import WindowSampler, draw_indices, index_generator, tail_holdout_split
from benchmark.rl.dataset import OfflineDataset

Tensor = torch.Tensor


class BootRNN(AnyStepDynamics):
    """``forward(obs_seq [B, L, obs], act_seq [B, L, act]) -> mean, logvar [B, obs+1]`` of
    ``(s_{t+1} - s_t, r_t)`` where ``s_t = obs_seq[:, -1]``. Same parameters as ADM of equal size."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: ADMConfig | None = None, history: int = 5):
        super().__init__(obs_dim, act_dim, cfg)
        if history < 1:
            raise ValueError(f"BootRNN history must be >= 1, got {history}")
        self.history = int(history)

    def encode(self, obs_seq: Tensor, act_seq: Tensor, lengths: Tensor | None = None) -> Tensor:
        if obs_seq.dim() != 3 or obs_seq.shape[:2] != act_seq.shape[:2]:
            raise ValueError(f"BootRNN expects obs_seq [B, L, {self.obs_dim}] and act_seq "
                             f"[B, L, {self.act_dim}], got {tuple(obs_seq.shape)} and {tuple(act_seq.shape)}")
        x = torch.cat([self.norm_obs(obs_seq), self.norm_act(act_seq)], dim=-1)
        out, _ = self.rnn(x)
        return out[:, -1]

    def forward(self, obs_seq: Tensor, act_seq: Tensor, lengths: Tensor | None = None,
                masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.head(self.encode(obs_seq, act_seq), masks)

    @torch.no_grad()
    def step(self, obs_seq: Tensor, act_seq: Tensor, generator: torch.Generator | None = None,
             masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Gaussian sample: ``next_obs [B, obs]``, ``reward [B, 1]``."""
        mean, logvar = self(obs_seq, act_seq, masks=masks)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        sample = mean + noise * (0.5 * logvar).exp()
        return obs_seq[:, -1] + sample[:, :-1], sample[:, -1:]

    @torch.no_grad()
    def dstep(self, obs_seq: Tensor, act_seq: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean prediction: ``next_obs [B, obs]``, ``reward [B, 1]``."""
        mean, _ = self(obs_seq, act_seq, masks=masks)
        return obs_seq[:, -1] + mean[:, :-1], mean[:, -1:]

    def predict_all_k(self, obs_hist, act_hist, masks=None):
        raise TypeError("BootRNN predicts one step from a history; it has no backtracking lengths")


# ----- training ---------------------------------------------------------------------------------------


class HistoryBatcher:
    """Windows of exactly ``length`` transitions of one episode with the one-step target of the last one:
    inputs ``obs [B, L, obs]``, ``act [B, L, act]``, target ``(s'_{last} - s_{last}, r_{last})``."""

    def __init__(self, sampler: WindowSampler, train_size: int, length: int, device: torch.device):
        self.sampler, self.train_size, self.length = sampler, int(train_size), int(length)
        self.device = device
        idx = np.arange(train_size, sampler.n)
        ok = idx[sampler.dist_to_end[train_size:] >= length - 1]
        if len(ok) == 0:
            raise ValueError(f"BootRNN training: no holdout window of {length} transitions in the last "
                             f"{sampler.n - train_size} transitions; use more data or a shorter history")
        self.holdout_starts = torch.as_tensor(ok, dtype=torch.long)

    def windows(self, starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w = self.sampler.gather(starts, self.length)
        target = torch.cat([w["next_obs"][:, -1] - w["obs"][:, -1], w["rew"][:, -1:]], dim=-1)
        return w["obs"].to(self.device), w["act"].to(self.device), target.to(self.device)

    def train_batch(self, batch: int, g: torch.Generator):
        return self.windows(self.sampler.sample_starts(batch, self.length, self.train_size, g))

    def holdout_batch(self, batch: int, g: torch.Generator):
        starts = self.holdout_starts.to(g.device)  # drawn on the generator's device, as training windows
        return self.windows(starts[draw_indices(len(starts), batch, g, g.device)])


def train_bootrnn(dataset: OfflineDataset, cfg: ADMTrainConfig, model_cfg: ADMConfig | None = None,
                  device: str | torch.device = "cpu", generator: torch.Generator | None = None,
                  progress=None, checkpoint=None) -> tuple[BootRNN, dict]:
    """Train a fresh BootRNN with history ``cfg.max_step`` (= m) on ``dataset``; see the module docstring.

    Returns the restored best snapshot and diagnostics (``holdout_mse``: MSE of the mean over the obs_dim+1
    outputs on one holdout batch, as ADM's validation; ``history`` per epoch)."""
    device = torch.device(device)
    g = index_generator(generator if generator is not None else torch.Generator().manual_seed(0), device)
    train_size = checked_train_size(dataset, cfg, "BootRNN")
    batcher = HistoryBatcher(WindowSampler(dataset, device), train_size, cfg.max_step, device)
    model = BootRNN(dataset.obs_dim, dataset.act_dim, model_cfg, history=cfg.max_step).to(device)
    model.set_normalizer(dataset.observations, dataset.actions)

    def train_loss() -> Tensor:
        obs, act, target = batcher.train_batch(cfg.batch_size, g)
        mean, logvar = model(obs, act)
        return adm_nll_loss(mean, logvar, target, model.max_logvar, model.min_logvar, cfg.logvar_reg)

    @torch.no_grad()
    def validate() -> list[float]:
        obs, act, target = batcher.holdout_batch(cfg.batch_size, g)
        mean, _ = model(obs, act)
        return [float(((mean - target) ** 2).mean())]

    steps_per_epoch = (train_size // cfg.batch_size) * cfg.max_step
    if checkpoint is not None:  # a LoopCheckpoint: resumable mid-training (see fit_with_snapshot_rule)
        checkpoint.track(g)
    info = fit_with_snapshot_rule(model, cfg, steps_per_epoch, train_loss, validate, progress, checkpoint)
    info.update(train_size=train_size, holdout_size=len(dataset) - train_size)
    return model, info


@torch.no_grad()
def bootrnn_holdout_mse(model: BootRNN, dataset: OfflineDataset, cfg: ADMTrainConfig, n_windows: int = 1000,
                        seed: int = 0) -> dict[str, float]:
    """Held-out one-step MSE of the mean over state dims (eval mode) and the "no change" baseline."""
    g = torch.Generator().manual_seed(seed)
    train_size = tail_holdout_split(len(dataset), cfg.holdout_fraction, cfg.max_holdout)
    device = model.obs_mu.device
    batcher = HistoryBatcher(WindowSampler(dataset, device), train_size, model.history, device)
    obs, act, target = batcher.holdout_batch(n_windows, g)
    was = model.training
    model.eval()
    mean, _ = model(obs, act)
    model.train(was)
    return {"mse": float(((mean[:, :-1] - target[:, :-1]) ** 2).mean()),
            "no_change_mse": float((target[:, :-1] ** 2).mean())}
