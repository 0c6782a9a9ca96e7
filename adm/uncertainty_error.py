"""Model uncertainty vs true model error (Figure 4): :func:`uncertainty_vs_error`.

ADM and the ensemble are trained on the training episodes of the compounding-error split
(:func:`benchmark.rl.dataset.split_episodes`, ``heldout_fraction`` of the episodes left out, seeded), so a
Figure 4 job uses the very models its Figure 2 job fitted (shared, not fitted twice: :func:`adm.analysis.
train_models`); rollout starts come from the same training episodes. Points come from model rollouts of
``horizon`` steps starting from ``m - 1`` real history steps, under three action sources: ``random``
(uniform in the action box), ``behavior`` (the dataset's recorded actions of the same segment, i.e. the
behaviour policy replayed) and ``learned`` (a policy passed in; :func:`adm.analysis_jobs.run_uncertainty`
trains BC, :mod:`baselines.bc`, briefly on the data, and says so). Each model rolls out with its own
rollout rule (ADM-Roll: uniform k, Gaussian sample; ensemble: random elite, Gaussian sample) and each
visited ``(s, a)`` gives a point:

* error: ``|| mean prediction - s'_true ||_2`` (raw observation space), where ``s'_true`` comes from the
  simulator reset to ``s`` (:class:`SimulatorOracle`); the mean prediction is the mixture mean over k
  for ADM and over the elites for the ensemble;
* uncertainty: ``adm`` the code's quantifier ``sqrt(mean_d Var_k mu_k)``, ``adm-eq4`` the paper's Eq. 4
  (L1 of the mixture variance over k), both from the same rollouts (:mod:`adm.uncertainty`, dropout off);
  ``ensemble`` MOPO's ``max_i ||sigma_i||_2`` over all members (:func:`benchmark.rl.dynamics.
  penalty_max_std_norm`).

Pearson and Spearman correlations per model and source and pooled (``source: "all"``). Points whose input
state has a velocity at the hopper/walker2d observation clip are dropped and counted (see
:class:`SimulatorOracle`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace

import mujoco
import numpy as np
import torch
from scipy import stats

from adm.analysis import AnalysisSizes, train_models
from adm.model import AnyStepDynamics
from adm.uncertainty import mean_std, mixture_l1
from benchmark.envs import make_env
from benchmark.rl.buffers import WindowSampler
from benchmark.rl.dataset import OfflineDataset, segment_starts, split_episodes, truncate
from benchmark.rl.dynamics import EnsembleDynamics, penalty_max_std_norm
from benchmark.rl.termination import get_termination_fn

Tensor = torch.Tensor
UNCERTAINTY_SOURCES = ("random", "behavior", "learned")


# ----- simulator ground truth -----------------------------------------------------------------------------


# Hopper-v4 and Walker2d-v4 observe ``clip(qvel, -10, 10)`` (gymnasium ``_get_obs``); HalfCheetah does not
VELOCITY_CLIP = {"hopper": 10.0, "walker2d": 10.0, "neorl-hopper": 10.0, "neorl-walker2d": 10.0}


class SimulatorOracle:
    """True next observation of a MuJoCo env reset to an observed state.

    The observation must be ``[qpos[n_hidden:], qvel]`` (hopper, walker2d, halfcheetah without x: one hidden
    coordinate, set to 0, which does not affect the dynamics since they are translation invariant; NeoRL
    envs keep x; the truncated Ant/Humanoid drop x and y). MuJoCo's data is reset before every query so the
    answer does not depend on earlier queries (no solver warm start).

    Hopper/Walker2d clip velocities to [-10, 10] in the observation: a state with a velocity at the bound
    does not determine the true velocity, so :meth:`reconstructible` is False for it and the analyses drop
    such points (measured here: 75% of uniform-random walker2d states have a clipped velocity; for
    unclipped states the reset reproduces recorded next observations to float32 precision)."""

    def __init__(self, env_key: str):
        self.velocity_clip = VELOCITY_CLIP.get(env_key)
        self.env = make_env(env_key)
        self.u = self.env.unwrapped
        self.nq, self.nv = self.u.model.nq, self.u.model.nv
        obs_dim = self.env.observation_space.shape[0]
        self.n_hidden = self.nq + self.nv - obs_dim
        if not 0 <= self.n_hidden <= self.nq:
            raise ValueError(f"{env_key}: observation of size {obs_dim} is not [qpos[k:], qvel] "
                             f"(nq={self.nq}, nv={self.nv}); no simulator reset for it")
        self.env.reset(seed=0)

    def reconstructible(self, obs: np.ndarray) -> np.ndarray:
        """Bool ``[B]``: finite and, where the env clips velocities, every velocity strictly inside the
        bound (float32 margin)."""
        obs = np.asarray(obs, dtype=np.float64).reshape(-1, self.nq - self.n_hidden + self.nv)
        ok = np.isfinite(obs).all(axis=1)
        if self.velocity_clip is not None:
            vel = obs[:, self.nq - self.n_hidden :]
            ok &= (np.abs(vel) < self.velocity_clip * (1 - 1e-6)).all(axis=1)
        return ok

    def step(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """``(next_obs, reward, terminated)`` of the env set to ``obs`` and stepped with ``act``."""
        obs = np.asarray(obs, dtype=np.float64)
        n_pos = self.nq - self.n_hidden
        qpos = np.concatenate([np.zeros(self.n_hidden), obs[:n_pos]])
        mujoco.mj_resetData(self.u.model, self.u.data)
        self.u.set_state(qpos, obs[n_pos:])
        next_obs, reward, terminated, _, _ = self.u.step(np.asarray(act, dtype=np.float64))
        return np.asarray(next_obs, dtype=np.float64), float(reward), bool(terminated)

    def next_obs(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Batched ``[B, obs]`` -> ``[B, obs]``."""
        out = [self.step(o, a)[0] for o, a in zip(obs, act)]
        return np.stack(out) if out else np.zeros((0, self.nq - self.n_hidden + self.nv))


