"""Per-run training metrics, kept beside the record: ``seed-<n>.metrics.jsonl``.

The trainers (:func:`benchmark.rl.trainers.train_offline`, :func:`benchmark.rl.online.train_online`) call a
:class:`benchmark.rl.trainers.MetricsLogger` (the loops' protocol; these are its harness implementations)
once per evaluation point (and once after setup, at step 0) with every scalar they have: losses, Q values,
alpha, model errors, rollout statistics, evaluation returns and scores.

* :class:`JsonlMetrics` (always on under ``admbench run`` / ``reproduce``): one JSON object per line,
  ``{"step": ..., "<metric>": value, ...}``. Lines go to ``<name>.partial`` while the run trains, each
  written with one ``write`` and flushed, and the file is renamed to its final name when the run ends (also
  when it fails), so the final file is never half-written and a crash leaves the partial log to read.
  The name does not match the record glob ``seed-*.json``.
* :class:`TensorBoardMetrics` (optional extra ``pip install 'admbench[tensorboard]'``, switched on with
  ``ADMBENCH_TENSORBOARD=<log dir>``): the same stream as TensorBoard scalars, live.
* :func:`benchmark.reporting.figures.plot_metrics` draws a metrics file to PNG (``admbench plot-metrics
  FILE``); this module only writes and reads them, so the runner's loggers stand below the reporting rooms.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from benchmark.rl.trainers import MetricsLogger

METRICS_SUFFIX = ".metrics.jsonl"
TENSORBOARD_ENV = "ADMBENCH_TENSORBOARD"


def metrics_path(record_path: Path) -> Path:
    """``.../seed-3.json`` -> ``.../seed-3.metrics.jsonl``."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + METRICS_SUFFIX)


def scalars(metrics: dict) -> dict[str, float]:
    """The finite numbers of ``metrics`` (bools and ints as floats; None, NaN, text and lists dropped)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool | int | float) and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


class JsonlMetrics:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._file = open(self.partial, "w", encoding="utf-8")  # a rerun starts a fresh log

    def log(self, step: int, metrics: dict) -> None:
        self._file.write(json.dumps({"step": int(step), **scalars(metrics)}, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)


class TensorBoardMetrics:
    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # the extra is not installed
            raise ImportError(
                f"{TENSORBOARD_ENV} is set but TensorBoard is not installed: "
                "pip install 'admbench[tensorboard]'"
            ) from e
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, step: int, metrics: dict) -> None:
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, global_step=int(step))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class FanOut:
    """Several loggers as one."""

    def __init__(self, loggers: Sequence[MetricsLogger]):
        self.loggers = list(loggers)

    def log(self, step: int, metrics: dict) -> None:
        for logger in self.loggers:
            logger.log(step, metrics)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def run_loggers(record_path: Path, run_name: str) -> FanOut:
    """The loggers of one run: the JSONL file beside its record, and TensorBoard when
    ``$ADMBENCH_TENSORBOARD`` names a log directory (one sub-directory per run)."""
    loggers: list[MetricsLogger] = [JsonlMetrics(metrics_path(record_path))]
    tb_root = os.environ.get(TENSORBOARD_ENV)
    if tb_root:
        loggers.append(TensorBoardMetrics(Path(tb_root) / run_name))
    return FanOut(loggers)


def read_metrics(path: Path) -> list[dict]:
    """The lines of a metrics file (a ``.partial`` one too); a torn last line is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
