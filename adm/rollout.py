"""Model rollouts with the any-step model (ADM-Roll, REFERENCE.md 1.6-1.7).

Each rollout starts from m-1 real (state, action) pairs of one episode and the state that follows them.
At every model step: a stochastic policy action is appended to the history; a backtracking length
``k ~ U{1..m}`` is drawn (one k for the whole batch, the code's default, or one per sample); the
Gaussian sample of the k-step prediction from ``s_hist[-k]`` with actions ``a_hist[-k:]`` is the next
state and reward; with a penalty, the m deterministic next-state means (k = 1..m) feed an uncertainty
quantifier and ``r - penalty_coef * u`` is stored. The termination function decides ``done``; the
terminal transition is kept and that rollout stops (later steps are masked, as in the code).

Two implementations of exactly the same computation:

* ``carry`` (fast): :class:`adm.model.AnyStepCarry` advances the GRU hidden states of all m
  backtracking lengths with m cell steps per model step (:func:`adm.model.gru_push`), then ONE head
  pass for the sampled k and the m penalty means together.
* ``loop`` (reference): the official algorithm, one GRU pass over k inputs per backtracking length
  (m(m+1)/2 cell steps for the penalty plus k for the sample).

All randomness except the policy's (k, dropout masks, Gaussian noise) is drawn from the rollout's
generator (masks from streams seeded by it, see :class:`_Randomness`) in the same order by both, so
with the same seeds they return the same transitions to float tolerance.
Dropout (p = 0.1, head only) is active at rollout time as in the code, which never calls ``eval()``;
``dropout=False`` switches it off. Each sampled prediction and each penalty mean gets its own dropout
mask, as the code's separate ``step``/``dstep`` calls do.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from adm.model import AnyStepDynamics
from adm.uncertainty import get_quantifier
from benchmark.progress import Progress
from benchmark.rl.buffers import Batch, WindowSampler
from benchmark.rl.trainers import read_once

K_MODES = ("batch", "sample")
IMPLS = ("auto", "carry", "loop")


@dataclass
class RolloutConfig:
    max_step: int = 10  # m: backtracking lengths 1..m
    length: int = 1  # H: model steps per rollout
    penalty_coef: float = 1.0  # beta; 0 disables the penalty (ADMPO-ON)
    uncertainty: str = "mean_std"  # see adm.uncertainty.QUANTIFIERS
    k_mode: str = "batch"  # "batch": one k per step for the whole batch (code); "sample": one k per rollout
    dropout: bool = True  # MC dropout in the head at rollout time (code: always on)
    impl: str = "auto"  # carry | loop | auto (carry when the penalty needs all k, loop otherwise)
    chunk_size: int = 1000  # rollouts processed together: bounds memory, keeps matmuls in cache on CPU

    def __post_init__(self):
        if self.k_mode not in K_MODES:
            raise ValueError(f"rollout k_mode must be one of {K_MODES}, got {self.k_mode!r}")
        if self.impl not in IMPLS:
            raise ValueError(f"rollout impl must be one of {IMPLS}, got {self.impl!r}")
        if self.max_step < 1 or self.length < 1:
            raise ValueError(f"rollout needs max_step >= 1 and length >= 1, got {self.max_step}, "
                             f"{self.length}")
        get_quantifier(self.uncertainty)


# Rollouts processed together on a device other than the CPU: every start of a rollout in one chunk up to
# this many (ours: 50k starts x m=10 keep about 3 GB of masks and carried GRU states at hidden 200, which
# fits any current GPU; ADMPO-ON's 100k online starts go in two chunks)
DEVICE_ROLLOUT_CHUNK = 50_000


def rollout_chunk_for(device: str, starts: int, cpu_chunk: int) -> int:
    """The rollout chunk size a config leaves to the device (``rollout_chunk_size: null``): ``cpu_chunk`` on
    the CPU, where chunks are sized for its cache; on any other device all ``starts`` in one chunk (at most
    :data:`DEVICE_ROLLOUT_CHUNK`), since smaller chunks only cut a GPU's work into serial pieces. The chunk
    size orders the policy's noise draws, so it is part of the resolved config (and its hash)."""
    on_cpu = str(device).split(":")[0] == "cpu"
    return int(cpu_chunk) if on_cpu else max(1, min(int(starts), DEVICE_ROLLOUT_CHUNK))


