"""Run one (algorithm, task, seed, budget) and write its record; run many through an executor.

The runner never names an algorithm: it looks the name up in the registry, resolves the typed config
(defaults <- per-(algorithm, task) YAML <- budget <- ``--set``), builds the task's data or env and
hands the algorithm to the trainer of its kind.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark import progress as progress_lines
from benchmark import registry
from benchmark.config import config_hash, config_to_dict, resolve_config
from benchmark.metrics import run_loggers
from benchmark.results import (
    SCHEMA,
    WHOLE_RUN,
    RunBusy,
    claim_run,
    final_value,
    git_commit,
    is_finished,
    record_path,
    validate_record,
    versions,
    write_record,
)
from benchmark.rl.checkpoint import Checkpointer, StageCheckpoints, save_policy
from benchmark.seeding import preserved_rng, seed_everything
from benchmark.tasks import TaskError, resolve_task

DEFAULT_RESULTS = Path("results")
# fitted models that analysis jobs share (adm.analysis.train_models), under the results root; not committed
SHARED_STAGES = ".shared-stages"
CHECKPOINT_DIR_SUFFIX = ".checkpoints"  # a run's checkpoint folder: seed-N.checkpoints/ beside its record


# config fields that cannot change a result (tested: a resumed run equals an uninterrupted one)
NOT_HASHED = frozenset({"checkpoint_every"})
# performance switches that can change numbers (a compiled update is not bit-exact): they join the hash only
# when set away from their default, so every record made before such a switch existed keeps its hash
HASHED_WHEN_SET = frozenset({"compile"})


def hashed_config(config_cls: type, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config the hash covers: all but :data:`NOT_HASHED`, and the
    :data:`HASHED_WHEN_SET` fields only where they differ from the class default."""
    defaults = config_to_dict(config_cls())
    return {k: v for k, v in cfg_dict.items()
            if k not in NOT_HASHED and not (k in HASHED_WHEN_SET and v == defaults.get(k))}


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
    # where each override was written (e.g. "suite S.yaml runs[0].set"); "--set" when absent
    override_sources: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        """The algorithm name in records, paths and tables (``algo`` or ``algo@variant``)."""
        return f"{self.algo}@{self.variant}" if self.variant else self.algo

    def path(self, results_dir: Path) -> Path:
        return record_path(results_dir, self.suite, self.name, self.task, self.seed)

    def label(self) -> str:
        return f"{self.name} {self.task} seed={self.seed} budget={self.budget}"


@dataclass(frozen=True)
class AnalysisJob:
    """One analysis job of a suite (compounding error, uncertainty vs error, ...): a registered
    :class:`benchmark.registry.AnalysisSpec` on one task, seed and budget."""

    analysis: str  # registry name
    task: str
    seed: int
    budget: str
    suite: str = "adhoc"
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # sizes fields

    @property
    def name(self) -> str:
        return f"analysis-{self.analysis}"

    def path(self, results_dir: Path) -> Path:
        return record_path(results_dir, self.suite, self.name, self.task, self.seed)

    def label(self) -> str:
        return f"{self.name} {self.task} seed={self.seed} budget={self.budget}"


def prepare(run: RunSpec, threads: int = 1):
    """Check names and build the config; raises clear errors before any work starts.

    The config hash covers everything a run's result depends on besides code and platform (which the record
    stores beside it, and ``regress`` compares): the algorithm (and variant), task, seed, budget, the whole
    resolved config, the data's fingerprint (:meth:`TaskSpec.data_fingerprint`) and the torch thread count
    when it is not the default 1 (CPU reductions may split differently)."""
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
        spec.config_cls, spec.config_dir, task.config_keys, run.budget, run.overrides, seed=run.seed,
        override_sources=run.override_sources,
    )
    cfg_dict = config_to_dict(cfg)
    hashed = hashed_config(spec.config_cls, cfg_dict)
    payload = {"algo": run.name, "task": run.task, "seed": run.seed, "budget": run.budget, "config": hashed}
    data = task.data_fingerprint()
    if data is not None:  # a rebuilt or replaced dataset makes old records stale
        payload["data"] = data
    if threads != 1:
        payload["threads"] = threads
    chash = config_hash(payload)
    return spec, task, cfg, cfg_dict, provenance, chash


