"""The shared online loop (SAC, ADMPO-ON, MBPO, BMPO).

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

import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from benchmark.rl.buffers import Transition
from benchmark.rl.checkpoint import env_state, restore_env_state
from benchmark.rl.online.algorithm import OnlineAlgorithm
from benchmark.rl.online.configs import OnlineTrainConfig
from benchmark.rl.trainers import StepMetrics, check_finite, evaluate, finite_means

UNIT = "env step"  # what a divergence's step counts


def _as_step_metrics(diag) -> StepMetrics:
    """The loop's window of update diagnostics; a checkpoint of an older version kept the checked floats
    in a dict of lists."""
    if isinstance(diag, StepMetrics):
        return diag
    window = StepMetrics(UNIT)
    for key, values in diag.items():
        for value in values:
            window.add({key: value}, None)
    return window


# ----- the loop -----------------------------------------------------------------------------------
def _step_and_store(env, algo, obs, action, episode_return: float):
    """One env step, handed to ``algo.observe``; a finished episode resets the env. Returns the next
    observation, the running episode return and the finished episode's return (None while it runs)."""
    next_obs, rew, terminated, truncated, _ = env.step(action)
    rew, terminated, truncated = float(rew), bool(terminated), bool(truncated)
    algo.observe(Transition(obs, action, rew, next_obs, terminated, truncated))
    episode_return += rew
    if terminated or truncated:
        return env.reset()[0], 0.0, episode_return
    return next_obs, episode_return, None


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
    t0, cpu0 = time.time(), time.process_time()
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
            obs, episode_return, finished = _step_and_store(env, algo, obs, env.action_space.sample(),
                                                            episode_return)
            if finished is not None:
                warmup_returns.append(finished)
        setup_info.update({
            "warmup_steps": cfg.start_learning,
            "warmup_episodes": len(warmup_returns),
            "warmup_return_mean": float(np.mean(warmup_returns)) if warmup_returns else None,
            "setup_time_s": round(time.time() - t0, 3),
            "setup_cpu_time_s": round(time.process_time() - cpu0, 3),
        })
        loop = {"it": 0, "obs": obs, "episode_return": episode_return, "curve": [], "diag": StepMetrics(UNIT),
                "hooks": {}, "last": {}, "updates": 0, "episodes": 0, "train_returns": []}
        if checkpointer is not None and checkpointer.enabled:
            checkpointer.save(0, {"algo": algo, "setup": setup_info, "loop": loop, "env": env_state(env)})

    obs, episode_return, curve, diag, hooks, last, updates, episodes, train_returns = (
        loop[k] for k in ("obs", "episode_return", "curve", "diag", "hooks", "last", "updates", "episodes",
                          "train_returns"))
    diag = _as_step_metrics(diag)
    for point in curve if logger is not None else ():  # a resumed run's log is written afresh
        logger.log(point["step"], point)
    bar = tqdm(range(loop["it"], cfg.env_steps), desc="env steps", disable=not progress, leave=False,
               mininterval=2.0)
    for it in bar:
        try:
            for k, v in (algo.before_step(it) or {}).items():
                hooks[k] = v
            action = algo.act(obs, deterministic=False)
            obs, episode_return, finished = _step_and_store(env, algo, obs, action, episode_return)
            if finished is not None:
                train_returns.append(finished)
                episodes += 1

            if it % cfg.update_interval == 0:
                for _ in range(cfg.update_interval * cfg.updates_per_step):
                    # kept on the device until the next evaluation (StepMetrics): no sync per update
                    diag.add(algo.learn(algo.next_batch(it)) or {}, it)
                    updates += 1
        except Exception as error:
            diag.raise_divergence(error)
            raise

        if it % cfg.eval_interval == 0:
            window = diag.read()  # raises DivergenceError for the first non-finite update since the last
            mean, std, _ = evaluate(lambda o: algo.act(o, deterministic=True), make_env, cfg.eval_episodes,
                                    cfg.seed)
            check_finite({"evaluation return": mean}, it, UNIT)
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
            last = finite_means(window)
            point.update({f"train/{k}": v for k, v in last.items()})
            point.update({k: v for k, v in hooks.items() if isinstance(v, int | float)})
            curve.append(point)
            if logger is not None:  # benchmark.rl.trainers.MetricsLogger: the same point, kept per run
                logger.log(it, point)
            train_returns = []
            if progress:
                bar.set_postfix(ret=f"{mean:.1f}", score=score)
        if checkpointer is not None and checkpointer.due(it + 1) and it + 1 < cfg.env_steps:
            loop = {"it": it + 1, "obs": obs, "episode_return": episode_return, "curve": curve, "diag": diag,
                    "hooks": hooks, "last": last, "updates": updates, "episodes": episodes,
                    "train_returns": train_returns}
            checkpointer.save(it + 1, {"algo": algo, "setup": setup_info, "loop": loop,
                                       "env": env_state(env)})
    diag.read()  # the updates after the last evaluation are checked too
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
