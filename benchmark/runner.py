"""Run one (algorithm, task, seed, budget) and write its record; run many through an executor.

The runner never names an algorithm: it looks the name up in the registry, resolves the typed config
(defaults <- per-(algorithm, task) YAML <- budget <- ``--set``), builds the task's data or env and
hands the algorithm to the trainer of its kind.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from benchmark import progress as progress_lines
from benchmark import registry
from benchmark.config import config_hash, config_to_dict, resolve_config
from benchmark.metrics import run_loggers
from benchmark.results import (
    SCHEMA,
    final_value,
    git_commit,
    read_record,
    record_path,
    versions,
    write_record,
)
from benchmark.seeding import rng_preserved, seed_everything
from benchmark.tasks import TaskError, resolve_task

DEFAULT_RESULTS = Path("results")


class KindMismatchError(ValueError):
    pass


@dataclass(frozen=True)
class RunSpec:
    algo: str  # registry id
    task: str
    seed: int
    budget: str
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    suite: str = "adhoc"
    variant: str = ""  # e.g. "m=2" for ablations: stored as algo "admpo-off@m=2"

    @property
    def name(self) -> str:
        """The algorithm name in records, paths and tables (``algo`` or ``algo@variant``)."""
        return f"{self.algo}@{self.variant}" if self.variant else self.algo

    def path(self, results_dir: Path) -> Path:
        return record_path(results_dir, self.suite, self.name, self.task, self.seed)

    def label(self) -> str:
        return f"{self.name} {self.task} seed={self.seed} budget={self.budget}"


@dataclass(frozen=True)
class AnalysisSpec:
    """An analysis job (compounding error, uncertainty vs error) of a suite; see adm/analysis.py."""

    analysis: str
    task: str
    seed: int
    budget: str
    suite: str = "adhoc"

    @property
    def name(self) -> str:
        return f"analysis-{self.analysis}"

    def path(self, results_dir: Path) -> Path:
        return record_path(results_dir, self.suite, self.name, self.task, self.seed)

    def label(self) -> str:
        return f"{self.name} {self.task} seed={self.seed} budget={self.budget}"


def prepare(run: RunSpec):
    """Check names and build the config; raises clear errors before any work starts."""
    spec = registry.get(run.algo)
    task = resolve_task(run.task)
    if spec.kind != task.kind:
        need = (
            "offline algorithms need a dataset task (local/, d4rl/, neorl/, minari/)"
            if spec.kind == "offline"
            else "online algorithms need an environment task (mujoco/<Env>)"
        )
        raise KindMismatchError(
            f"algorithm {run.algo!r} is {spec.kind} but task {run.task!r} is {task.kind}; {need}"
        )
    cfg, provenance = resolve_config(
        spec.config_cls, spec.config_dir, task.config_keys, run.budget, run.overrides, seed=run.seed
    )
    cfg_dict = config_to_dict(cfg)
    payload = {"algo": run.name, "task": run.task, "seed": run.seed, "budget": run.budget, "config": cfg_dict}
    data = task.data_fingerprint()
    if data is not None:  # locally built data: a rebuilt dataset makes old records stale
        payload["data"] = data
    chash = config_hash(payload)
    return spec, task, cfg, cfg_dict, provenance, chash


def existing_record(path: Path, chash: str) -> dict | None:
    """A finished record with the same config hash, or None (missing, failed, other config, corrupt)."""
    if not path.exists():
        return None
    try:
        rec = read_record(path)
    except Exception:
        return None
    return rec if rec.get("status") == "ok" and rec.get("config_hash") == chash else None


def _env_fields(task) -> dict:
    """What an algorithm needs to know about the task's environment (dims, action box)."""
    env = task.make_env()
    fields = {
        "env_key": task.env_key,
        "obs_dim": env.observation_space.shape[0],
        "act_dim": env.action_space.shape[0],
        "act_scale": float(env.action_space.high[0]),
    }
    env.close()
    return fields