def existing_record(path: Path, chash: str) -> dict | None:
    """A finished record with the same config hash, or None (missing, failed, not finite, other config,
    corrupt). A corrupt or non-finite record is named in a warning: it is rerun, never taken as done."""
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
        if rec.get("schema", SCHEMA) == SCHEMA:
            validate_record(rec, str(path))
    except (OSError, ValueError, AttributeError) as e:
        warn(f"{path}: unreadable record ({e}); the run is redone")
        return None
    if rec.get("config_hash") != chash:
        return None
    if rec.get("status") == "ok" and not is_finished(rec):
        warn(f"{path}: an 'ok' record without a finite final score; the run is redone")
        return None
    return rec if is_finished(rec) else None


def warn(message: str) -> None:
    print(f"admbench: warning: {message}", file=sys.stderr)


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


def _inputs(spec, task, cfg, progress: bool) -> tuple[dict, Any]:
    """Everything a run reads before its seed is set: env dims and, offline, the (maybe freshly built)
    dataset. Nothing here draws from the training streams (see :func:`benchmark.seeding.preserved_rng`)."""
    with preserved_rng():
        env_fields = _env_fields(task)
    common = {**env_fields, "device": torch.device(cfg.device), "seed": cfg.seed, "progress": progress}
    if spec.kind != "offline":
        return common, None
    dataset = task.load_dataset()
    dataset.validate(obs_dim=common["obs_dim"], act_dim=common["act_dim"])
    return common, dataset


def checkpoint_dir(record_path: Path) -> Path:
    """Where a run's checkpoints live: beside its record (``seed-N.checkpoints/``)."""
    return record_path.with_name(record_path.stem + CHECKPOINT_DIR_SUFFIX)


def policy_path(record_path: Path) -> Path:
    """Where ``--keep-policy`` writes the trained policy: beside its record (``seed-N.policy.pt``)."""
    return record_path.with_name(f"{record_path.stem}.policy.pt")


POLICY_META = ("algo", "algo_id", "task", "seed", "budget", "config", "config_hash", "versions", "commit",
               "final_score", "final_return", "final_rule")


def _train(spec, task, cfg, common: dict, dataset, progress: bool, checkpointer=None,
           record_path: Path | None = None) -> dict:
    """Train, writing the run's metrics file (``seed-<n>.metrics.jsonl`` beside the record,
    :mod:`benchmark.metrics`) as it goes."""
    run_name = "/".join([*Path(record_path).parts[-4:-1], Path(record_path).stem]) if record_path else ""
    logger = run_loggers(record_path, run_name) if record_path else None
    try:
        return _train_run(spec, task, cfg, common, dataset, progress, checkpointer, logger)
    finally:
        if logger is not None:
            logger.close()


def _train_run(spec, task, cfg, common: dict, dataset, progress: bool, checkpointer, logger) -> dict:
    if spec.kind == "offline":
        from benchmark.rl.algorithm import Context
        from benchmark.rl.trainers import train_offline

        algo = spec.factory(cfg, Context(dataset=dataset, **common))
        out = train_offline(algo, cfg, task.make_env, task.normalize, progress=progress, logger=logger,
                            checkpointer=checkpointer)
        out["dataset"] = {
            **dataset.summary(),
            **{k: v for k, v in dataset.meta.items() if k in ("sha256", "size", "seed")},
        }
        return out
    from benchmark.rl.online import Context, train_online

    algo = spec.factory(cfg, Context(None, **common))
    return train_online(algo, cfg, task.make_env, task.normalize, progress=progress, logger=logger,
                        checkpointer=checkpointer)


