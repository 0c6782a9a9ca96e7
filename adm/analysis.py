"""The paper's model analyses as pure functions returning JSON-able dicts (REFERENCE.md 4.1, 4.5).

The paper gives neither the error metric, the horizon, the rollout policy nor the number of starts for
either figure, so every output names its protocol (``metric``, ``protocol``, sizes) next to the numbers.

**Compounding error (Figure 2, camera-ready E.1)** :func:`compounding_error`. The dataset's episodes are
split at random (seeded) into training episodes and ``heldout_fraction`` held-out episodes, so held-out
trajectories are unseen (the third-party reproduction [REPRO] used an 80/10/10 trajectory split; we use
90/10, the models' own early-stopping holdout being the tail of the training part). ADM
(:func:`adm.training.train_adm`), the MBPO-style ensemble (7 members / 5 elites,
:class:`benchmark.rl.dynamics.EnsembleDynamics`) and BootRNN (:func:`adm.bootrnn.train_bootrnn`) are
trained on the training part. Each start is a segment of ``m - 1 + horizon`` transitions inside one
held-out episode: the first m states ``s_0 .. s_{m-1}`` and actions are real, then the recorded actions
are replayed open loop and every model feeds its own predictions back:

* ensemble: from ``s_{t}`` only; each step one elite drawn per start (MBPO's rule), its mean;
* ADM: one ``k ~ U{1..m}`` per step for all starts (the code's ADM-Roll rule), the mean of the k-step
  prediction from the k-th last state of its history (real states first, then its own predictions);
* BootRNN: the mean one-step prediction from the last m (state, action) pairs of its history.

Means, not Gaussian samples, and dropout off (eval mode): the figure is about the models' predictions,
not their noise. Metric: ``mean_d (s_hat - s)^2`` in raw observation space at every horizon h (the state
reached after h model steps), mean and std over starts. As the paper says, overflow counts as the float32
maximum: a non-finite or larger error is set to ``FLOAT32_MAX`` before averaging, and the averages are
clipped to it (``overflow`` gives the fraction of starts affected).

**Uncertainty vs error (Figure 4)** :func:`uncertainty_vs_error`. ADM and the ensemble are trained on the
whole dataset. Points come from model rollouts of ``horizon`` steps starting from ``m - 1`` real history
steps, under three action sources: ``random`` (uniform in the action box), ``behavior`` (the dataset's
recorded actions of the same segment, i.e. the behaviour policy replayed) and ``learned`` (a policy passed
in; :func:`run_analysis` trains BC, :mod:`baselines.bc`, briefly on the data, and says so). Each model
rolls out with its own rollout rule (ADM-Roll: uniform k, Gaussian sample; ensemble: random elite,
Gaussian sample) and each visited ``(s, a)`` gives a point:

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

:func:`run_analysis` dispatches by name with sizes per budget (``ANALYSIS_BUDGETS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import mujoco
import numpy as np
import torch
from scipy import stats

from adm.bootrnn import BootRNN, train_bootrnn
from adm.model import ADMConfig, AnyStepDynamics
from adm.training import ADMTrainConfig, train_adm
from adm.uncertainty import mean_std, mixture_l1
from benchmark.data.dataset import OfflineDataset
from benchmark.envs import make_env
from benchmark.rl.buffers import WindowSampler
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig, penalty_max_std_norm
from benchmark.rl.termination import get_termination_fn

Tensor = torch.Tensor
FLOAT32_MAX = float(np.finfo(np.float32).max)
ANALYSES = ("compounding-error", "uncertainty")
COMPOUNDING_MODELS = ("adm", "ensemble", "bootrnn")
UNCERTAINTY_SOURCES = ("random", "behavior", "learned")


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

    def validate(self) -> None:
        if self.max_step < 1 or self.horizon < 1 or self.n_starts < 1:
            raise ValueError(f"analysis sizes need max_step, horizon, n_starts >= 1, got {self}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")


# smoke: seconds (tests); short: minutes on a CPU (epoch/step caps, not time caps, so results do not depend
# on the machine's load; measured on 2 cores shared with ~10 other processes, local/hopper-medium-replay:
# compounding error ~15 min and uncertainty ~10 min with ~2-3 ADM/BootRNN epochs and 3000 ensemble steps);
# paper: early stopping as the code, [REPRO]'s horizons and starts
ANALYSIS_BUDGETS: dict[str, dict[str, dict]] = {
    "compounding-error": {
        "smoke": {"horizon": 10, "n_starts": 20, "model_max_epochs": 1, "ensemble_max_epochs": 2,
                  "ensemble_max_steps": 30, "train_transitions": 3000},
        "short": {"horizon": 100, "n_starts": 200, "model_max_epochs": 3, "ensemble_max_epochs": 100,
                  "ensemble_max_steps": 3000},
        "paper": {"horizon": 100, "n_starts": 1000},
    },
    "uncertainty": {
        "smoke": {"horizon": 3, "n_starts": 20, "model_max_epochs": 1, "ensemble_max_epochs": 2,
                  "ensemble_max_steps": 30, "train_transitions": 3000, "bc_steps": 50},
        "short": {"horizon": 5, "n_starts": 500, "model_max_epochs": 3, "ensemble_max_epochs": 100,
                  "ensemble_max_steps": 3000, "bc_steps": 2000},
        "paper": {"horizon": 5, "n_starts": 5000, "bc_steps": 100_000},
    },
}


# ----- data splits --------------------------------------------------------------------------------------


def episode_ids(ds: OfflineDataset) -> np.ndarray:
    """Episode index of every transition (episodes end at a terminal, a timeout or the end of data)."""
    ends = ds.episode_ends
    return np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)


def subset(ds: OfflineDataset, keep: np.ndarray, name: str) -> OfflineDataset:
    """The transitions where ``keep`` is True, in order; each kept episode's last kept transition is marked
    as an episode end (timeout unless terminal) so no window crosses the gap left by a dropped episode."""
    if not keep.any():
        raise ValueError(f"{ds.name}: empty subset {name!r}")
    ids = episode_ids(ds)[keep]
    arrays = {k: v[keep] for k, v in ds.arrays().items()}
    last = np.append(ids[1:] != ids[:-1], True)
    arrays["timeouts"] = arrays["timeouts"] | (last & ~arrays["terminals"])
    return OfflineDataset(**arrays, name=name, env_key=ds.env_key)


def split_episodes(ds: OfflineDataset, heldout_fraction: float, seed: int
                   ) -> tuple[OfflineDataset, OfflineDataset]:
    """Random episode-level split: ``(train, heldout)``; at least one episode on each side."""
    ids = episode_ids(ds)
    n_ep = int(ids[-1]) + 1
    if n_ep < 2:
        raise ValueError(f"{ds.name}: an episode-level split needs at least 2 episodes, got {n_ep}")
    n_held = min(max(1, round(heldout_fraction * n_ep)), n_ep - 1)
    held = np.random.default_rng(seed).permutation(n_ep)[:n_held]
    is_held = np.isin(ids, held)
    return subset(ds, ~is_held, f"{ds.name}[train]"), subset(ds, is_held, f"{ds.name}[heldout]")


def truncate(ds: OfflineDataset, n: int | None) -> OfflineDataset:
    if n is None or n >= len(ds):
        return ds
    keep = np.zeros(len(ds), bool)
    keep[:n] = True
    return subset(ds, keep, ds.name)


def segment_starts(ds: OfflineDataset, length: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct start indices of ``length``-transition windows inside one episode (sorted)."""
    ok = np.flatnonzero(ds.dist_to_end() >= length - 1)
    if len(ok) == 0:
        longest = int(np.bincount(episode_ids(ds)).max())
        raise ValueError(f"{ds.name}: no episode holds {length} transitions (longest {longest}); use a "
                         "shorter horizon or smaller max_step")
    return np.sort(rng.choice(ok, size=min(n, len(ok)), replace=False))