def _train(spec, task, cfg, progress: bool, record_path: Path | None = None) -> dict:
    """Train with progress on or off (``--quiet``, pool workers) and the run's metrics file
    (``seed-<n>.metrics.jsonl`` beside the record, :mod:`benchmark.metrics`)."""
    run_name = "/".join([*Path(record_path).parts[-4:-1], Path(record_path).stem]) if record_path else ""
    logger = run_loggers(record_path, run_name) if record_path else None
    try:
        with contextlib.nullcontext() if progress else progress_lines.disabled():
            return _train_run(spec, task, cfg, progress, logger)
    finally:
        if logger is not None:
            logger.close()


def _train_run(spec, task, cfg, progress: bool, logger) -> dict:
    common = {**_env_fields(task), "device": torch.device(cfg.device), "seed": cfg.seed, "progress": progress}
    if spec.kind == "offline":
        from benchmark.rl.algorithm import OfflineContext
        from benchmark.rl.trainers import train_offline

        with rng_preserved():  # a first-use build must not move the seeded streams (cold == warm cache)
            dataset = task.load_dataset()
        dataset.validate(obs_dim=common["obs_dim"], act_dim=common["act_dim"])
        algo = spec.factory(cfg, OfflineContext(dataset=dataset, **common))
        out = train_offline(algo, cfg, task.make_env, task.normalize, progress=progress, logger=logger)
        out["dataset"] = {
            **dataset.summary(),
            **{k: v for k, v in dataset.meta.items() if k in ("sha256", "size", "seed")},
        }
        return out
    from benchmark.rl.online import OnlineContext, train_online

    algo = spec.factory(cfg, OnlineContext(**common))
    return train_online(algo, cfg, task.make_env, task.normalize, progress=progress, logger=logger)


