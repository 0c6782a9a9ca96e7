"""Ray executor: fan a suite's runs out as Ray tasks on a cluster (or a local Ray).

Each run is one task (``num_cpus=cpus_per_run``, ``num_gpus=gpus_per_run``, one torch thread per CPU).
A worker runs :func:`benchmark.runner.run_one`, writes the record under ``results_dir`` *on its own
machine* and also returns the record to the driver, which writes it (atomically, same path) into the
driver's ``results_dir``. So results land in the driver's store whether or not the workers share a file
system with it. A task whose worker process dies (node preempted, OOM-killed) is retried by Ray up to
``max_retries`` times, then the driver writes a ``failed`` record for it; an exception inside training is not
retried: it is recorded as a ``failed`` run.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from benchmark.results import RunBusy, write_record
from benchmark.runner import (
    AnalysisJob,
    RunSpec,
    busy_summary,
    crash_record,
    execute,
    existing_record,
    prepare,
    prepare_analysis,
    summarize,
)


def _remote_run(run: RunSpec | AnalysisJob, results_dir: str, force: bool, threads: int) -> dict:
    try:
        return execute(run, Path(results_dir), force=force, threads=threads)
    except RunBusy as e:  # another process (sharing the results folder) is producing this run
        return busy_summary(run, e)


def run_many_ray(
    runs: list[RunSpec | AnalysisJob],
    results_dir: Path,
    address: str | None = None,
    force: bool = False,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    max_retries: int = 2,
    progress: bool = True,
    num_cpus: int | None = None,
) -> list[dict]:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("the ray executor needs Ray: pip install 'admbench[ray]'") from e

    results_dir = Path(results_dir)
    summaries: list[dict] = []
    todo: list[RunSpec | AnalysisJob] = []
    threads = max(1, int(cpus_per_run))
    for run in runs:  # fail fast on bad names, and skip finished runs without a cluster round trip
        done = None
        if isinstance(run, RunSpec):
            chash = prepare(run, threads)[-1]
            done = None if force else existing_record(run.path(results_dir), chash)
        else:
            prepare_analysis(run)
        if done is not None:
            summaries.append({**summarize(done), "_skipped": True})
        else:
            todo.append(run)
    if not todo:
        return summaries

    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": num_cpus}
        ray.init(ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, **kwargs)
    remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries)(_remote_run)
    pending = {remote.remote(run, str(results_dir), force, threads): run for run in todo}
    bar = tqdm(total=len(todo), desc="runs (ray)", disable=not progress)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            run = pending.pop(ref)
            try:
                record = ray.get(ref)
                if not record.get("_skipped") and record.get("status") != "busy":
                    write_record(run.path(results_dir), record)
                summaries.append(summarize(record))
            except Exception as e:  # retries exhausted: the worker kept dying; record it as failed
                reason = f"ray task failed after {max_retries} retries: {type(e).__name__}: {e}"
                summaries.append(summarize(crash_record(run, results_dir, reason)))
            bar.update()
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
    return summaries
