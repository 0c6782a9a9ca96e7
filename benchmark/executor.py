"""Local executor: a suite's runs on a pool of worker processes on this machine.

Each worker is a spawned process (one torch thread) that runs one job at a time and answers on its own
pipe, so the driver always knows which job a worker holds. A worker that dies (kill -9, the OOM killer)
fails only its own job: the driver starts a fresh worker, retries that job up to ``max_retries`` times and
then writes a ``failed`` record for it (:func:`benchmark.runner.crash_record`); every other job goes on. The
Ray executor (``benchmark/ray_executor.py``) gives the same guarantees on a cluster.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable
from multiprocessing.connection import Connection, wait
from pathlib import Path

from benchmark import progress as progress_lines
from benchmark.results import RunBusy
from benchmark.runner import (
    AnalysisJob,
    RunSpec,
    busy_summary,
    checkpoint_dir,
    crash_record,
    execute,
    prepare,
    prepare_analysis,
    summarize,
)
from benchmark.tasks import resolve_task

Job = RunSpec | AnalysisJob


def prebuild_local_datasets(runs: Iterable[Job]) -> None:
    """Build (or check) every ``local/`` dataset the runs need, once, before any run starts: here, with
    progress shown, rather than silently inside the workers."""
    for task_id in sorted({r.task for r in runs if r.task.startswith("local/")}):
        try:
            resolve_task(task_id).load_dataset()
        except Exception:  # the runs meet the same error and record it as their failure
            continue


def _short_label(job: Job) -> str:
    return f"{job.name} {job.task} s{job.seed}"


def run_job(
    job: Job, results_dir: Path, force: bool, threads: int = 1, progress: bool = False,
    keep_policy: bool = False,
) -> dict:
    """Run one job in this process; the summary of its record (``busy`` if another process holds it)."""
    try:
        return summarize(execute(job, results_dir, force=force, threads=threads, progress=progress,
                                 keep_policy=keep_policy))
    except RunBusy as e:
        return busy_summary(job, e)


def _worker_loop(conn: Connection, results_dir: str, force: bool, keep_policy: bool) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(run_job(job, Path(results_dir), force, keep_policy=keep_policy))


class _Worker:
    def __init__(self, ctx, results_dir: Path, force: bool, keep_policy: bool):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child, str(results_dir), force, keep_policy),
                                   daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None

    def give(self, job: Job) -> None:
        self.job = job
        self.conn.send(job)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def interrupted_first(runs: list[Job], results_dir: Path) -> list[Job]:
    """The jobs that saved progress (a non-empty checkpoint folder beside their record: training
    checkpoints, an analysis's fitted models or a loop mid-training) first, then the rest, each group in the
    given order: a sweep resumed with fewer workers than jobs finishes what it has paid for before it
    starts new work. Which jobs run, and what each writes, does not change."""
    def saved(job: Job) -> bool:
        folder = checkpoint_dir(job.path(results_dir))
        return folder.is_dir() and any(folder.iterdir())

    return sorted(runs, key=lambda job: not saved(job))  # stable: each group keeps the given order


def run_many(
    runs: Iterable[Job],
    results_dir: Path,
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    max_retries: int = 2,
    keep_policy: bool = False,
) -> list[dict]:
    """Run every job (finished ones are skipped by the runner) on ``workers`` processes; ``workers == 1``
    runs them in this process. Interrupted jobs start first (:func:`interrupted_first`). Returns one summary
    per job, in completion order."""
    runs = list(runs)
    if workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers}")
    if max_retries < 0:
        raise ValueError(f"--max-retries must be a non-negative integer, got {max_retries}")
    for run in runs:  # fail fast on bad names/configs before any process starts
        prepare(run) if isinstance(run, RunSpec) else prepare_analysis(run)
    results_dir = Path(results_dir)
    runs = interrupted_first(runs, results_dir)
    prebuild_local_datasets(runs)
    bar = progress_lines.Progress("runs", total=len(runs), unit="run", show=progress)
    summaries: list[dict] = []
    try:
        if workers == 1:
            for run in runs:
                bar.update(0, running=_short_label(run))
                summaries.append(run_job(run, results_dir, force, progress=False, keep_policy=keep_policy))
                bar.update()
            return summaries
        summaries = _run_pool(runs, results_dir, workers, force, max_retries, bar, keep_policy)
        return summaries
    finally:
        bar.close()


def _run_pool(
    runs: list[Job], results_dir: Path, workers: int, force: bool, max_retries: int, bar, keep_policy: bool
) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    pending: deque[Job] = deque(runs)
    crashes: dict[Job, list[str]] = {}
    pool: list[_Worker] = []
    summaries: list[dict] = []

    def show_in_flight() -> None:
        bar.update(0, running="; ".join(_short_label(w.job) for w in pool if w.job is not None))

    try:
        while pending or any(w.job is not None for w in pool):
            for w in pool:  # hand out work to idle workers
                if w.job is None and pending:
                    w.give(pending.popleft())
            while pending and len(pool) < workers:
                w = _Worker(ctx, results_dir, force, keep_policy)
                pool.append(w)
                w.give(pending.popleft())
            show_in_flight()
            busy = [w for w in pool if w.job is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for w in busy:
                if w.conn in ready or w.process.sentinel in ready:
                    job = w.job
                    try:
                        summary = w.conn.recv() if w.conn.poll() else None
                    except (EOFError, OSError):
                        summary = None
                    if summary is not None:
                        w.job = None
                        summaries.append(summary)
                        bar.update()
                        continue
                    # the worker died holding `job`: replace it, retry the job or record its failure
                    w.process.join()
                    crashes.setdefault(job, []).append(_describe_exit(w.process.exitcode))
                    w.conn.close()
                    pool.remove(w)
                    if len(crashes[job]) <= max_retries:
                        pending.appendleft(job)
                        continue
                    deaths = len(crashes[job])
                    reason = (
                        f"worker process died {deaths} time{'s' if deaths > 1 else ''} "
                        f"({', '.join(crashes[job])}); gave up after {max_retries} retries"
                    )
                    summaries.append(summarize(crash_record(job, results_dir, reason)))
                    bar.update()
    finally:
        for w in pool:
            w.stop()
    return summaries


__all__ = ["run_job", "run_many"]
