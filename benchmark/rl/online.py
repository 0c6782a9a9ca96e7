"""The shared online loop (SAC, ADMPO-ON, and later MBPO, STEVE, BMPO, DDPPO) and its contracts.

The loop follows the ADMPO official online trainer (``runner/online_trainer.py``, REFERENCE.md 2.1):

0. **Warm-up.** ``start_learning`` uniformly random actions are stored first. As in the code they are
   *not* counted in ``env_steps``: Hopper with ``env_steps=50_000`` sees 55,000 real transitions.
1. For every env step ``it`` in ``range(env_steps)``:
   a. ``algo.before_step(it)``: model-based hooks (retrain the model every ``model_update_interval``
      steps, roll it out every ``model_rollout_interval`` steps; see :class:`OnlineModelBased`);
   b. one env step with the **stochastic** policy; ``algo.observe(transition)`` stores it;
   c. if ``it % update_interval == 0``: ``update_interval * updates_per_step`` gradient steps
      ``algo.learn(algo.next_batch(it))``;
   d. if ``it % eval_interval == 0`` (``it = 0`` included, so the first point is taken after the
      first env step's updates): ``eval_episodes`` deterministic episodes on evaluation envs seeded as
      :func:`benchmark.rl.trainers.evaluate` does (identically at every evaluation).

Curve points are ``{step, env_steps_total, return_mean, return_std, score, score_std, train/...}``.
``step`` is ``it``, the x-axis the official code logs (post-warm-up env steps; the last evaluation is
at ``env_steps - eval_interval``); ``env_steps_total = start_learning + it + 1`` counts every real
transition collected so far, warm-up included. Whether the paper's Figure 3 x-axis includes the
warm-up is unknown (REFERENCE.md 8).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.config import ConfigError, OnlineConfig
from benchmark.data.dataset import OfflineDataset
from benchmark.rl.buffers import Batch, TransitionBuffer
from benchmark.rl.checkpoint import env_state, restore_env_state
from benchmark.rl.sac import SACConfig
from benchmark.rl.trainers import check_finite, evaluate


# ----- configs ------------------------------------------------------------------------------------
@dataclass
class OnlineTrainConfig(OnlineConfig):
    """Sizes of the shared online loop (defaults: the ADMPO official online code, REFERENCE.md 2.2)."""

    start_learning: int = 5000  # uniformly random warm-up steps, not counted in env_steps
    updates_per_step: int = 1  # gradient steps per env step (UTD ratio)
    update_interval: int = 1  # learn every update_interval env steps (update_interval * UTD steps then)
    batch_size: int = 256
    buffer_size: int = 1_000_000  # real env buffer capacity (FIFO)

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"start_learning": 200},
        "short": {"start_learning": 2000},
    }


@dataclass
class OnlineSACConfig(OnlineTrainConfig):
    """SAC hyperparameters for online learners. Defaults are the SAC paper's (Haarnoja et al. 2018,
    "Soft Actor-Critic Algorithms and Applications", Table 1), which are also the ADMPO online code's
    argparse defaults (REFERENCE.md 2.2): Adam 3e-4 everywhere, 2x256 ReLU, gamma 0.99, tau 0.005,
    automatic entropy tuning with log(alpha) starting at 0 and target entropy -|A|."""

    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.2  # fixed temperature when auto_alpha is false (auto: log alpha starts at 0)
    auto_alpha: bool = True
    target_entropy: float | None = None  # None -> -|A|
    num_critics: int = 2
    actor_freq: int = 1  # actor and alpha updated once every actor_freq critic updates

    def sac_config(self, **overrides) -> SACConfig:
        """The :class:`SACConfig` made of this config's SAC fields (``overrides`` win)."""
        names = {f.name for f in fields(SACConfig)}
        values = {name: getattr(self, name) for name in names if hasattr(self, name)}
        values.update(overrides)
        return SACConfig(**values)