def sample_start_windows(sampler: WindowSampler, batch: int, m: int, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rollout starts: m-1 real transitions of one episode and the state after them.

    Returns ``hist_obs [B, m-1, obs]``, ``hist_act [B, m-1, act]``, ``start_obs [B, obs]``. With m = 1 (no
    history; the code cannot run it) the start is the next state of a uniformly drawn transition."""
    w = sampler.sample(batch, max(m - 1, 1), generator=generator)
    if m == 1:
        return w["obs"][:, :0], w["act"][:, :0], w["next_obs"][:, -1]
    return w["obs"], w["act"], w["next_obs"][:, -1]


class _Randomness:
    """Draws one model step's k, dropout masks and noise in a fixed order, shared by both impls.

    Dropout masks are most of the random numbers of a rollout (``res_blocks x (m+1) x B x hidden`` per
    step), so they come from ``MASK_STREAMS`` generators of their own (seeded from the rollout's
    generator), each filling a fixed share of the blocks; with more than one torch thread on CPU the shares
    are filled concurrently. The draws do not depend on the thread count.

    On CPU the streams are numpy ``SFC64`` bit generators: a keep flag is ``u32 >= round(p 2^32)`` on
    32 raw random bits, so ``P(keep) = 1 - p`` to within 2^-33 (torch's float ``uniform_ < 1 - p`` is exact
    only to 2^-25), and it takes about half the time of torch's CPU ``uniform_`` and
    compare (``tests/bench_adm.py::test_dropout_mask_draw``: medians 9.6 vs 19.3 ms per step and chunk). On
    other devices the masks come from torch generators on that device."""

    MASK_STREAMS = 2
    _pool: ThreadPoolExecutor | None = None

    def __init__(self, model: AnyStepDynamics, cfg: RolloutConfig, generator: torch.Generator | None):
        self.model, self.cfg, self.g = model, cfg, generator
        self.device = model.obs_mu.device
        # "batch": one k per model step for ALL rollouts (the code), drawn up front so that every chunk
        # of the batch uses the same k at the same step
        self.batch_ks = None
        if cfg.k_mode == "batch":
            self.batch_ks = torch.randint(1, cfg.max_step + 1, (cfg.length,), generator=generator,
                                          device=self.device)
        # the loop impl slices histories by k: read on the host once, not at every model step
        self.batch_ks_host = read_once(self.batch_ks) if self.batch_ks is not None else None
        seeds = torch.randint(0, 2**62, (self.MASK_STREAMS,), generator=generator, device=self.device)
        if self.device.type == "cpu":
            self.mask_gens = [np.random.SFC64(int(s)) for s in seeds]
            self.drop_threshold = np.uint32(round(model.cfg.dropout * 2**32))
        else:
            self.mask_gens = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]

    def draw_k(self, batch: int, step: int) -> torch.Tensor:
        if self.batch_ks is not None:
            return self.batch_ks[step].expand(batch)
        return torch.randint(1, self.cfg.max_step + 1, (batch,), generator=self.g, device=self.device)

    def _fill(self, share: torch.Tensor, gen) -> None:
        """Keep flags (float 0/1) into ``share``: floats, since multiplying by a bool mask converts it
        first (6x slower on CPU)."""
        if isinstance(gen, np.random.SFC64):
            n = share.numel()
            bits = gen.random_raw((n + 1) // 2).view(np.uint32)[:n]
            np.greater_equal(bits, self.drop_threshold, out=share.numpy().reshape(-1), casting="unsafe")
        else:  # U[0,1) < 1 - p: the law of bernoulli_, about 2x faster
            share.uniform_(generator=gen).lt_(1.0 - self.model.cfg.dropout)

    def masks(self, *shape: int) -> torch.Tensor | None:
        if not self.cfg.dropout:
            return None
        m = self.model
        flags = torch.empty(m.cfg.res_blocks, *shape, m.cfg.hidden_dim, device=self.device)
        shares = flags.tensor_split(self.MASK_STREAMS)
        if self.device.type == "cpu" and torch.get_num_threads() > 1:
            if _Randomness._pool is None:
                _Randomness._pool = ThreadPoolExecutor(self.MASK_STREAMS - 1)
            jobs = [_Randomness._pool.submit(self._fill, share, g)
                    for share, g in zip(shares[1:], self.mask_gens[1:], strict=True)]
            self._fill(shares[0], self.mask_gens[0])
            for job in jobs:
                job.result()
        else:
            for share, g in zip(shares, self.mask_gens, strict=True):
                self._fill(share, g)
        return flags

    def noise(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, self.model.out_dim, generator=self.g, device=self.device)


def _gaussian(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return mean + noise * (0.5 * logvar).exp()


@torch.no_grad()
def rollout(model: AnyStepDynamics, policy: Callable[[torch.Tensor], torch.Tensor], hist_obs: torch.Tensor,
            hist_act: torch.Tensor, start_obs: torch.Tensor, cfg: RolloutConfig,
            termination_fn: Callable, generator: torch.Generator | None = None) -> tuple[Batch, dict]:
    """Roll out ``start_obs`` for ``cfg.length`` steps; see the module docstring.

    ``policy(obs) -> action`` must be the stochastic policy. Returns flat transitions ``obs, act, rew
    (penalised), next_obs, done`` (only the generated steps, finished rollouts masked) and diagnostics."""
    m = cfg.max_step
    if hist_obs.shape[1] != m - 1:
        raise ValueError(f"rollout with max_step m={m} needs m-1={m - 1} history steps, "
                         f"got {hist_obs.shape[1]}")
    impl = cfg.impl if cfg.impl != "auto" else ("carry" if cfg.penalty_coef != 0 else "loop")
    step_fn = _rollout_chunk_carry if impl == "carry" else _rollout_chunk_loop
    rand = _Randomness(model, cfg, generator)
    parts, infos = [], []
    was_training = model.training
    model.eval()  # dropout comes only from the explicit masks drawn by `rand`
    bar = Progress(f"ADM rollout (H={cfg.length})", total=start_obs.shape[0], unit="start")
    try:
        for lo in range(0, start_obs.shape[0], cfg.chunk_size):
            hi = lo + cfg.chunk_size
            out, info = step_fn(model, policy, hist_obs[lo:hi], hist_act[lo:hi], start_obs[lo:hi], cfg,
                                termination_fn, rand)
            parts.append(out)
            infos.append(info)
            bar.update(len(start_obs[lo:hi]))
    finally:
        bar.close()
        model.train(was_training)
    transitions = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    n = max(len(transitions["obs"]), 1)
    nan = torch.full((), float("nan"), dtype=torch.float64, device=start_obs.device)
    means = [transitions[key].mean().double() if len(transitions[key]) else nan for key in ("rew", "done")]
    # every chunk's sums and the means in one read (float64 sums: as Python floats added them)
    sums = read_once(torch.stack([torch.stack([i["penalty_sum"], i["raw_reward_sum"]]) for i in infos]))
    reward, done_frac = read_once(torch.stack(means))
    info = {
        "transitions": float(len(transitions["obs"])),
        "penalty": sum(s[0] for s in sums) / n,
        "raw_reward": sum(s[1] for s in sums) / n,
        "reward": reward,
        "done_frac": done_frac,
        "mean_length": len(transitions["obs"]) / start_obs.shape[0],
    }
    return transitions, info


def _finish(records: list[dict[str, torch.Tensor]], penalty_sum: torch.Tensor, raw_sum: torch.Tensor
            ) -> tuple[Batch, dict]:
    out = {key: torch.cat([r[key] for r in records]) for key in records[0]}
    return out, {"penalty_sum": penalty_sum, "raw_reward_sum": raw_sum}


def _step_outputs(obs, act, next_obs, raw_rew, penalty, cfg, termination_fn):
    rew = raw_rew - cfg.penalty_coef * penalty if penalty is not None else raw_rew
    done = termination_fn(obs, act, next_obs).reshape(-1, 1)  # torch in, torch out: on the obs' device
    record = {"obs": obs, "act": act, "rew": rew, "next_obs": next_obs, "done": done.float()}
    return record, done.squeeze(1)


def _sums(device) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk's penalty and raw-reward sums: float64 on the device, read once per rollout."""
    return (torch.zeros((), dtype=torch.float64, device=device),
            torch.zeros((), dtype=torch.float64, device=device))


def _survivors(done: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(alive, how many)``: the one read of a model step (which rollouts go on sets the next shapes)."""
    alive = ~done
    return alive, int(alive.sum())


def _keep_step(records: list, sums: tuple[torch.Tensor, torch.Tensor], obs, act, next_obs, raw_rew, penalty,
               cfg, termination_fn) -> tuple[torch.Tensor, int]:
    """One model step's bookkeeping, shared by both rollout loops: add to the chunk's penalty and raw-reward
    sums (in place), append the step's record, and return which rollouts go on (``_survivors``)."""
    pen_sum, raw_sum = sums
    if penalty is not None:
        pen_sum += penalty.sum().double()
    raw_sum += raw_rew.sum().double()
    record, done = _step_outputs(obs, act, next_obs, raw_rew, penalty, cfg, termination_fn)
    records.append(record)
    return _survivors(done)


def _rollout_chunk_carry(model, policy, hist_obs, hist_act, obs, cfg, termination_fn, rand):
    m = cfg.max_step
    need_all = cfg.penalty_coef != 0
    quantifier = get_quantifier(cfg.uncertainty)
    carry = model.new_carry(m, obs.shape[0])
    for t in range(m - 1):  # warm up on the real history
        carry.push(hist_obs[:, t], hist_act[:, t])
    records, (pen_sum, raw_sum) = [], _sums(obs.device)
    for step in range(cfg.length):
        b = obs.shape[0]
        act = policy(obs)
        # one head pass for the sampled k and, for the penalty, every k (each with its own masks): the
        # carry leaves row 0 free in front of the m features for the sampled one
        head_in = carry.push(obs, act, lead=1 if need_all else 0)
        features = carry.features  # [m, B, H]
        k = rand.draw_k(b, step)
        rows = torch.arange(b, device=obs.device)
        masks = rand.masks(1 + m if need_all else 1, b)  # [blocks, 1 (+ m), B, H]: the sample (+ each k)
        noise = rand.noise(b)
        if need_all:
            head_in[0] = features[k - 1, rows]
        else:
            head_in = features[k - 1, rows].unsqueeze(0)
        head_means, head_logvars = model.head(head_in, masks)
        sample = _gaussian(head_means[0], head_logvars[0], noise)
        next_obs, raw_rew = carry.starts[k - 1, rows] + sample[:, :-1], sample[:, -1:]
        penalty = None
        if need_all:
            means, logvars = head_means[1:], head_logvars[1:]
            next_means = carry.starts + means[..., :-1]
            penalty = quantifier(next_means, logvars[..., :-1])
        alive, n_alive = _keep_step(records, (pen_sum, raw_sum), obs, act, next_obs, raw_rew, penalty, cfg,
                                    termination_fn)
        if n_alive == 0:
            break
        if n_alive < b:
            carry.select(alive)
            next_obs = next_obs[alive]
        obs = next_obs
    return _finish(records, pen_sum, raw_sum)


def _rollout_chunk_loop(model, policy, hist_obs, hist_act, obs, cfg, termination_fn, rand):
    m = cfg.max_step
    need_all = cfg.penalty_coef != 0
    quantifier = get_quantifier(cfg.uncertainty)
    s_hist, a_hist = hist_obs, hist_act
    records, (pen_sum, raw_sum) = [], _sums(obs.device)
    for step in range(cfg.length):
        b = obs.shape[0]
        act = policy(obs)
        s_hist = torch.cat([s_hist, obs.unsqueeze(1)], dim=1)[:, -m:]
        a_hist = torch.cat([a_hist, act.unsqueeze(1)], dim=1)[:, -m:]
        k = rand.draw_k(b, step)
        masks = rand.masks(1 + m if need_all else 1, b)  # the same draws as the carry's
        s_masks = None if masks is None else masks[:, 0]
        noise = rand.noise(b)
        if cfg.k_mode == "batch":
            kk = rand.batch_ks_host[step]
            mean, logvar = model(s_hist[:, -kk], a_hist[:, -kk:], masks=s_masks)
            start = s_hist[:, -kk]
        else:  # one GRU pass per k over the rows that drew it
            mean = torch.empty(b, model.out_dim, device=obs.device)
            logvar = torch.empty_like(mean)
            start = torch.empty_like(obs)
            for kk in range(1, m + 1):
                sel = k == kk
                if sel.any():
                    mk = None if s_masks is None else s_masks[:, sel]
                    mean[sel], logvar[sel] = model(s_hist[sel, -kk], a_hist[sel, -kk:], masks=mk)
                    start[sel] = s_hist[sel, -kk]
        sample = _gaussian(mean, logvar, noise)
        next_obs, raw_rew = start + sample[:, :-1], sample[:, -1:]
        penalty = None
        if need_all:
            p_masks = None if masks is None else masks[:, 1:]
            means, logvars = [], []
            for kk in range(1, m + 1):
                mk = None if p_masks is None else p_masks[:, kk - 1]
                mu, lv = model(s_hist[:, -kk], a_hist[:, -kk:], masks=mk)
                means.append(s_hist[:, -kk] + mu[:, :-1])
                logvars.append(lv[:, :-1])
            penalty = quantifier(torch.stack(means), torch.stack(logvars))
        alive, n_alive = _keep_step(records, (pen_sum, raw_sum), obs, act, next_obs, raw_rew, penalty, cfg,
                                    termination_fn)
        if n_alive == 0:
            break
        if n_alive < b:
            s_hist, a_hist, next_obs = s_hist[alive], a_hist[alive], next_obs[alive]
        obs = next_obs
    return _finish(records, pen_sum, raw_sum)