def _record(schema: str, job: RunSpec | AnalysisJob, cfg_dict: dict, chash: str, provenance: dict
            ) -> dict[str, Any]:
    """What every record starts with: who, what, where from and on what (status ``ok`` until proven
    otherwise)."""
    return {
        "schema": schema,
        "suite": job.suite,
        "algo": job.name,
        "task": job.task,
        "seed": job.seed,
        "budget": job.budget,
        "config": cfg_dict,
        "config_hash": chash,
        "config_provenance": provenance,
        "versions": versions(),
        "commit": git_commit(),
        "status": "ok",
        "reason": None,
        "curve": [],
    }


def new_record(run: RunSpec, cfg_dict: dict, chash: str, provenance: dict, final_k: int) -> dict[str, Any]:
    """A run's record before training: everything but the outcome."""
    return {
        **_record(SCHEMA, run, cfg_dict, chash, provenance),
        "algo_id": run.algo,
        "variant": run.variant,
        "final_rule": f"mean of the last final_k={final_k} evaluations",
    }


def _finished(path: Path, chash: str, force: bool) -> dict | None:
    """The finished record to return instead of working (marked ``_skipped``), unless ``force``."""
    done = None if force else existing_record(path, chash)
    if done is not None:
        done["_skipped"] = True
    return done


def _note_commits(record: dict, commits: list[str]) -> None:
    """``commits``: every commit whose code produced part of the result (segments resumed from checkpoints,
    stages loaded from files, models shared by other jobs), when that is more than the record's ``commit``
    (``unrecorded``: a file from before files kept their commits)."""
    if commits and commits != [record["commit"]]:
        record["commits"] = list(commits)


def _fail(record: dict, exc: BaseException) -> None:
    record["status"] = "failed"
    record["reason"] = f"{type(exc).__name__}: {exc}"
    record["traceback"] = traceback.format_exc(limit=20)


def run_one(
    run: RunSpec,
    results_dir: Path = DEFAULT_RESULTS,
    progress: bool = True,
    force: bool = False,
    threads: int = 1,
    keep_policy: bool = False,
) -> dict:
    """Train one run and write its record (also when it fails). Returns the record.

    ``keep_policy`` also writes the trained algorithm as a self-describing policy file beside the record
    (:func:`policy_path`; ``admbench evaluate`` runs it again).

    An existing finished record with the same config hash is returned untouched unless ``force``. The run
    holds the record's claim (:func:`benchmark.results.claim_run`) while it trains: a second process asking
    for the same run gets :class:`benchmark.results.RunBusy` instead of training it twice.
    """
    spec, task, cfg, cfg_dict, provenance, chash = prepare(run, threads)
    path = run.path(results_dir)
    done = _finished(path, chash, force)
    if done is not None:
        return done
    with claim_run(path):
        done = _finished(path, chash, force)  # finished by another process while we were preparing
        if done is not None:
            return done
        record = new_record(run, cfg_dict, chash, provenance, cfg.final_k)
        checkpointer = Checkpointer(checkpoint_dir(path), chash, getattr(cfg, "checkpoint_every", 0),
                                    commit=record["commit"])
        if force:
            checkpointer.clear()
        t0, cpu0 = time.time(), time.process_time()
        try:
            with contextlib.nullcontext() if progress else progress_lines.disabled():
                common, dataset = _inputs(spec, task, cfg, progress)
                seed_everything(run.seed, threads=threads)
                out = _train(spec, task, cfg, common, dataset, progress, checkpointer, path)
            trained = out.pop("algo", None)
            if checkpointer.resumed_from is not None:
                record["resumed_from"] = checkpointer.resumed_from
            _note_commits(record, checkpointer.commits)
            record["curve"] = out["curve"]
            record["setup_info"] = out.get("setup", {})
            record["train_info"] = out.get("train", {})
            if "dataset" in out:
                record["dataset"] = out["dataset"]
        except Exception as e:  # a failing run records its failure; the sweep goes on
            _fail(record, e)
            trained = None
        record["wall_time_s"] = round(time.time() - t0, 3)
        # CPU-seconds of this process (all its threads): what --plan's CPU-hours count; a loaded host
        # stretches wall time, hardly this
        record["cpu_time_s"] = round(time.process_time() - cpu0, 3)
        # a resumed run (from a checkpoint, or mid-setup from a setup loop's file) costs its earlier segments
        if checkpointer.resumed_from is not None or checkpointer.resumed_setup:
            spent = checkpointer.spent()
            if spent is None:
                record["time_covers"] = (f"the segment since the resume at {checkpointer.resumed_from} only "
                                         "(its checkpoint predates kept costs)")
            else:
                record["wall_time_s"], record["cpu_time_s"] = spent["wall_s"], spent["cpu_s"]
                record["time_covers"] = WHOLE_RUN
        record["final_score"] = final_value(record["curve"], "score", cfg.final_k)
        record["final_return"] = final_value(record["curve"], "return_mean", cfg.final_k)
        if record["status"] == "ok" and not is_finished(record):
            record["status"] = "failed"
            record["reason"] = (
                f"no finite final score: final_score={record['final_score']}, "
                f"final_return={record['final_return']} over {len(record['curve'])} evaluations"
            )
        try:
            write_record(path, record)
        except OSError as e:
            raise OSError(e.errno, f"could not write the record {path}: {e.strerror}") from e
        if keep_policy and record["status"] == "ok" and trained is not None:
            save_policy(policy_path(path), trained, {k: record.get(k) for k in POLICY_META})
        if record["status"] == "ok":
            checkpointer.clear()  # the record is the result now
        # a failed run keeps its checkpoints: the next sweep reruns it from there (a divergence repeats
        # at the same step, cheaply; a failure a fix removes, e.g. to resume older checkpoints, loses nothing)
    return record


