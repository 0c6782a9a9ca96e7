"""The Any-step Dynamics Model (ADM), as the official ADMPO code builds it (REFERENCE.md 1.1-1.4).

Input for backtracking length k: the start state ``s_t`` (normalised) repeated k times, concatenated with
the k normalised actions ``a_t .. a_{t+k-1}``; a 3-layer GRU reads that sequence from a zero hidden state,
its last output goes through 4 residual blocks (Linear, Swish, Dropout, residual add, LayerNorm) and a
linear layer giving the mean and log-variance of ``(s_{t+k} - s_t, r_{t+k-1})``: the state delta from the
*backtracked* start state plus the reward of the last transition. Targets are not normalised.

Dropout sits only in the head, so the GRU part of every backtracking length can be shared (see
:class:`AnyStepCarry`): pushing one (state, action) pair advances the hidden state of every backtracking
length 1..m at once, with m GRU cell steps batched as one call. ``predict_all_k`` and the rollouts in
:mod:`adm.rollout` use it; ``forward`` is the plain per-k pass the official code runs.

Dropout masks can be given explicitly (``head(features, masks)``), so rollouts draw them from their own
generator and the fast and per-k implementations can be compared with identical masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmark.rl.dynamics import soft_clamp
from benchmark.rl.nets import Swish

STD_FLOOR = 1e-12  # official cal_mu_std: a std below this is replaced by 1


class ResBlock(nn.Module):
    """``LayerNorm(x + Dropout(Swish(Linear(x))))``; an explicit dropout mask may replace nn.Dropout."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.activation = Swish()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if mask is None:
            return self.norm(x + self.dropout(y))
        # keep flags (float 0/1), inverted-dropout scaling as nn.Dropout does: x + y * mask / (1 - p)
        return self.norm(torch.addcmul(x, y, mask, value=1.0 / (1.0 - self.p)))


@dataclass
class ADMConfig:
    """Architecture of the any-step model (official defaults)."""

    hidden_dim: int = 200  # 400 for halfcheetah-medium-expert, AntTruncatedObs, HumanoidTruncatedObs
    rnn_layers: int = 3
    res_blocks: int = 4
    dropout: float = 0.1
    max_logvar_init: float = 0.5
    min_logvar_init: float = -10.0