# ----- uncertainty vs error -------------------------------------------------------------------------------


@torch.no_grad()
def adm_points(model: AnyStepDynamics, hist_obs: Tensor, hist_act: Tensor, start: Tensor, actions: Callable,
               horizon: int, termination_fn, g: torch.Generator):
    """ADM-Roll rollouts (k ~ U{1..m} per step, Gaussian sample); yields per step ``obs, act, mean next
    state (mixture over k), {"adm": code quantifier, "adm-eq4": Eq. 4}``."""
    m = hist_obs.shape[1] + 1
    s_hist, a_hist, obs = hist_obs, hist_act, start
    step_idx = torch.arange(len(obs))  # rows of the original batch still alive
    for t in range(horizon):
        act = actions(obs, t, step_idx)
        s_all = torch.cat([s_hist, obs.unsqueeze(1)], dim=1)[:, -m:]
        a_all = torch.cat([a_hist, act.unsqueeze(1)], dim=1)[:, -m:]
        mean, logvar, next_means = model.predict_all_k(s_all, a_all)  # [m', B, ...] for k = 1..m'
        u = {"adm": mean_std(next_means).squeeze(-1),
             "adm-eq4": mixture_l1(next_means, logvar[..., :-1]).squeeze(-1)}
        yield obs, act, next_means.mean(0), u
        k = int(torch.randint(1, next_means.shape[0] + 1, (1,), generator=g))
        noise = torch.randn(next_means.shape[1:], generator=g)
        nxt = next_means[k - 1] + noise * (0.5 * logvar[k - 1, :, :-1]).exp()
        alive = ~termination_fn(obs, act, nxt).reshape(-1) & torch.isfinite(nxt).all(-1)
        s_hist, a_hist = s_all[alive], a_all[alive]
        obs, step_idx = nxt[alive], step_idx[alive]
        if len(obs) == 0:
            return


@torch.no_grad()
def ensemble_points(model: EnsembleDynamics, start: Tensor, actions: Callable, horizon: int,
                    g: torch.Generator):
    """MBPO rollouts (random elite, Gaussian sample); yields ``obs, act, elite-mean next state,
    {"ensemble": max_i ||sigma_i||_2}``."""
    obs = start
    step_idx = torch.arange(len(obs))
    for t in range(horizon):
        act = actions(obs, t, step_idx)
        nxt, _, terminal, info = model.step(obs, act, g)
        u = {"ensemble": penalty_max_std_norm(info["std"]).squeeze(-1)}
        yield obs, act, info["mean"][model.elites, :, :-1].mean(0), u
        alive = ~terminal.reshape(-1) & torch.isfinite(nxt).all(-1)
        obs, step_idx = nxt[alive], step_idx[alive]
        if len(obs) == 0:
            return


def correlations(u: np.ndarray, e: np.ndarray) -> dict:
    n = len(u)
    if n < 3 or np.ptp(u) == 0 or np.ptp(e) == 0:
        return {"pearson": None, "spearman": None, "n": n}
    return {"pearson": float(stats.pearsonr(u, e)[0]), "spearman": float(stats.spearmanr(u, e)[0]), "n": n}