def crash_record(job: RunSpec | AnalysisJob, results_dir: Path, reason: str) -> dict:
    """Write (and return) the ``failed`` record of a run whose worker process died (kill -9, OOM) and was
    not retried any more, so the failure shows in reports and the next ``reproduce`` redoes the run."""
    path = job.path(results_dir)
    if isinstance(job, RunSpec):
        spec, task, cfg, cfg_dict, provenance, chash = prepare(job)
        record = new_record(job, cfg_dict, chash, provenance, cfg.final_k)
    else:
        record = _analysis_record(job, *prepare_analysis(job)[3:])
    record.update({"status": "failed", "reason": reason, "wall_time_s": 0.0, "final_score": None,
                   "final_return": None})
    try:
        with claim_run(path):
            write_record(path, record)
    except RunBusy:  # a retry elsewhere is producing it: leave that one alone
        pass
    return record


ANALYSIS_SCHEMA = "admbench.analysis/1"


def prepare_analysis(job: AnalysisJob):
    """Look the analysis up and resolve its sizes like a run's config (defaults <- fields inherited from the
    ``config_from`` algorithm's config <- YAML <- budget <- overrides) before any work. The config hash
    covers the job's identity (analysis, task, seed, budget) and its overrides."""
    spec = registry.get_analysis(job.analysis)
    task = resolve_task(job.task)
    inherited, inherited_from = {}, ""
    if spec.config_from:
        algo = registry.get(spec.config_from)
        # the method's settings as it is run on this task (paper budget: budgets change sizes only)
        algo_cfg, algo_provenance = resolve_config(algo.config_cls, algo.config_dir, task.config_keys,
                                                   "paper")
        inherited = {mine: getattr(algo_cfg, theirs) for mine, theirs in spec.inherit}
        inherited_from = (f"the {spec.config_from} config "
                          f"({algo_provenance['config_file'] or algo.config_cls.__name__ + ' defaults'})")
    sizes, provenance = resolve_config(
        spec.config_cls, spec.config_dir, task.config_keys, job.budget, job.overrides, seed=job.seed,
        inherited=inherited, inherited_from=inherited_from,
    )
    payload = {"analysis": job.analysis, "task": job.task, "seed": job.seed, "budget": job.budget}
    if job.overrides:
        payload["overrides"] = job.overrides
    return spec, task, sizes, config_to_dict(sizes), provenance, config_hash(payload)