class AnyStepDynamics(nn.Module):
    """ADM: ``forward(start_obs [B, obs], act_seq [B, k, act]) -> mean, logvar [B, obs+1]``."""

    def new_carry(self, m: int, batch: int) -> AnyStepCarry:
        """The carried rollout state for this model (variants with other GRU inputs override it)."""
        return AnyStepCarry(self, m, batch)

    def __init__(self, obs_dim: int, act_dim: int, cfg: ADMConfig | None = None):
        super().__init__()
        cfg = cfg or ADMConfig()
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.out_dim = obs_dim + 1
        self.rnn = nn.GRU(obs_dim + act_dim, cfg.hidden_dim, num_layers=cfg.rnn_layers, batch_first=True)
        self.blocks = nn.ModuleList(ResBlock(cfg.hidden_dim, cfg.dropout) for _ in range(cfg.res_blocks))
        self.out = nn.Linear(cfg.hidden_dim, 2 * self.out_dim)
        # normalisation statistics: non-trainable parameters so they travel in the state dict (as the code)
        self.obs_mu = nn.Parameter(torch.zeros(obs_dim), requires_grad=False)
        self.obs_std = nn.Parameter(torch.ones(obs_dim), requires_grad=False)
        self.act_mu = nn.Parameter(torch.zeros(act_dim), requires_grad=False)
        self.act_std = nn.Parameter(torch.ones(act_dim), requires_grad=False)
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), cfg.max_logvar_init))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), cfg.min_logvar_init))

    # ----- normalisation ------------------------------------------------------------------------
    def set_normalizer(self, observations, actions) -> None:
        """Mean/std of the whole buffer (holdout included, as ``buffer.cal_mu_std``); tiny std -> 1."""
        obs = np.asarray(observations, dtype=np.float64)
        act = np.asarray(actions, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim or act.ndim != 2 or act.shape[1] != self.act_dim:
            raise ValueError(
                f"set_normalizer: expected observations [N, {self.obs_dim}] and actions [N, {self.act_dim}], "
                f"got {obs.shape} and {act.shape}"
            )
        o_std, a_std = obs.std(0), act.std(0)
        o_std[o_std < STD_FLOOR] = 1.0
        a_std[a_std < STD_FLOOR] = 1.0
        dev = self.obs_mu.device
        for param, value in ((self.obs_mu, obs.mean(0)), (self.obs_std, o_std), (self.act_mu, act.mean(0)),
                             (self.act_std, a_std)):
            param.data = torch.as_tensor(value, dtype=torch.float32, device=dev)

    def norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mu) / self.obs_std

    def norm_act(self, act: torch.Tensor) -> torch.Tensor:
        return (act - self.act_mu) / self.act_std

    # ----- network pieces -----------------------------------------------------------------------
    def head(self, features: torch.Tensor, masks: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual blocks + output layer. ``masks``: ``[res_blocks, *features.shape]`` float 0/1 keep flags
        or None (then nn.Dropout applies, i.e. only in train mode). Returns mean and soft-clamped logvar."""
        x = features
        for i, block in enumerate(self.blocks):
            x = block(x, None if masks is None else masks[i])
        mean, logvar = self.out(x).chunk(2, dim=-1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def encode(self, start_obs: torch.Tensor, act_seq: torch.Tensor, lengths: torch.Tensor | None = None):
        """GRU over ``[norm(s), norm(a_i)]``; returns the last valid output ``[B, H]``.

        ``lengths`` (per-sample k, actions right-padded to the longest) uses a packed sequence, whose final
        hidden state is the output at each sample's own last step."""
        k = act_seq.shape[1]
        s = self.norm_obs(start_obs).unsqueeze(1).expand(-1, k, -1)
        x = torch.cat([s, self.norm_act(act_seq)], dim=-1)
        if lengths is None:
            out, _ = self.rnn(x)
            return out[:, -1]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return h[-1]

    def forward(self, start_obs: torch.Tensor, act_seq: torch.Tensor, lengths: torch.Tensor | None = None,
                masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.encode(start_obs, act_seq, lengths), masks)

    # ----- prediction ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, start_obs: torch.Tensor, act_seq: torch.Tensor, generator: torch.Generator | None = None,
             masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian sample: ``next_obs = s + delta``, ``reward [B, 1]`` (the code's ``step``)."""
        mean, logvar = self(start_obs, act_seq, masks=masks)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        sample = mean + noise * (0.5 * logvar).exp()
        return start_obs + sample[:, :-1], sample[:, -1:]

    @torch.no_grad()
    def dstep(self, start_obs: torch.Tensor, act_seq: torch.Tensor,
              masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic mean: ``next_obs``, ``reward [B, 1]`` (the code's ``dstep``)."""
        mean, _ = self(start_obs, act_seq, masks=masks)
        return start_obs + mean[:, :-1], mean[:, -1:]

    def predict_all_k(self, obs_hist: torch.Tensor, act_hist: torch.Tensor, masks: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions for every backtracking length at once from a history of m (state, action) pairs.

        ``obs_hist [B, m, obs]``, ``act_hist [B, m, act]`` (oldest first; the last pair is the current
        state and action). Backtracking length k starts at ``obs_hist[:, -k]`` with actions
        ``act_hist[:, -k:]``. Returns ``mean, logvar [m, B, obs+1]`` (index k-1, delta from that k's start
        state) and the absolute next-state means ``[m, B, obs]``.

        From scratch every k needs its own k cell steps (m(m+1)/2 in all, whichever way they are
        batched), so this runs one GRU pass per k (measured faster on CPU than carrying m pushes) and ONE
        batched head pass. Along a rollout, :class:`AnyStepCarry` reuses the previous step's hidden states
        and needs only m cell steps per step."""
        m = obs_hist.shape[1]
        features = torch.stack([self.encode(obs_hist[:, -k], act_hist[:, -k:]) for k in range(1, m + 1)])
        mean, logvar = self.head(features, masks)
        starts = obs_hist.flip(1).transpose(0, 1)  # [m, B, obs], index k-1 = obs_hist[:, -k]
        return mean, logvar, starts + mean[..., :-1]


class AnyStepCarry:
    """GRU hidden states of every backtracking length 1..m, carried along a trajectory.

    Slot ``i`` holds the sequence that started ``i`` pushes ago, i.e. backtracking length ``k = i + 1``:
    start state ``s_{t-i}`` (raw in ``starts``; the first GRU layer's projection of its normalised form
    in ``state_proj``) and the hidden states after reading actions ``a_{t-i} .. a_t``. Because the start
    state is repeated at every GRU input, the backtrack-(k+1) sequence after the next push is the
    backtrack-k sequence now plus one more input, so a push shifts the slots by one, opens slot 0 from a
    zero hidden state and advances every slot by one GRU time step (:func:`gru_push`). This is exact, not
    an approximation. Only slots that exist are computed: the j-th push (j < m) runs j+1 slots, later
    pushes m.
    """

    def __init__(self, model: AnyStepDynamics, m: int, batch: int):
        p = next(model.parameters())
        self.model, self.max_slots = model, int(m)
        layers, hid = model.cfg.rnn_layers, model.cfg.hidden_dim
        self.hidden = torch.zeros(layers, 0, batch, hid, dtype=p.dtype, device=p.device)  # [L, slots, B, H]
        self.starts = torch.zeros(0, batch, model.obs_dim, dtype=p.dtype, device=p.device)  # [slots, B, obs]
        # first-layer projection of each slot's state input (constant while the slot lives)
        self.state_proj = torch.zeros(0, batch, 3 * hid, dtype=p.dtype, device=p.device)
        self.features = torch.zeros(0, batch, hid, dtype=p.dtype, device=p.device)  # [slots, B, H]

    @property
    def slots(self) -> int:
        """Backtracking lengths available now (``min(pushes, m)``)."""
        return self.starts.shape[0]

    def push(self, obs: torch.Tensor, act: torch.Tensor, lead: int = 0) -> torch.Tensor:
        """Append ``(s_t, a_t)``; return the features ``[lead + slots, B, H]``: ``lead`` unset rows (see
        :func:`gru_push`), then backtracking lengths 1..slots (also kept in ``features``)."""
        model = self.model
        keep = min(self.slots, self.max_slots - 1)  # the oldest slot falls off once m are open
        self.starts = torch.cat([obs.unsqueeze(0), self.starts[:keep]], dim=0)
        s_norm = model.norm_obs(obs).unsqueeze(0)
        self.state_proj = torch.cat([gru_state_projection(model.rnn, s_norm), self.state_proj[:keep]], dim=0)
        self.hidden, led = gru_push(model.rnn, self.state_proj, model.norm_act(act), self.hidden[:, :keep],
                                    lead)
        self.features = led[lead:]
        return led

    def select(self, mask: torch.Tensor) -> None:
        """Keep only the batch rows where ``mask`` is True (drop finished rollouts)."""
        self.hidden = self.hidden[:, :, mask]
        self.starts = self.starts[:, mask]
        self.state_proj = self.state_proj[:, mask]
        self.features = self.features[:, mask]


def gru_push(rnn: nn.GRU, state_proj: torch.Tensor, act_input: torch.Tensor, hidden: torch.Tensor,
             lead: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU time step for ``n`` carried sequences that all read the same action.

    ``state_proj [n, B, 3H]``: the first layer's input projection of each sequence's state part (see
    :func:`gru_state_projection`); ``act_input [B, act]``: the action part of the input, shared;
    ``hidden [L, n-1, B, H]``: the hidden states of sequences 1..n-1, sequence 0 starts from zeros.
    Returns the new hidden states ``[L, n, B, H]`` and the last layer's output ``[lead + n, B, H]`` whose
    first ``lead`` rows are left unset for the caller (the rollout puts its sampled feature there so the
    head reads one contiguous batch without a copy).

    The equations of :class:`torch.nn.GRU` (gate order r, z, n), arranged to skip work the carry makes
    redundant: the state part of the first layer's input is projected once per sequence (not at every
    step), the action part once for all sequences, and the new sequence needs no hidden-to-hidden
    product (its hidden state is zero). ``tanh(x)`` is computed as ``2 sigmoid(2x) - 1`` (about 3x
    faster on CPU). Every layer writes straight into one preallocated buffer (no concatenation).
    Equal to ``nn.GRU`` to float tolerance (tests/test_adm_model.py)."""
    n, b, _ = state_proj.shape
    width = rnn.hidden_size
    # no autograd: write into one buffer; autograd: fresh tensors (a layer's output is saved for the
    # backward pass, so it must not share a buffer that later layers write into)
    grad = torch.is_grad_enabled()
    buf = None if grad else torch.empty(rnn.num_layers, lead + n, b, width, dtype=state_proj.dtype,
                                        device=state_proj.device)
    layers = []
    x = None
    for layer in range(rnn.num_layers):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        if not grad:  # the r, z gates only need b_ih + b_hh: add it once to the input projection
            b_ih = torch.cat([b_ih[: 2 * width] + b_hh[: 2 * width], b_ih[2 * width :]])
        if layer == 0:
            obs_dim = w_ih.shape[1] - act_input.shape[-1]
            gi = state_proj + torch.addmm(b_ih, act_input, w_ih[:, obs_dim:].t())
        else:
            gi = torch.addmm(b_ih, x.reshape(n * b, width), w_ih.t()).view(n, b, 3 * width)
        h_old = hidden[layer] if n > 1 else None
        if not grad:
            x = buf[layer, lead:]
            _gru_layer_inplace(gi, h_old, w_hh, b_hh, x)
            continue
        # the sequence opened now: h = 0, W_hh h = 0
        new = [_gru_gates(gi[:1], b_hh, None)]
        if n > 1:
            gh = torch.addmm(b_hh, h_old.reshape((n - 1) * b, width), w_hh.t()).view(n - 1, b, -1)
            new.append(_gru_gates(gi[1:], gh, h_old))
        x = torch.cat(new)
        layers.append(x)
    if grad:
        stacked = torch.stack(layers)
        return stacked, torch.cat([x.new_empty(lead, b, width), x]) if lead else x
    return buf[:, lead:], buf[-1]


def _gru_gates(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
    """``h' = (1 - z) n + z h`` from the input and hidden projections (``h = None``: zero state);
    autograd-safe (no in-place step)."""
    width = gi.shape[-1] // 3
    gates = torch.sigmoid(gi[..., : 2 * width] + gh[..., : 2 * width])
    reset, update = gates[..., :width], gates[..., width:]
    cand = 2 * torch.sigmoid(2 * torch.addcmul(gi[..., 2 * width :], reset, gh[..., 2 * width :])) - 1
    return cand - update * cand if h is None else torch.lerp(cand, h, update)


def _gru_layer_inplace(gi: torch.Tensor, h_old: torch.Tensor | None, w_hh: torch.Tensor, b_hh: torch.Tensor,
                       out: torch.Tensor) -> None:
    """One GRU layer's step without autograd, into ``out [n, B, H]``: ``gi [n, B, 3H]`` is the input
    projection whose r, z part already holds ``b_hh``; ``h_old [n-1, B, H]`` the hidden states of
    sequences 1..n-1 (sequence 0 is new: zero state). The r, z pre-activations of the old sequences are
    accumulated by the matmul onto their input projection (no separate sum), every step is in place."""
    n, b, three = gi.shape
    width = three // 3
    # the new sequence: W_hh h = 0, so r, z = sigmoid(gi_rz) and n = tanh(gi_n + r b_hn)
    rz = gi[:1, :, : 2 * width].sigmoid_()
    cand = torch.addcmul(gi[:1, :, 2 * width :], rz[..., :width], b_hh[2 * width :])
    cand.mul_(2).sigmoid_().mul_(2).sub_(1)  # tanh(x) = 2 sigmoid(2x) - 1, about 3x faster on CPU
    torch.addcmul(cand, rz[..., width:], cand, value=-1.0, out=out[:1])  # (1 - z) n
    if h_old is None:
        return
    h_flat = h_old.reshape((n - 1) * b, width)
    rz = torch.addmm(gi[1:, :, : 2 * width].reshape((n - 1) * b, 2 * width), h_flat, w_hh[: 2 * width].t())
    rz = rz.sigmoid_().view(n - 1, b, 2 * width)
    gh_n = torch.addmm(b_hh[2 * width :], h_flat, w_hh[2 * width :].t()).view(n - 1, b, width)
    cand = gh_n.mul_(rz[..., :width]).add_(gi[1:, :, 2 * width :])
    cand.mul_(2).sigmoid_().mul_(2).sub_(1)
    torch.lerp(cand, h_old, rz[..., width:], out=out[1:])  # (1 - z) n + z h


def gru_state_projection(rnn: nn.GRU, state_inputs: torch.Tensor) -> torch.Tensor:
    """First-layer input projection of the state part of a GRU input ``[..., obs] -> [..., 3H]``."""
    w_ih = rnn.weight_ih_l0
    return torch.matmul(state_inputs, w_ih[:, : state_inputs.shape[-1]].t())


def param_count(model: nn.Module) -> int:
    """Trainable parameters (the normalisation statistics are excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
