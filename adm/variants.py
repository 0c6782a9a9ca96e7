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
sequence after it has been opened. :func:`adm.rollout.rollout` asks the model for its carry
(``new_carry``), so the fast path is exact for this model too (tested against the per-k loop).

**Fixed k and m.** ``m`` is ``max_arm_step`` of ``admpo-off`` (m in {1, 2, 3, 5, 10, 15, 20}; m = 1 is the
one-step RNN, whose all-k penalty is identically 0). "Fixed k" (our reading of the camera-ready's
"fixed-step models" and E.6's "max backtracking"): the model is trained as ADM on k = 1..m, but every
rollout prediction uses the same backtracking length ``rollout_fixed_k`` (m = max backtracking) instead
of ``k ~ U{1..m}``; the penalty still uses all m predictions.

**The ablation algorithm** ``admpo-off-ablation`` (:class:`ADMPOOffAblation`) is ``admpo-off`` with two
more config fields, so the ablation suites can switch them with ``--set`` on the same per-dataset YAMLs:
``model_variant`` ("adm" | "zero" | "bootrnn") and ``rollout_fixed_k`` (0: uniform k, the code). With the
defaults it IS ``admpo-off`` (same training, same fast rollouts). Other settings roll out with
:func:`ablation_rollout`, a per-step implementation with the same rules as :func:`adm.rollout.rollout`
(stochastic policy action, Gaussian sample, dropout masks from the rollout generator when
``rollout_dropout``, termination masking, ``r - penalty_coef * u``). BootRNN has no any-step predictions;
its penalty is the norm of its own predicted standard deviation over the state dimensions
(``max_aleatoric`` with one model, MOPO's quantifier; our choice, the paper does not say).

Training: :func:`train_adm_variant` runs the official loop (:func:`adm.training.fit_with_snapshot_rule`)
on :class:`adm.training.WindowBatcher` windows with :func:`adm.training.adm_nll_loss` and
:func:`adm.training.validate_per_k`; with ``variant="adm"`` it reproduces
:func:`adm.training.train_adm` exactly (tested), so the variants differ from ADM only in the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from adm.admpo_off import ADMPOOff, ADMPOOffConfig
from adm.bootrnn import BootRNN, train_bootrnn
from adm.model import ADMConfig, AnyStepCarry, AnyStepDynamics
from adm.rollout import RolloutConfig, sample_start_windows
from adm.training import (
    ADMTrainConfig,
    WindowBatcher,
    adm_nll_loss,
    checked_train_size,
    fit_with_snapshot_rule,
    validate_per_k,
)
from adm.uncertainty import get_quantifier, max_aleatoric
from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.buffers import Batch, WindowSampler, index_generator
from benchmark.rl.dataset import OfflineDataset
from benchmark.rl.trainers import read_once

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

    def new_carry(self, m: int, batch: int) -> AnyStepCarry:
        return ZeroInputCarry(self, m, batch)

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

    def push(self, obs: Tensor, act: Tensor, lead: int = 0) -> Tensor:
        features = super().push(obs, act, lead)
        self.state_proj = torch.zeros_like(self.state_proj)  # the projection of a zero state input
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
    windows_g = index_generator(g, device)  # windows drawn on the data's device (g itself on the CPU)
    m = cfg.max_step
    train_size = checked_train_size(dataset, cfg, "ADM")
    batcher = WindowBatcher(WindowSampler(dataset, device), train_size, device)
    model = MODEL_VARIANTS[variant](dataset.obs_dim, dataset.act_dim, model_cfg).to(device)
    model.set_normalizer(dataset.observations, dataset.actions)

    def train_loss() -> Tensor:
        if cfg.per_sample_k:
            batch = batcher.train_batch_per_sample_k(cfg.batch_size, m, windows_g)
        else:
            k = int(torch.randint(1, m + 1, (1,), generator=g, device="cpu"))
            batch = batcher.train_batch(cfg.batch_size, k, windows_g)
        s0, acts, lengths, target = [None if t is None else t.to(device) for t in batch]
        mean, logvar = model(s0, acts, lengths)
        return adm_nll_loss(mean, logvar, target, model.max_logvar, model.min_logvar, cfg.logvar_reg)

    info = fit_with_snapshot_rule(model, cfg, (train_size // cfg.batch_size) * m, train_loss,
                                  lambda: validate_per_k(model, batcher, cfg.batch_size, m, windows_g),
                                  progress)
    info.update(train_size=train_size, holdout_size=len(dataset) - train_size, variant=variant)
    return model, info


# ----- rollouts of the ablation models ----------------------------------------------------------------


@torch.no_grad()
def ablation_rollout(model: AnyStepDynamics, policy: Callable[[Tensor], Tensor], hist_obs: Tensor,
                     hist_act: Tensor, start_obs: Tensor, cfg: RolloutConfig, termination_fn: Callable,
                     generator: torch.Generator | None = None, fixed_k: int = 0) -> tuple[Batch, dict]:
    """Rollouts of ``cfg.length`` steps from m-1 real steps for ADM, :class:`ZeroInputADM` (k ~ U{1..m}
    per step for the batch, or ``fixed_k``) and :class:`adm.bootrnn.BootRNN` (one step from the last m
    pairs, its own predictions fed back). Returns the same transitions and diagnostics as
    :func:`adm.rollout.rollout`."""
    m = cfg.max_step
    if hist_obs.shape[1] != m - 1:
        raise ValueError(f"rollout with max_step m={m} needs m-1={m - 1} history steps, "
                         f"got {hist_obs.shape[1]}")
    if not 0 <= fixed_k <= m:
        raise ValueError(f"rollout_fixed_k must be in 0..m={m}, got {fixed_k}")
    boot = isinstance(model, BootRNN)
    quantifier = max_aleatoric if boot else get_quantifier(cfg.uncertainty)
    device = start_obs.device
    p, blocks, hid = model.cfg.dropout, model.cfg.res_blocks, model.cfg.hidden_dim

    def masks(*shape):
        if not cfg.dropout:
            return None
        return torch.empty(blocks, *shape, hid, device=device).bernoulli_(1.0 - p, generator=generator)

    was_training = model.training
    model.eval()  # dropout only through the explicit masks
    s_hist, a_hist, obs = hist_obs, hist_act, start_obs
    # float64 sums on the device, as Python floats added them; read once at the end
    pen_sum, raw_sum = (torch.zeros((), dtype=torch.float64, device=device) for _ in range(2))
    records = []
    try:
        for _ in range(cfg.length):
            b = obs.shape[0]
            act = policy(obs)
            s_hist = torch.cat([s_hist, obs.unsqueeze(1)], dim=1)[:, -m:]
            a_hist = torch.cat([a_hist, act.unsqueeze(1)], dim=1)[:, -m:]
            if boot:
                mean, logvar = model(s_hist, a_hist, masks=masks(b))
                start = obs
            else:
                k = fixed_k or int(torch.randint(1, m + 1, (1,), generator=generator, device=device))
                mean, logvar = model(s_hist[:, -k], a_hist[:, -k:], masks=masks(b))
                start = s_hist[:, -k]
            noise = torch.randn(mean.shape, generator=generator, device=device)
            sample = mean + noise * (0.5 * logvar).exp()
            next_obs, raw_rew = start + sample[:, :-1], sample[:, -1:]
            rew = raw_rew
            if cfg.penalty_coef != 0:
                if boot:
                    penalty = quantifier(mean[None, :, :-1], logvar[None, :, :-1])
                else:
                    _, logvars, next_means = model.predict_all_k(s_hist, a_hist, masks(m, b))
                    penalty = quantifier(next_means, logvars[..., :-1])
                rew = raw_rew - cfg.penalty_coef * penalty
                pen_sum += penalty.sum().double()
            raw_sum += raw_rew.sum().double()
            done = termination_fn(obs, act, next_obs).reshape(-1, 1)
            records.append({"obs": obs, "act": act, "rew": rew, "next_obs": next_obs, "done": done.float()})
            alive = ~done.squeeze(1)
            if not alive.any():
                break
            s_hist, a_hist, obs = s_hist[alive], a_hist[alive], next_obs[alive]
    finally:
        model.train(was_training)
    out = {key: torch.cat([r[key] for r in records]) for key in records[0]}
    n = max(len(out["obs"]), 1)
    pen_sum, raw_sum, reward, done_frac = read_once(torch.stack(
        [pen_sum, raw_sum, out["rew"].mean().double(), out["done"].mean().double()]))
    info = {"transitions": float(len(out["obs"])), "penalty": pen_sum / n, "raw_reward": raw_sum / n,
            "reward": reward, "done_frac": done_frac,
            "mean_length": len(out["obs"]) / start_obs.shape[0]}
    return out, info


# ----- the ablation algorithm ------------------------------------------------------------------------


ABLATION_MODELS = ("adm", "zero", "bootrnn")


@dataclass
class ADMPOOffAblationConfig(ADMPOOffConfig):
    model_variant: str = "adm"  # adm (ADMPO-OFF) | zero (ADMPO-OFF-zero, E.4) | bootrnn (E.4)
    rollout_fixed_k: int = 0  # 0: k ~ U{1..m} (code); k in 1..m: every prediction backtracks k steps

    def __post_init__(self):
        super().__post_init__()
        if self.model_variant not in ABLATION_MODELS:
            raise ValueError(f"model_variant must be one of {ABLATION_MODELS}, got {self.model_variant!r}")
        if not 0 <= self.rollout_fixed_k <= self.max_arm_step:
            raise ValueError(f"rollout_fixed_k must be in 0..max_arm_step={self.max_arm_step}, "
                             f"got {self.rollout_fixed_k}")


class ADMPOOffAblation(ADMPOOff):
    """``admpo-off`` with the model-variant and fixed-k switches (see the module docstring)."""

    cfg: ADMPOOffAblationConfig

    def train_dynamics(self) -> dict:
        variant = self.cfg.model_variant
        if variant == "adm":
            return super().train_dynamics()
        if variant == "bootrnn":
            self.dynamics, info = train_bootrnn(self.ctx.dataset, self.train_cfg, self.model_cfg, self.device,
                                                self.generator)
        else:
            self.dynamics, info = train_adm_variant(self.ctx.dataset, self.train_cfg, self.model_cfg, variant,
                                                    self.device, self.generator)
        return {"model_holdout_mse": info["holdout_mse"], "model_epochs": info["epochs"],
                "model_steps": info["steps"], "model_stopped": info["stopped"],
                "model_time_s": info["time_s"],
                **{f"model_holdout_mse_k{k + 1}": v for k, v in enumerate(info["holdout_mse_k"])}}

    def rollout(self) -> tuple[Batch, dict]:
        cfg = self.cfg
        if cfg.model_variant == "adm" and cfg.rollout_fixed_k == 0:
            return super().rollout()
        hist_obs, hist_act, start = sample_start_windows(self.windows, cfg.rollout_batch_size,
                                                         cfg.max_arm_step, self.batch_generator)
        return ablation_rollout(self.dynamics, self._policy, hist_obs, hist_act, start, self.rollout_cfg,
                                self.termination_fn, self.rollout_generator, cfg.rollout_fixed_k)


register(
    AlgorithmSpec(
        name="admpo-off-ablation",
        config_cls=ADMPOOffAblationConfig,
        factory=ADMPOOffAblation,
        kind="offline",
        config_dir=Path(__file__).parent / "configs" / "admpo-off",
        description="ADMPO-OFF with ablation switches: model_variant (adm | zero | bootrnn), "
                    "rollout_fixed_k",
        paper="Lin et al., ICLR 2025, camera-ready App. E.4 (BootRNN, ADMPO-OFF-zero), E.6/E.7 (fixed k, m)",
        module=__name__,
    )
)