def _analysis_record(job: AnalysisJob, cfg_dict: dict, provenance: dict, chash: str) -> dict[str, Any]:
    return {**_record(ANALYSIS_SCHEMA, job, cfg_dict, chash, provenance), "analysis": job.analysis}


def run_analysis(job: AnalysisJob, prepared: tuple | None = None, stages: StageCheckpoints | None = None
                 ) -> dict:
    """The result of one analysis job (no record written): the registered ``run`` on the task's data.
    ``stages`` goes to a ``run`` that takes it (it keeps finished stages, such as fitted models)."""
    spec, task, sizes, *_ = prepared or prepare_analysis(job)
    extra = {"stages": stages} if stages is not None and "stages" in inspect.signature(spec.run).parameters \
        else {}
    out = spec.run(task.load_dataset(), task.env_key, sizes, job.seed, **extra)
    return {"task": job.task, "budget": job.budget, **out, "seed": job.seed}


def run_analysis_job(
    job: AnalysisJob, results_dir: Path = DEFAULT_RESULTS, force: bool = False, threads: int = 1
) -> dict:
    """Run one analysis and store its output (``result``) as a record."""
    prepared = prepare_analysis(job)
    path, (cfg_dict, provenance, chash) = job.path(results_dir), prepared[3:]
    done = _finished(path, chash, force)
    if done is not None:
        return done
    with claim_run(path):
        seed_everything(job.seed, threads=threads)
        record = _analysis_record(job, cfg_dict, provenance, chash)
        # finished stages (fitted models) survive a kill; a failure keeps them for the retry, as runs do
        stages = StageCheckpoints(checkpoint_dir(path), chash, shared_dir=results_dir / SHARED_STAGES,
                                  commit=record["commit"])
        try:
            record["result"] = run_analysis(job, prepared, stages)
        except Exception as e:  # a failing analysis records its failure; the sweep goes on
            _fail(record, e)
        # CPU time too, across resumed stages: --plan estimates analysis jobs from it (a loaded host
        # stretches only the wall time)
        spent = stages.spent()
        record["wall_time_s"], record["cpu_time_s"] = spent["wall_s"], spent["cpu_s"]
        record["stage_costs"] = stages.costs  # which fitted model the job's time went to
        if stages.loaded:
            record["resumed_stages"] = list(stages.loaded)
        if stages.shared:  # fitted by another job (its cost is in that job's record, not in this one's)
            record["shared_stages"] = dict(stages.shared)
        _note_commits(record, stages.commits)
        write_record(path, record)
        if record["status"] == "ok":
            stages.clear()
    return record


def execute(
    job: RunSpec | AnalysisJob,
    results_dir: Path,
    force: bool = False,
    threads: int = 1,
    progress: bool = False,
    keep_policy: bool = False,
) -> dict:
    if isinstance(job, AnalysisJob):
        return run_analysis_job(job, results_dir, force=force, threads=threads)
    return run_one(job, results_dir, progress=progress, force=force, threads=threads, keep_policy=keep_policy)


def busy_summary(job: RunSpec | AnalysisJob, err: RunBusy) -> dict:
    """The summary of a job another live process is producing (its record will appear when it ends)."""
    return {"algo": job.name, "task": job.task, "seed": job.seed, "status": "busy", "reason": str(err)}


def summarize(record: dict) -> dict:
    keys = ("algo", "task", "seed", "status", "reason", "final_score", "wall_time_s", "_skipped")
    return {k: record.get(k) for k in keys}


__all__ = [
    "AnalysisJob",
    "KindMismatchError",
    "RunSpec",
    "TaskError",
    "execute",
    "prepare",
    "run_one",
]