def run_one(
    run: RunSpec,
    results_dir: Path = DEFAULT_RESULTS,
    progress: bool = True,
    force: bool = False,
    threads: int = 1,
) -> dict:
    """Train one run and write its record (also when it fails). Returns the record.

    An existing ``ok`` record with the same config hash is returned untouched unless ``force``.
    """
    spec, task, cfg, cfg_dict, provenance, chash = prepare(run)
    path = run.path(results_dir)
    if not force:
        done = existing_record(path, chash)
        if done is not None:
            done["_skipped"] = True
            return done
    seed_everything(run.seed, threads=threads)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "suite": run.suite,
        "algo": run.name,
        "algo_id": run.algo,
        "variant": run.variant,
        "task": run.task,
        "seed": run.seed,
        "budget": run.budget,
        "config": cfg_dict,
        "config_hash": chash,
        "config_provenance": provenance,
        "versions": versions(),
        "commit": git_commit(),
        "status": "ok",
        "reason": None,
        "curve": [],
        "final_rule": f"mean of the last final_k={cfg.final_k} evaluations",
    }
    t0 = time.time()
    try:
        out = _train(spec, task, cfg, progress, path)
        record["curve"] = out["curve"]
        record["setup_info"] = out.get("setup", {})
        record["train_info"] = out.get("train", {})
        if "dataset" in out:
            record["dataset"] = out["dataset"]
    except Exception as e:  # a failing run records its failure; the sweep goes on
        record["status"] = "failed"
        record["reason"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc(limit=20)
    record["wall_time_s"] = round(time.time() - t0, 3)
    record["final_score"] = final_value(record["curve"], "score", cfg.final_k)
    record["final_return"] = final_value(record["curve"], "return_mean", cfg.final_k)
    write_record(path, record)
    return record


ANALYSIS_SCHEMA = "admbench.analysis/1"


def run_analysis_job(
    job: AnalysisSpec, results_dir: Path = DEFAULT_RESULTS, force: bool = False, threads: int = 1
) -> dict:
    """Run one analysis (``adm.analysis.run_analysis``) and store its output as a record."""
    path = job.path(results_dir)
    chash = config_hash({"analysis": job.analysis, "task": job.task, "seed": job.seed, "budget": job.budget})
    if not force and path.exists():
        try:
            done = json.loads(path.read_text())
            if done.get("status") == "ok" and done.get("config_hash") == chash:
                return {**done, "_skipped": True}
        except json.JSONDecodeError:
            pass
    seed_everything(job.seed, threads=threads)
    record: dict[str, Any] = {
        "schema": ANALYSIS_SCHEMA,
        "suite": job.suite,
        "algo": job.name,
        "analysis": job.analysis,
        "task": job.task,
        "seed": job.seed,
        "budget": job.budget,
        "config": {},
        "config_hash": chash,
        "versions": versions(),
        "commit": git_commit(),
        "status": "ok",
        "reason": None,
        "curve": [],
    }
    t0 = time.time()
    try:
        from adm.analysis import run_analysis

        record["result"] = run_analysis(job.analysis, job.task, job.seed, job.budget)
    except Exception as e:
        record["status"], record["reason"] = "failed", f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc(limit=20)
    record["wall_time_s"] = round(time.time() - t0, 3)
    write_record(path, record)
    return record


def execute(
    job: RunSpec | AnalysisSpec,
    results_dir: Path,
    force: bool = False,
    threads: int = 1,
    progress: bool = False,
) -> dict:
    if isinstance(job, AnalysisSpec):
        return run_analysis_job(job, results_dir, force=force, threads=threads)
    return run_one(job, results_dir, progress=progress, force=force, threads=threads)


def summarize(record: dict) -> dict:
    keys = ("algo", "task", "seed", "status", "reason", "final_score", "wall_time_s", "_skipped")
    return {k: record.get(k) for k in keys}


def prebuild_local_datasets(runs: Iterable[RunSpec | AnalysisSpec]) -> None:
    """Build (or check) every ``local/`` dataset the runs need, once, before any run starts."""
    for task_id in sorted({r.task for r in runs if r.task.startswith("local/")}):
        try:
            resolve_task(task_id).load_dataset()
        except Exception:  # the runs meet the same error and record it as their failure
            continue


def _short_label(job: RunSpec | AnalysisSpec) -> str:
    return f"{job.name} {job.task} s{job.seed}"


def _worker(job: RunSpec | AnalysisSpec, results_dir: str, force: bool) -> dict:
    return summarize(execute(job, Path(results_dir), force=force, threads=1))


def run_many(
    runs: Iterable[RunSpec],
    results_dir: Path = DEFAULT_RESULTS,
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Local executor: a process pool (spawn, one torch thread per run). Finished runs are skipped."""
    runs = list(runs)
    for run in runs:  # fail fast on bad names/configs before any process starts
        if isinstance(run, RunSpec):
            prepare(run)
    prebuild_local_datasets(runs)  # here, with progress, not silently and racing inside the workers
    summaries: list[dict] = []
    bar = progress_lines.Progress("runs", total=len(runs), unit="run", show=progress)
    if workers <= 1:
        for run in runs:
            bar.update(0, running=_short_label(run))
            summaries.append(_worker(run, str(results_dir), force))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_worker, run, str(results_dir), force): run for run in runs}
            labels = {fut: _short_label(run) for fut, run in futures.items()}
            for fut in progress_lines.as_completed_naming(labels, bar, workers):
                run = futures[fut]
                try:
                    summaries.append(fut.result())
                except Exception as e:  # the worker process itself died
                    summaries.append(
                        {
                            "algo": run.name,
                            "task": run.task,
                            "seed": run.seed,
                            "status": "failed",
                            "reason": f"worker crashed: {type(e).__name__}: {e}",
                        }
                    )
                bar.update()
    bar.close()
    return summaries


__all__ = [
    "AnalysisSpec",
    "KindMismatchError",
    "RunSpec",
    "TaskError",
    "execute",
    "prepare",
    "run_many",
    "run_one",
]