# ----- models ---------------------------------------------------------------------------------------------


def train_models(train: OfflineDataset, env_key: str, names, sizes: AnalysisSizes, seed: int,
                 device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Train each named model ("adm", "ensemble", "bootrnn") on ``train``; returns models and diagnostics."""
    device = torch.device(device)
    train_cfg = ADMTrainConfig(max_step=sizes.max_step, max_epochs=sizes.model_max_epochs,
                               max_time_s=sizes.model_max_time_s)
    model_cfg = ADMConfig(hidden_dim=sizes.hidden_dim)
    models, infos = {}, {}
    for i, name in enumerate(names):
        torch.manual_seed(seed * 1000 + i)  # initialisation and training dropout
        g = torch.Generator().manual_seed(seed * 1000 + i)
        if name == "adm":
            model, info = train_adm(train, train_cfg, model_cfg, device, g)
        elif name == "bootrnn":
            model, info = train_bootrnn(train, train_cfg, model_cfg, device, g)
        elif name == "ensemble":
            cfg = EnsembleDynamicsConfig(max_epochs=sizes.ensemble_max_epochs,
                                         max_steps=sizes.ensemble_max_steps)
            model = EnsembleDynamics(train.obs_dim, train.act_dim, cfg, env_key, device, seed * 1000 + i)
            info = model.fit(train)
        else:
            raise ValueError(f"unknown analysis model {name!r}; expected one of {COMPOUNDING_MODELS}")
        model.eval()
        infos[name] = {k: v for k, v in info.items() if k != "history" and not isinstance(v, list | dict)}
        models[name] = model
    return models, infos


# ----- compounding error ----------------------------------------------------------------------------------


@torch.no_grad()
def open_loop_predictions(model, hist_obs: Tensor, acts: Tensor, horizon: int, generator: torch.Generator
                          ) -> Tensor:
    """Replay ``acts`` open loop after a real history; every model feeds its own predictions back.

    ``hist_obs [B, m, obs]`` are the real states ``s_0 .. s_{m-1}``; ``acts [B, m-1+horizon, act]`` the
    recorded actions ``a_0 ..``. Returns the predicted states ``s_m .. s_{m-1+horizon}``,
    ``[B, horizon, obs]``. Mean predictions (see the module docstring)."""
    m = hist_obs.shape[1]
    b = hist_obs.shape[0]
    states = list(hist_obs.unbind(1))  # s_0 .. s_t (t = m-1 at first)
    out = []
    for h in range(horizon):
        t = m - 1 + h  # predict s_{t+1} with a_t
        if isinstance(model, EnsembleDynamics):
            mean, _ = model.predict(states[-1], acts[:, t])
            pick = model.elites[torch.randint(len(model.elites), (b,), generator=generator)]
            nxt = mean[pick.to(mean.device), torch.arange(b, device=mean.device), :-1]
        elif isinstance(model, BootRNN):
            window = torch.stack(states[-m:], dim=1)
            nxt, _ = model.dstep(window, acts[:, t - window.shape[1] + 1 : t + 1])
        elif isinstance(model, AnyStepDynamics):
            k = int(torch.randint(1, min(m, len(states)) + 1, (1,), generator=generator))
            nxt, _ = model.dstep(states[-k], acts[:, t - k + 1 : t + 1])
        else:
            raise TypeError(f"open_loop_predictions: unsupported model {type(model).__name__}")
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
                      device: str | torch.device = "cpu") -> dict:
    """Compounding error vs rollout length (see the module docstring). Returns::

        {"analysis": "compounding-error", "metric": ..., "protocol": ..., "horizons": [1..H],
         "models": {name: {"mean": [H], "std": [H], "median": [H], "overflow": [H], "train": {...}}},
         "n_starts": N, "max_step": m, "split": {...}, "sizes": {...}, "seed": seed}
    """
    sizes = replace(sizes or AnalysisSizes(), horizon=horizon, n_starts=n_starts)
    sizes.validate()
    m = sizes.max_step
    train, held = split_episodes(dataset, sizes.heldout_fraction, seed)
    train = truncate(train, sizes.train_transitions)
    rng = np.random.default_rng(seed)
    length = m - 1 + horizon
    starts = segment_starts(held, length, n_starts, rng)
    sampler = WindowSampler(held, "cpu")
    w = sampler.gather(torch.as_tensor(starts), length)
    hist_obs = w["obs"][:, :m]  # s_0 .. s_{m-1}
    true = w["next_obs"][:, m - 1 :].numpy()  # s_m .. s_{m-1+H}
    trained, infos = train_models(train, env_key, models, sizes, seed, device)
    results = {}
    for i, name in enumerate(models):
        g = torch.Generator().manual_seed(seed * 1000 + 100 + i)
        pred = open_loop_predictions(trained[name], hist_obs.to(device), w["act"].to(device), horizon, g)
        err, overflow = clipped_mse(pred.cpu().numpy(), true)
        results[name] = {
            "mean": np.minimum(err.mean(axis=0), FLOAT32_MAX).tolist(),
            "std": np.minimum(err.std(axis=0), FLOAT32_MAX).tolist(),
            "median": np.median(err, axis=0).tolist(),
            "overflow": overflow.mean(axis=0).tolist(),
            "train": infos[name],
        }
    return {
        "analysis": "compounding-error",
        "metric": ("raw-state MSE mean_d (s_hat_h - s_h)^2 per start; mean/std over starts; "
                   "overflow -> float32 max"),
        "protocol": (f"episode split {1 - sizes.heldout_fraction:.0%}/{sizes.heldout_fraction:.0%}; "
                     f"{len(starts)} held-out segments, first m={m} states real, recorded actions replayed "
                     f"open loop for {horizon} steps; mean predictions, dropout off; ADM k~U{{1..m}} per "
                     "step; ensemble one random elite per start and step"),
        "horizons": list(range(1, horizon + 1)),
        "models": results,
        "n_starts": int(len(starts)),
        "max_step": m,
        "split": {"train_transitions": len(train), "heldout_transitions": len(held),
                  "heldout_episodes": int(held.episode_ends.sum())},
        "sizes": asdict(sizes),
        "seed": seed,
    }


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
                         device: str | torch.device = "cpu") -> dict:
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
    train = truncate(dataset, sizes.train_transitions)
    trained, infos = train_models(train, env_key, ("adm", "ensemble"), sizes, seed, device)
    adm, ens = trained["adm"], trained["ensemble"]
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


# ----- dispatch -------------------------------------------------------------------------------------------


def train_bc_policy(dataset: OfflineDataset, env_key: str, steps: int, seed: int
                    ) -> Callable[[Tensor], Tensor]:
    """A BC policy (:mod:`baselines.bc`, default config) trained for ``steps`` updates, as a torch
    callable."""
    from baselines.bc import BC, BCConfig
    from benchmark.rl.algorithm import Context

    env = make_env(env_key)
    ctx = Context(dataset, env_key, dataset.obs_dim, dataset.act_dim,
                         float(env.action_space.high[0]), torch.device("cpu"), seed)
    torch.manual_seed(seed)
    bc = BC(BCConfig(seed=seed), ctx)
    bc.setup()
    for step in range(steps):
        bc.learn(bc.next_batch(step))

    @torch.no_grad()
    def policy(obs: Tensor) -> Tensor:
        return bc.forward_policy(obs)

    return policy


def analysis_sizes(name: str, task_id: str, budget: str) -> AnalysisSizes:
    """Budget sizes with m and the GRU width from the task's ``admpo-off`` config where one exists."""
    if name not in ANALYSIS_BUDGETS:
        raise ValueError(f"unknown analysis {name!r}; expected one of {', '.join(ANALYSES)}")
    if budget not in ANALYSIS_BUDGETS[name]:
        raise ValueError(f"unknown budget {budget!r} for analysis {name!r}; expected one of "
                         f"{', '.join(ANALYSIS_BUDGETS[name])}")
    from adm import admpo_off
    from benchmark.config import resolve_config
    from benchmark.tasks import resolve_task

    config_dir = Path(admpo_off.__file__).parent / "configs" / "admpo-off"
    cfg, _ = resolve_config(admpo_off.ADMPOOffConfig, config_dir, resolve_task(task_id).config_keys, "paper")
    return AnalysisSizes(max_step=cfg.max_arm_step, hidden_dim=cfg.arm_hidden_dim,
                         **ANALYSIS_BUDGETS[name][budget])


def run_analysis(name: str, task_id: str, seed: int, budget: str, overrides: dict | None = None) -> dict:
    """Run analysis ``name`` ("compounding-error" | "uncertainty") on ``task_id`` at ``budget`` sizes
    (``ANALYSIS_BUDGETS``; m and the GRU width from the task's admpo-off config). The "learned" source of
    the uncertainty analysis is a BC policy trained for ``bc_steps`` on the same data. ``overrides`` sets
    :class:`AnalysisSizes` fields, e.g. ``{"max_step": 10}`` for the effect of m (camera-ready E.1)."""
    from benchmark.tasks import resolve_task

    sizes = analysis_sizes(name, task_id, budget)
    unknown = set(overrides or {}) - set(asdict(sizes))
    if unknown:
        raise ValueError(f"run_analysis overrides: unknown fields {sorted(unknown)}; expected some of "
                         f"{sorted(asdict(sizes))}")
    sizes = replace(sizes, **(overrides or {}))
    spec = resolve_task(task_id)
    dataset = spec.load_dataset()
    env_key = spec.env_key
    if name == "compounding-error":
        out = compounding_error(dataset, env_key, horizon=sizes.horizon, n_starts=sizes.n_starts, seed=seed,
                                sizes=sizes)
    else:
        data = truncate(dataset, sizes.train_transitions)
        policy = train_bc_policy(data, env_key, sizes.bc_steps, seed)
        out = uncertainty_vs_error(dataset, env_key, horizon=sizes.horizon, n_starts=sizes.n_starts,
                                   seed=seed, learned_policy=policy, sizes=sizes,
                                   learned_name=f"BC (baselines/bc.py), {sizes.bc_steps} updates "
                                   "on the same data")
    return {"task": task_id, "budget": budget, **out, "seed": seed}