def uncertainty_vs_error(dataset: OfflineDataset, env_key: str, horizon: int = 5, n_starts: int = 5000,
                         seed: int = 0, learned_policy: Callable[[Tensor], Tensor] | None = None,
                         learned_name: str = "", sizes: AnalysisSizes | None = None,
                         device: str | torch.device = "cpu", stages=None) -> dict:
    """Model uncertainty vs true model error (see the module docstring). ``learned_policy(obs [B, obs]) ->
    act [B, act]`` (torch, deterministic) adds the "learned" source, described by ``learned_name``.
    Returns::

        {"analysis": "uncertainty", "metric": ..., "uncertainty": {model: definition}, "sources": {...},
         "points": [{"model", "source", "uncertainty", "error"}, ...],
         "correlations": [{"model", "source", "pearson", "spearman", "n"}, ...], ...}
    """
    sizes = replace(sizes or AnalysisSizes(), horizon=horizon, n_starts=n_starts)
    sizes.validate()
    m = sizes.max_step
    train, _ = split_episodes(dataset, sizes.heldout_fraction, seed)  # Figure 2's training episodes
    train = truncate(train, sizes.train_transitions)
    trained, infos = train_models(train, env_key, ("adm", "ensemble"), sizes, seed, device, stages)
    adm, ens = trained["adm"].model, trained["ensemble"]
    oracle = SimulatorOracle(env_key)
    term = get_termination_fn(env_key)
    scale = float(oracle.env.action_space.high[0])
    rng = np.random.default_rng(seed)
    length = m - 1 + horizon
    starts = segment_starts(train, length, n_starts, rng)
    w = WindowSampler(train, "cpu").gather(torch.as_tensor(starts), length)
    hist_obs, hist_act = w["obs"][:, : m - 1], w["act"][:, : m - 1]
    start_obs = w["obs"][:, m - 1]
    recorded = w["act"][:, m - 1 :]  # behaviour actions a_{m-1} .. along the recorded segment

    sources: dict[str, tuple[Callable, str]] = {}
    sources["random"] = (None, f"uniform actions in [-{scale}, {scale}]")
    sources["behavior"] = (lambda obs, t, rows: recorded[rows, t], "the dataset's recorded actions replayed")
    if learned_policy is not None:
        sources["learned"] = (lambda obs, t, rows: learned_policy(obs), learned_name or "policy passed in")
    raw: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    dropped: dict[tuple[str, str], int] = {}  # points whose input state the simulator cannot reproduce
    for s_i, (source, (fn, _)) in enumerate(sources.items()):
        g_act = torch.Generator().manual_seed(seed * 1000 + 200 + s_i)
        if fn is None:
            def fn(obs, t, rows, g_act=g_act):
                return (torch.rand(len(obs), recorded.shape[-1], generator=g_act) * 2 - 1) * scale
        for gen in (
            adm_points(adm, hist_obs, hist_act, start_obs, fn, horizon, term,
                       torch.Generator().manual_seed(seed * 1000 + 300 + s_i)),
            ensemble_points(ens, start_obs, fn, horizon,
                            torch.Generator().manual_seed(seed * 1000 + 400 + s_i)),
        ):
            for obs, act, pred, u in gen:
                ok = oracle.reconstructible(obs.numpy())
                true = oracle.next_obs(obs.numpy()[ok], act.numpy()[ok])
                err = np.linalg.norm(pred.numpy()[ok].astype(np.float64) - true, axis=-1)
                for name, values in u.items():
                    raw.setdefault((name, source), []).append((values.numpy()[ok].astype(np.float64), err))
                    dropped[(name, source)] = dropped.get((name, source), 0) + int((~ok).sum())

    points, corr = [], []
    sample_rng = np.random.default_rng(seed + 1)
    by_model: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for (name, source), parts in raw.items():
        u = np.concatenate([p[0] for p in parts])
        e = np.concatenate([p[1] for p in parts])
        ok = np.isfinite(u) & np.isfinite(e)
        u, e = u[ok], e[ok]
        by_model.setdefault(name, []).append((u, e))
        corr.append({"model": name, "source": source, **correlations(u, e),
                     "dropped_unreconstructible": dropped[(name, source)]})
        keep = sample_rng.choice(len(u), size=min(len(u), sizes.max_points), replace=False)
        points += [{"model": name, "source": source, "uncertainty": float(u[j]), "error": float(e[j])}
                   for j in np.sort(keep)]
    for name, parts in by_model.items():
        corr.append({"model": name, "source": "all", **correlations(np.concatenate([p[0] for p in parts]),
                                                                      np.concatenate([p[1] for p in parts]))})
    return {
        "analysis": "uncertainty",
        "metric": ("error = ||mean prediction - simulator next state||_2 (raw observation), simulator "
                   "reset to the model's input state"),
        "uncertainty": {
            "adm": "sqrt(mean_d Var_k mu_k), k = 1..m (official code), dropout off",
            "adm-eq4": "||(1/m) sum_k (sigma_k^2 + mu_k^2) - mu_bar^2||_1 (paper Eq. 4), dropout off",
            "ensemble": "max_i ||sigma_i||_2 over all members (MOPO), next state and reward",
        },
        "sources": {k: v[1] for k, v in sources.items()},
        "protocol": (f"{len(starts)} starts of m-1={m - 1} real steps from the training data; model rollouts "
                     f"of {horizon} steps per model and source (ADM-Roll / random elite, Gaussian samples); "
                     f"every visited (s, a) is a point; at most {sizes.max_points} stored per model and "
                     "source, correlations over all; points whose input state has a velocity at the "
                     "observation clip (hopper/walker2d |v| >= 10) are dropped (the simulator cannot be "
                     "reset to them), counted in dropped_unreconstructible"),
        "horizons": list(range(1, horizon + 1)),
        "points": points,
        "correlations": corr,
        "models": {name: {"train": info} for name, info in infos.items()},
        "n_starts": int(len(starts)),
        "max_step": m,
        "sizes": asdict(sizes),
        "seed": seed,
    }
