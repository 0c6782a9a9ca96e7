"""The shared training loops. They know the algorithm contract, never an algorithm's name."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

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


def read_once(tensor: torch.Tensor) -> list:
    """``tensor.tolist()``: THE read to the host of a whole rollout's, epoch's or training's summary numbers
    (or a rollout's k draws), outside every per-step loop. One named place, so the device-traffic test
    (tests/device_traffic.py) can tell these reads from per-step traffic."""
    return tensor.tolist()


def _as_number(value) -> float | None:
    """A non-tensor diagnostic as a float, or None for what is not a number (never checked, and left out
    of the means, as :func:`check_finite` and :func:`finite_mean` do)."""
    return float(value) if isinstance(value, int | float | np.number) else None


class StepMetrics:
    """The diagnostics ``learn`` returned at every gradient step of one window (an epoch, or the env steps
    between two evaluations), kept as they came: device tensors stay on the device.

    On a GPU each ``.item()`` waits for the queue to drain, several times per update; here the loops only
    append, and :meth:`read` moves all of a window's numbers to the host in one transfer per device, then
    raises :class:`DivergenceError` for the first non-finite one with the step and metric that
    :func:`check_finite` named when it checked every step (the run still fails with the same message; it
    only stops at the end of the window). :func:`finite_means` of the result are :func:`finite_mean`'s,
    bit for bit."""

    _SLOT = 1 << 16  # an entry's place: its add() call * _SLOT + its position in that call's dict

    def __init__(self, unit: str = "gradient step"):
        self.unit = unit
        self._values: dict[str, list] = {}
        self._places: dict[str, list[int]] = {}
        self._steps: list[int | None] = []  # per add() call; None: not checked (end-of-epoch summaries)

    def __len__(self) -> int:
        return len(self._steps)

    def add(self, metrics: dict, step: int | None) -> None:
        base = len(self._steps) * self._SLOT
        self._steps.append(step)
        for position, (key, value) in enumerate(metrics.items()):
            if key not in self._values:
                self._values[key], self._places[key] = [], []
            self._values[key].append(value)
            self._places[key].append(base + position)

    def _host(self) -> tuple[dict[str, np.ndarray], set[tuple[str, int]]]:
        """Every value as float64 on the host, tensors in one copy per device; and the (key, index) of the
        values that are not numbers (NaN in the arrays)."""
        arrays = {key: np.full(len(vals), np.nan) for key, vals in self._values.items()}
        not_numbers: set[tuple[str, int]] = set()
        stacks: dict[torch.device, list[tuple[str, list[int], torch.Tensor]]] = {}
        for key, vals in self._values.items():
            rows = [i for i, v in enumerate(vals) if isinstance(v, torch.Tensor)]
            if len(rows) < len(vals):
                for i, v in enumerate(vals):
                    number = None if isinstance(v, torch.Tensor) else _as_number(v)
                    if number is not None:
                        arrays[key][i] = number
                    elif not isinstance(v, torch.Tensor):
                        not_numbers.add((key, i))
            if rows:
                tensors = vals if len(rows) == len(vals) else [vals[i] for i in rows]
                stacked = torch.stack([t.detach().reshape(()) for t in tensors])
                stacks.setdefault(stacked.device, []).append((key, rows, stacked))
        for parts in stacks.values():
            host = torch.cat([s for _, _, s in parts]).cpu().numpy().astype(np.float64)  # the one transfer
            offset = 0
            for key, rows, _ in parts:
                arrays[key][rows] = host[offset : offset + len(rows)]
                offset += len(rows)
        return arrays, not_numbers

    def _first_divergence(self, arrays: dict[str, np.ndarray], not_numbers: set) -> DivergenceError | None:
        first = None  # (place, key, value): the earliest step, then the first key of that step's dict
        for key, arr in arrays.items():
            for i in np.flatnonzero(~np.isfinite(arr)):
                place = self._places[key][i]
                if (key, i) in not_numbers or self._steps[place // self._SLOT] is None:
                    continue
                if first is None or place < first[0]:
                    first = (place, key, float(arr[i]))
                break
        if first is None:
            return None
        place, key, value = first
        return DivergenceError(key, value, self._steps[place // self._SLOT], self.unit)

    def read(self) -> dict[str, np.ndarray]:
        """Each metric's values on the host (NaN for non-numbers), and the window emptied; raises
        :class:`DivergenceError` when a checked value is NaN or inf."""
        arrays, not_numbers = self._host()
        bad = self._first_divergence(arrays, not_numbers)
        if bad is not None:
            raise bad
        self.__init__(self.unit)
        return arrays

    # A checkpoint pickles the window: one 0-d tensor costs ~250 bytes there, so an ADMPO-ON window of
    # 20,000 updates x 5 metrics took 24.5 of a 37 MiB checkpoint and 4 s of its write. A metric whose
    # values are all scalar tensors of one dtype and device travels as one stacked tensor instead; loading
    # unstacks it into the same values (older checkpoints, with plain lists, load as they are).
    _STACKED = "stacked scalar tensors"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_values"] = {key: self._packed(vals) for key, vals in self._values.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        values = state.get("_values", {})
        state["_values"] = {key: list(v[1].unbind(0)) if isinstance(v, tuple) and v[:1] == (self._STACKED,)
                            else v for key, v in values.items()}
        self.__dict__.update(state)

    @classmethod
    def _packed(cls, vals: list):
        first = vals[0] if vals else None
        if not isinstance(first, torch.Tensor) or not all(
                isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
                and v.dtype == first.dtype and v.device == first.device for v in vals):
            return vals
        return (cls._STACKED, torch.stack(vals))

    def raise_divergence(self, error: BaseException) -> None:
        """For a window whose steps raised (a NaN can make a later op fail): the divergence that came
        before, if any, is what the run failed of."""
        bad = self._first_divergence(*self._host())
        if bad is not None:
            raise bad from error


def finite_means(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """:func:`finite_mean` of every metric of :meth:`StepMetrics.read`."""
    return {key: finite_mean(arr.tolist()) for key, arr in arrays.items()}


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
        if checkpointer is not None and checkpointer.enabled:  # model training inside setup resumes too
            algo.setup_loops = checkpointer.setup_loop
        try:
            setup_info = algo.setup() or {}
        finally:
            algo.setup_loops = None
        # a setup loop resumed from its file: what the killed processes spent on it counts too
        earlier = checkpointer.setup_loops_cost if checkpointer is not None else {"wall_s": 0.0, "cpu_s": 0.0}
        setup_info["setup_time_s"] = round(time.time() - t0 + earlier["wall_s"], 3)
        setup_info["setup_cpu_time_s"] = round(time.process_time() - cpu0 + earlier["cpu_s"], 3)
        if checkpointer is not None and checkpointer.resumed_setup:
            setup_info["setup_resumed"] = checkpointer.resumed_setup
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
        window = StepMetrics()  # the epoch's diagnostics stay on the device until its end: one transfer
        try:
            for _ in range(cfg.steps_per_epoch):
                batch = algo.next_batch(step)
                window.add(algo.learn(batch) or {}, step + 1)
                step += 1
            window.add(algo.end_epoch(epoch) or {}, None)  # summaries, never checked (as before)
        except Exception as error:
            window.raise_divergence(error)
            raise
        diag = window.read()
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
        last = finite_means(diag)
        point.update({f"train/{k}": v for k, v in last.items()})
        curve.append(point)
        if logger is not None:
            logger.log(step, point)
        bar.update(1, ret=f"{mean:.1f}", score=point["score"])
        if checkpointer is not None and checkpointer.due(epoch + 1) and epoch + 1 < cfg.epochs:
            save(epoch + 1)
    bar.close()
    return {"curve": curve, "setup": setup_info, "train": last, "algo": algo}