@dataclass
class OnlineModelBasedConfig(OnlineTrainConfig):
    """Generic Dyna-style hooks (ADMPO-ON and MBPO share them; REFERENCE.md 2.1-2.2).

    The model buffer holds ``rollout_batch_size * L(it) * model_retain_steps / model_rollout_interval``
    transitions, i.e. the rollouts of the last ``model_retain_steps`` env steps (MBPO's
    ``model_retain_epochs * epoch_length``); it grows with the rollout length and keeps its data.
    """

    model_update_interval: int = 250  # env steps between model (re)trainings; 0 = never retrain
    model_rollout_interval: int = 250  # env steps between model rollouts
    rollout_batch_size: int = 100_000  # rollout starts per rollout
    # [a, b, x, y]: the rollout length grows linearly from x to y while it goes from a to b
    rollout_schedule: tuple[int, int, int, int] = (10_000, 100_000, 1, 20)
    model_retain_steps: int = 1000
    real_ratio: float = 0.05  # share of real transitions in each batch: int(batch_size * real_ratio)

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"rollout_batch_size": 256},
        "short": {"rollout_batch_size": 5000},
    }

    def __post_init__(self):
        if len(self.rollout_schedule) != 4:
            raise ConfigError(f"rollout_schedule must be [a, b, x, y], got {self.rollout_schedule!r}")
        a, b, x, y = self.rollout_schedule
        if b <= a or x < 1 or y < x:
            raise ConfigError(
                f"rollout_schedule [a, b, x, y] needs b > a and 1 <= x <= y, "
                f"got {list(self.rollout_schedule)}"
            )
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ConfigError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if self.model_rollout_interval <= 0:
            raise ConfigError(f"model_rollout_interval must be positive, got {self.model_rollout_interval}")


def rollout_length(it: int, schedule: tuple[int, int, int, int]) -> int:
    """``L(it) = int(min(max(x + (it - a) / (b - a) * (y - x), x), y))`` (MBPO's and ADMPO's rule)."""
    a, b, x, y = schedule
    return int(min(max(x + (it - a) / (b - a) * (y - x), x), y))


# ----- context, transitions, real buffer ----------------------------------------------------------
@dataclass
class OnlineContext:
    env_key: str  # termination functions / scores
    obs_dim: int
    act_dim: int
    act_scale: float  # symmetric action box [-act_scale, act_scale]
    device: torch.device
    seed: int = 0
    progress: bool = False


@dataclass
class Transition:
    obs: np.ndarray
    act: np.ndarray
    rew: float
    next_obs: np.ndarray
    terminated: bool  # true termination: no bootstrap
    truncated: bool  # time limit: the episode ends but s' is not terminal


