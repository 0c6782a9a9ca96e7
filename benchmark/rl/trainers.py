"""The shared training loops. They know the algorithm contract, never an algorithm's name."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

import numpy as np

from benchmark.progress import Progress, track

EVAL_SEED_OFFSET = 100_000  # evaluation episodes use seeds disjoint from training


class MetricsLogger(Protocol):
    """Where the loops send every scalar once per evaluation point (the harness's files:
    :mod:`benchmark.metrics`)."""

    def log(self, step: int, metrics: dict) -> None: ...

    def close(self) -> None: ...


class DivergenceError(FloatingPointError):
    """A training metric (loss, Q-value, temperature) or an evaluation return became NaN or inf.

    The runner records the run as ``failed`` with this message, which names the metric and the step, so a
    diverged run is never stored as a result."""

    def __init__(self, metric: str, value: float, step: int, unit: str = "gradient step"):
        self.metric, self.value, self.step = metric, value, step
        super().__init__(f"{metric} became {value} at {unit} {step}")


def check_finite(metrics: dict, step: int, unit: str = "gradient step") -> dict:
    """Return ``metrics`` unchanged, or raise :class:`DivergenceError` on the first non-finite number."""
    for key, value in metrics.items():
        if isinstance(value, int | float | np.floating) and not math.isfinite(value):
            raise DivergenceError(key, float(value), step, unit)
    return metrics


def evaluate(
    act: Callable, make_env: Callable, episodes: int, seed: int, seed_offset: int = EVAL_SEED_OFFSET,
    desc: str | None = None,
) -> tuple[float, float, list[float]]:
    """Run ``episodes`` episodes of ``act``; episode i resets the env with ``seed + seed_offset + i``, so
    every evaluation sees the same start states. ``desc``: show progress under that name."""
    env = make_env()
    returns = []
    for ep in track(range(episodes), desc, unit="episode", show=desc is not None):
        obs, _ = env.reset(seed=seed + seed_offset + ep)
        done, total = False, 0.0
        while not done:
            obs, rew, term, trunc, _ = env.step(act(obs))
            total += float(rew)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns)), returns


def finite_mean(values: list[float]) -> float:
    """Mean of the finite numbers among ``values`` (a window's diagnostics); NaN when there are none."""
    vals = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def train_offline(
    algo, cfg, make_env: Callable, normalize: Callable, progress: bool = True,
    logger: MetricsLogger | None = None, checkpointer=None,
) -> dict:
    """``cfg.epochs`` epochs of ``cfg.steps_per_epoch`` steps, one evaluation after each epoch.

    ``logger`` (:mod:`benchmark.metrics`) gets the setup diagnostics at step 0 and every curve point.

    Returns ``{"curve": [...], "setup": {...}, "train": {...}}``: curve points are
    ``{step, epoch, return_mean, return_std, score, score_std, <mean diagnostics of the epoch>}``.
    With a :class:`benchmark.rl.checkpoint.Checkpointer`, the loop resumes from its newest checkpoint and
    writes one after setup and every ``checkpointer.every`` epochs (same result as an uninterrupted run).
    """
    state = checkpointer.load() if checkpointer is not None else None
    if state is not None:
        resumed = state["algo"]
        resumed.attach_data(algo.ctx)
        algo = resumed
        setup_info, curve, last = state["setup"], state["curve"], state["last"]
        step, first_epoch = state["step"], state["epoch"]
    else:
        t0, cpu0 = time.time(), time.process_time()
        setup_info = algo.setup() or {}
        setup_info["setup_time_s"] = round(time.time() - t0, 3)
        setup_info["setup_cpu_time_s"] = round(time.process_time() - cpu0, 3)
        curve, step, first_epoch, last = [], 0, 0, {}
    if logger is not None:  # a resumed run's log is written afresh: what it had logged is in the checkpoint
        logger.log(0, {f"setup/{k}": v for k, v in setup_info.items()})
        for point in curve:
            logger.log(point["step"], point)

    def save(epoch: int) -> None:
        checkpointer.save(epoch, {"algo": algo, "setup": setup_info, "curve": curve, "step": step,
                                  "epoch": epoch, "last": last})

    if state is None and checkpointer is not None and checkpointer.enabled:
        save(0)  # model training (setup) can be the longest phase of a model-based run
    bar = Progress(f"{type(algo).__name__} policy training", total=cfg.epochs, unit="epoch", show=progress)
    if first_epoch:
        bar.update(first_epoch)
    for epoch in range(first_epoch, cfg.epochs):
        diag: dict[str, list[float]] = defaultdict(list)
        for _ in range(cfg.steps_per_epoch):
            batch = algo.next_batch(step)
            for k, v in check_finite(algo.learn(batch) or {}, step + 1).items():
                diag[k].append(v)
            step += 1
        for k, v in (algo.end_epoch(epoch) or {}).items():
            diag[k].append(v)
        mean, std, _ = evaluate(
            lambda o: algo.act(o, deterministic=True), make_env, cfg.eval_episodes, cfg.seed
        )
        check_finite({"evaluation return": mean}, step)
        point = {
            "step": step,
            "epoch": epoch + 1,
            "return_mean": mean,
            "return_std": std,
            "score": normalize(mean),
            "score_std": None,
        }
        last = {k: finite_mean(v) for k, v in diag.items()}
        point.update({f"train/{k}": v for k, v in last.items()})
        curve.append(point)
        if logger is not None:
            logger.log(step, point)
        bar.update(1, ret=f"{mean:.1f}", score=point["score"])
        if checkpointer is not None and checkpointer.due(epoch + 1) and epoch + 1 < cfg.epochs:
            save(epoch + 1)
    bar.close()
    return {"curve": curve, "setup": setup_info, "train": last, "algo": algo}
