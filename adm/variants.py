"""Model variants for the ADMPO ablations (REFERENCE.md 4.6): ADMPO-OFF-zero and its training.

**ADMPO-OFF-zero (camera-ready E.4).** The camera-ready text is not available (REFERENCE.md 0), only its
name and that it is a "model-input design" ablation next to BootRNN. Our interpretation: the any-step
model whose GRU sees the backtracked start state only at its FIRST input step and zeros in the state
slot afterwards, ``[norm(s_t), norm(a_t)], [0, norm(a_{t+1})], ..., [0, norm(a_{t+k-1})]``, instead of
ADM's repeated ``[norm(s_t), norm(a_{t+i})]``. Zero is in the normalised space (the data mean), i.e. the
input carries no state information after the first step. Everything else (head, targets as the delta from
the backtracked state, training, rollouts, penalty) is ADM's.

Because the start state appears only at the first input, the backtrack-(k+1) sequence at the next step is
still the backtrack-k sequence plus one input, so the carried all-k GRU states of
:class:`adm.model.AnyStepCarry` stay exact: :class:`ZeroInputCarry` only zeroes the state slot of every
sequence after it has been opened. :func:`adm.rollout.rollout` builds a plain ``AnyStepCarry``, so run
this model there with ``impl="loop"`` (the per-k path, which calls :meth:`ZeroInputADM.forward`).

**Fixed k and m.** ``m`` is ``max_arm_step`` of ``admpo-off`` (m in {1, 2, 3, 5, 10, 15, 20}; m = 1 is the
one-step RNN, whose all-k penalty is identically 0).

Training: :func:`train_adm_variant` runs the official loop (:func:`adm.bootrnn.fit_with_snapshot_rule`)
on :class:`adm.training.WindowBatcher` windows with :func:`adm.training.adm_nll_loss` and
:func:`adm.training.validate_per_k`; with ``variant="adm"`` it reproduces
:func:`adm.training.train_adm` exactly (tested), so the variants differ from ADM only in the input.
"""

from __future__ import annotations

import torch

from adm.bootrnn import fit_with_snapshot_rule
from adm.model import ADMConfig, AnyStepCarry, AnyStepDynamics
from adm.training import ADMTrainConfig, WindowBatcher, adm_nll_loss, validate_per_k
from benchmark.data.dataset import OfflineDataset
from benchmark.rl.buffers import WindowSampler, tail_holdout_split

Tensor = torch.Tensor


def zero_variant_inputs(norm_start: Tensor, norm_acts: Tensor) -> Tensor:
    """GRU inputs ``[B, k, obs+act]``: the normalised start state at step 0, zeros in its slot after."""
    k = norm_acts.shape[1]
    states = torch.zeros(norm_start.shape[0], k, norm_start.shape[-1], dtype=norm_start.dtype,
                         device=norm_start.device)
    states[:, 0] = norm_start
    return torch.cat([states, norm_acts], dim=-1)


class ZeroInputADM(AnyStepDynamics):
    """ADMPO-OFF-zero's model (see the module docstring); same parameters as ADM."""

    def encode(self, start_obs: Tensor, act_seq: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = zero_variant_inputs(self.norm_obs(start_obs), self.norm_act(act_seq))
        if lengths is None:
            out, _ = self.rnn(x)
            return out[:, -1]
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                         enforce_sorted=False)
        _, h = self.rnn(packed)
        return h[-1]

    def predict_all_k(self, obs_hist: Tensor, act_hist: Tensor, masks: Tensor | None = None):
        m = obs_hist.shape[1]
        carry = ZeroInputCarry(self, m, obs_hist.shape[0])
        for t in range(m):
            carry.push(obs_hist[:, t], act_hist[:, t])
        mean, logvar = self.head(carry.features, masks)
        return mean, logvar, carry.starts + mean[..., :-1]


class ZeroInputCarry(AnyStepCarry):
    """:class:`AnyStepCarry` for :class:`ZeroInputADM`: after a push, the state slot of every open
    sequence is zero, so only the newly opened slot (its first input) sees its start state."""

    def push(self, obs: Tensor, act: Tensor) -> Tensor:
        features = super().push(obs, act)
        self.starts_norm = torch.zeros_like(self.starts_norm)
        return features


MODEL_VARIANTS = {"adm": AnyStepDynamics, "zero": ZeroInputADM}


def train_adm_variant(dataset: OfflineDataset, cfg: ADMTrainConfig, model_cfg: ADMConfig | None = None,
                      variant: str = "zero", device: str | torch.device = "cpu",
                      generator: torch.Generator | None = None, progress=None
                      ) -> tuple[AnyStepDynamics, dict]:
    """Train a fresh any-step model of ``variant`` ("adm" or "zero") exactly as :func:`adm.training.train_adm`
    does (same batches, same random stream, same snapshot rule); returns the restored best snapshot and
    diagnostics."""
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown ADM model variant {variant!r}; expected one of {sorted(MODEL_VARIANTS)}")
    device = torch.device(device)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    m, n = cfg.max_step, len(dataset)
    train_size = tail_holdout_split(n, cfg.holdout_fraction, cfg.max_holdout)
    if train_size >= n or train_size < cfg.batch_size:
        raise ValueError(f"ADM training on {dataset.name!r}: {n} transitions give train_size={train_size}; "
                         f"need a holdout and at least batch_size={cfg.batch_size} training transitions")
    batcher = WindowBatcher(WindowSampler(dataset, "cpu"), train_size, device)
    model = MODEL_VARIANTS[variant](dataset.obs_dim, dataset.act_dim, model_cfg).to(device)
    model.set_normalizer(dataset.observations, dataset.actions)

    def train_loss() -> Tensor:
        if cfg.per_sample_k:
            batch = batcher.train_batch_per_sample_k(cfg.batch_size, m, g)
        else:
            k = int(torch.randint(1, m + 1, (1,), generator=g))
            batch = batcher.train_batch(cfg.batch_size, k, g)
        s0, acts, lengths, target = [None if t is None else t.to(device) for t in batch]
        mean, logvar = model(s0, acts, lengths)
        return adm_nll_loss(mean, logvar, target, model.max_logvar, model.min_logvar, cfg.logvar_reg)

    info = fit_with_snapshot_rule(model, cfg, (train_size // cfg.batch_size) * m, train_loss,
                                  lambda: validate_per_k(model, batcher, cfg.batch_size, m, g), progress)
    info.update(train_size=train_size, holdout_size=n - train_size, variant=variant)
    return model, info