class EnvReplay:
    """The real env buffer: a device :class:`TransitionBuffer` plus the timeout flags that
    k-step-window models need to keep windows inside one episode (the official ``seq-sample`` buffer)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu"):
        self.buffer = TransitionBuffer(capacity, obs_dim, act_dim, device)
        self.timeouts = np.zeros(capacity, dtype=bool)
        self.total_added = 0

    def __len__(self) -> int:
        return len(self.buffer)

    def add(self, t: Transition) -> None:
        slot = self.buffer.ptr
        self.buffer.add(
            obs=np.asarray(t.obs, dtype=np.float32)[None],
            act=np.asarray(t.act, dtype=np.float32)[None],
            rew=np.array([[t.rew]], dtype=np.float32),
            next_obs=np.asarray(t.next_obs, dtype=np.float32)[None],
            done=np.array([[float(t.terminated)]], dtype=np.float32),
        )
        self.timeouts[slot] = bool(t.truncated) and not bool(t.terminated)
        self.total_added += 1

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        return self.buffer.sample(batch_size, generator)

    def to_dataset(self, name: str = "online-replay", env_key: str = "") -> OfflineDataset:
        """Every stored transition, oldest first, as an :class:`OfflineDataset` (the episode in
        progress ends at the last row; ``OfflineDataset.episode_ends`` marks it)."""
        data = self.buffer.all()
        b = self.buffer
        order = np.arange(b.size) if b.size < b.capacity else (np.arange(b.capacity) + b.ptr) % b.capacity
        return OfflineDataset(
            observations=data["obs"].cpu().numpy(),
            actions=data["act"].cpu().numpy(),
            rewards=data["rew"].reshape(-1).cpu().numpy(),
            next_observations=data["next_obs"].cpu().numpy(),
            terminals=data["done"].reshape(-1).cpu().numpy() > 0.5,
            timeouts=self.timeouts[order],
            name=name,
            env_key=env_key,
        )


# ----- algorithm contracts ------------------------------------------------------------------------
class OnlineAlgorithm:
    """What :func:`train_online` calls. Subclasses implement ``act`` and ``learn``.

    * ``setup() -> dict``: one-off work before the warm-up.
    * ``before_step(it) -> dict``: hooks run before env step ``it`` (model training and rollouts).
    * ``act(obs, deterministic) -> action``: numpy in, numpy out.
    * ``observe(transition)``: store a real transition (warm-up ones included).
    * ``next_batch(it) -> batch`` and ``learn(batch) -> dict``: one gradient step.
    """

    def __init__(self, cfg: OnlineTrainConfig, ctx: OnlineContext):
        self.cfg = cfg
        self.ctx = ctx
        self.device = ctx.device
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        self.real = EnvReplay(cfg.buffer_size, ctx.obs_dim, ctx.act_dim, ctx.device)

    def setup(self) -> dict:
        return {}

    def before_step(self, it: int) -> dict:
        return {}

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        raise NotImplementedError

    def observe(self, transition: Transition) -> None:
        self.real.add(transition)

    def next_batch(self, it: int) -> Batch:
        return self.real.sample(self.cfg.batch_size, self.generator)

    def learn(self, batch: Batch) -> dict:
        raise NotImplementedError


class OnlineModelBased(OnlineAlgorithm):
    """Dyna-style online learner: a model retrained on schedule, rolled out into a model buffer, and
    batches mixing ``int(batch_size * real_ratio)`` real with model transitions.

    Subclasses implement ``train_model(it) -> dict`` and ``rollout(num_starts, length) ->
    (transitions, info)`` (transitions: ``obs, act, rew, next_obs, done``).
    """

    cfg: OnlineModelBasedConfig

    def __init__(self, cfg: OnlineModelBasedConfig, ctx: OnlineContext):
        super().__init__(cfg, ctx)
        # created at the first rollout with the capacity of the schedule's rollout length then
        self.fake: TransitionBuffer | None = None
        self.model_trainings = 0
        self.rollouts = 0
        self.model_info: dict = {}
        self.rollout_info: dict = {}
        self.capacity_history: list[tuple[int, int]] = []  # (it, capacity) at every resize
        self.rollout_history: list[tuple[int, int, int]] = []  # (it, length, transitions) per rollout

    # ----- to implement -------------------------------------------------------------------------
    def train_model(self, it: int) -> dict:
        raise NotImplementedError

    def rollout(self, num_starts: int, length: int) -> tuple[Batch, dict]:
        raise NotImplementedError

    # ----- shared hooks -------------------------------------------------------------------------
    def model_buffer_capacity(self, it: int) -> int:
        cfg = self.cfg
        length = rollout_length(it, cfg.rollout_schedule)
        capacity = cfg.rollout_batch_size * length * cfg.model_retain_steps / cfg.model_rollout_interval
        return max(1, int(capacity))

    def resize_model_buffer(self, it: int) -> None:
        capacity = self.model_buffer_capacity(it)
        if self.fake is None:
            self.fake = TransitionBuffer(capacity, self.ctx.obs_dim, self.ctx.act_dim, self.device)
            self.capacity_history.append((it, capacity))
        elif self.fake.capacity != capacity:
            self.fake.resize(capacity)  # keeps the newest transitions
            self.capacity_history.append((it, capacity))

    def before_step(self, it: int) -> dict:
        cfg = self.cfg
        info: dict = {}
        if cfg.model_update_interval > 0 and it % cfg.model_update_interval == 0:
            t0 = time.time()
            self.model_info = self.train_model(it) or {}
            self.model_info["train_time_s"] = time.time() - t0
            self.model_trainings += 1
            info.update({f"model/{k}": v for k, v in self.model_info.items()})
        if it % cfg.model_rollout_interval == 0:
            self.resize_model_buffer(it)
            length = rollout_length(it, cfg.rollout_schedule)
            t0 = time.time()
            transitions, rinfo = self.rollout(cfg.rollout_batch_size, length)
            self.fake.add(**transitions)
            self.rollouts += 1
            self.rollout_history.append((it, length, len(transitions["obs"])))
            self.rollout_info = {**rinfo, "length": length, "time_s": time.time() - t0,
                                 "model_buffer": len(self.fake), "model_buffer_capacity": self.fake.capacity}
            info.update({f"rollout/{k}": v for k, v in self.rollout_info.items()})
        return info

    def next_batch(self, it: int) -> Batch:
        cfg = self.cfg
        if self.fake is None or len(self.fake) == 0:  # no model data yet: real data only
            return self.real.sample(cfg.batch_size, self.generator)
        n_real = int(cfg.batch_size * cfg.real_ratio)
        real = self.real.sample(n_real, self.generator)
        fake = self.fake.sample(cfg.batch_size - n_real, self.generator)
        return {k: torch.cat([real[k], fake[k]], dim=0) for k in real}


# ----- the loop -----------------------------------------------------------------------------------
def _finite_mean(values: list[float]) -> float:
    vals = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _env_step(env, action):
    next_obs, rew, terminated, truncated, _ = env.step(action)
    return next_obs, float(rew), bool(terminated), bool(truncated)


def train_online(algo: OnlineAlgorithm, cfg: OnlineTrainConfig, make_env: Callable, normalize: Callable,
                 progress: bool = True, logger=None, checkpointer=None) -> dict:
    """Warm-up, then ``cfg.env_steps`` env steps with updates and periodic evaluations.

    ``make_env()`` builds a fresh env (training env once, one per evaluation); ``normalize(return)``
    gives the score or None. Returns ``{"curve": [...], "setup": {...}, "train": {...}}``; ``train``
    holds the last interval's mean diagnostics and the counts (``count/...``). With a
    :class:`benchmark.rl.checkpoint.Checkpointer`, the loop resumes from its newest checkpoint (the training
    env's simulator state and the episode in progress included) and writes one after the warm-up and every
    ``checkpointer.every`` env steps.
    """
    if cfg.eval_interval <= 0 or cfg.updates_per_step < 0 or cfg.update_interval <= 0:
        raise ValueError(
            f"online config: eval_interval ({cfg.eval_interval}) and update_interval ({cfg.update_interval}) "
            f"must be positive and updates_per_step ({cfg.updates_per_step}) non-negative"
        )
    t0 = time.time()
    state = checkpointer.load() if checkpointer is not None else None
    env = make_env()
    if state is not None:
        algo, setup_info, loop = state["algo"], state["setup"], state["loop"]
        env.reset(seed=int(cfg.seed))  # initialise the wrappers, then put the saved episode back
        restore_env_state(env, state["env"])
    else:
        setup_info = dict(algo.setup() or {})
        obs, _ = env.reset(seed=int(cfg.seed))
        env.action_space.seed(int(cfg.seed))

        # 0. warm-up with uniformly random actions (not counted in env_steps)
        episode_return, warmup_returns = 0.0, []
        for _ in range(cfg.start_learning):
            action = env.action_space.sample()
            next_obs, rew, term, trunc = _env_step(env, action)
            algo.observe(Transition(obs, action, rew, next_obs, term, trunc))
            episode_return += rew
            obs = next_obs
            if term or trunc:
                warmup_returns.append(episode_return)
                episode_return = 0.0
                obs, _ = env.reset()
        setup_info.update({
            "warmup_steps": cfg.start_learning,
            "warmup_episodes": len(warmup_returns),
            "warmup_return_mean": float(np.mean(warmup_returns)) if warmup_returns else None,
            "setup_time_s": round(time.time() - t0, 3),
        })
        loop = {"it": 0, "obs": obs, "episode_return": episode_return, "curve": [], "diag": defaultdict(list),
                "hooks": {}, "last": {}, "updates": 0, "episodes": 0, "train_returns": []}
        if checkpointer is not None and checkpointer.enabled:
            checkpointer.save(0, {"algo": algo, "setup": setup_info, "loop": loop, "env": env_state(env)})

    obs, episode_return, curve, diag, hooks, last, updates, episodes, train_returns = (
        loop[k] for k in ("obs", "episode_return", "curve", "diag", "hooks", "last", "updates", "episodes",
                          "train_returns"))
    for point in curve if logger is not None else ():  # a resumed run's log is written afresh
        logger.log(point["step"], point)
    bar = tqdm(range(loop["it"], cfg.env_steps), desc="env steps", disable=not progress, leave=False,
               mininterval=2.0)
    for it in bar:
        for k, v in (algo.before_step(it) or {}).items():
            hooks[k] = v
        action = algo.act(obs, deterministic=False)
        next_obs, rew, term, trunc = _env_step(env, action)
        algo.observe(Transition(obs, action, rew, next_obs, term, trunc))
        episode_return += rew
        obs = next_obs
        if term or trunc:
            train_returns.append(episode_return)
            episodes += 1
            episode_return = 0.0
            obs, _ = env.reset()

        if it % cfg.update_interval == 0:
            for _ in range(cfg.update_interval * cfg.updates_per_step):
                for k, v in check_finite(algo.learn(algo.next_batch(it)) or {}, it, "env step").items():
                    diag[k].append(v)
                updates += 1

        if it % cfg.eval_interval == 0:
            mean, std, _ = evaluate(lambda o: algo.act(o, deterministic=True), make_env, cfg.eval_episodes,
                                    cfg.seed)
            check_finite({"evaluation return": mean}, it, "env step")
            score = normalize(mean)
            # normalisation is affine, so a std is only scaled: normalize(m + s) - normalize(m)
            score_std = normalize(mean + std) - score if score is not None else None
            point = {
                "step": it,
                "env_steps_total": cfg.start_learning + it + 1,
                "return_mean": mean,
                "return_std": std,
                "score": score,
                "score_std": score_std,
                # stochastic-policy episodes finished since the previous evaluation
                "train_return_mean": float(np.mean(train_returns)) if train_returns else None,
                "train_episodes": len(train_returns),
            }
            last = {k: _finite_mean(v) for k, v in diag.items()}
            point.update({f"train/{k}": v for k, v in last.items()})
            point.update({k: v for k, v in hooks.items() if isinstance(v, int | float)})
            curve.append(point)
            if logger is not None:  # benchmark.metrics.MetricsLogger: the same point, kept per run
                logger.log(it, point)
            diag = defaultdict(list)
            train_returns = []
            if progress:
                bar.set_postfix(ret=f"{mean:.1f}", score=score)
        if checkpointer is not None and checkpointer.due(it + 1) and it + 1 < cfg.env_steps:
            loop = {"it": it + 1, "obs": obs, "episode_return": episode_return, "curve": curve, "diag": diag,
                    "hooks": hooks, "last": last, "updates": updates, "episodes": episodes,
                    "train_returns": train_returns}
            checkpointer.save(it + 1, {"algo": algo, "setup": setup_info, "loop": loop,
                                       "env": env_state(env)})
    env.close()
    counts = {
        "count/warmup_steps": cfg.start_learning,
        "count/env_steps": cfg.env_steps,
        "count/updates": updates,
        "count/evaluations": len(curve),
        "count/train_episodes": episodes,
        "wall_time_s": round(time.time() - t0, 3),
    }
    for name in ("model_trainings", "rollouts"):
        if hasattr(algo, name):
            counts[f"count/{name}"] = getattr(algo, name)
    return {"curve": curve, "setup": setup_info, "train": {**last, **counts}, "algo": algo}
