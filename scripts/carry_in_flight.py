"""Carry the in-flight runs' progress to the next machine through git (issue 20's sweeps).

A run's checkpoints live beside its record (``seed-N.checkpoints/``) and the models analysis jobs share in
``<results>/.shared-stages/``; git ignores both, since a run deletes its folder when it writes its record.
A sweep that outlasts its machine loses them with it: our sessions get a new machine each time, and the
evidence sweeps take days of 2 cores, with runs (ADMPO-ON at 15,000 env steps, a Figure 2 job) longer than
one session. This lists what each in-flight run would lose and, with ``--add``, force-adds to git's index the
files of those worth at least ``--min-cpu-min`` CPU-minutes, pruned to the newest checkpoint (the one a
resume reads; the one before it is only a fallback against a torn write). The next clone then resumes
where this machine stopped. When the run ends it deletes its folder; commit that with its record
(``git add -A`` on the folder; not on all of ``results/``, where a running job's carried checkpoint, which
the job deletes once it has written two newer ones, must stay until it is carried again). A shared fit
stays tracked until the jobs that load it have run (Figure 4's load Figure 2's): ``git rm --cached`` it
then.

    python scripts/carry_in_flight.py                   # list the in-flight runs and what they hold
    python scripts/carry_in_flight.py --add             # prune and `git add -f` those worth >= 20 CPU-min

Pause the sweep's workers first (``kill -STOP``), so that no file changes while git reads it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.rl.checkpoint import FORMAT, checkpoint_files, checkpoint_position  # noqa: E402
from benchmark.runner import CHECKPOINT_DIR_SUFFIX, SHARED_STAGES  # noqa: E402

# files a job's folder holds besides ``ckpt-*.pt``: a setup loop (before a run's first checkpoint), finished
# analysis stages and a stage's training loop; all of them are read on resume
LOOP_AND_STAGE_GLOBS = ("setup-*.loop.pt", "stage-*.pt")


@dataclass
class InFlight:
    """One run's (or one shared fit's) resumable files."""

    name: str
    keep: list[Path]  # what a resume reads
    prune: list[Path] = field(default_factory=list)  # older checkpoints, a fallback only
    cpu_s: float = 0.0  # the CPU time the kept files hold (what a resume does not spend again)
    position: int | None = None  # of the newest checkpoint (epoch offline, env step online)

    @property
    def shared(self) -> bool:
        return self.keep[0].parent.name == SHARED_STAGES

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path in self.keep)


def _cpu_s(path: Path) -> float:
    """The CPU seconds a checkpoint, loop or stage file says its content cost (0 when it does not say)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # torn or unreadable: a resume skips it too
        return 0.0
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return 0.0
    cost = payload.get("spent") or payload.get("cost") or {}
    return float(cost.get("cpu_s", 0.0))


def in_flight(results: Path) -> list[InFlight]:
    """Every unfinished job under ``results`` with resumable files, and every shared fit, by path."""
    found = []
    for folder in sorted(p for p in Path(results).rglob(f"*{CHECKPOINT_DIR_SUFFIX}") if p.is_dir()):
        checkpoints = checkpoint_files(folder)
        others = sorted({p for pattern in LOOP_AND_STAGE_GLOBS for p in folder.glob(pattern)})
        keep = checkpoints[-1:] + others
        if not keep:
            continue
        found.append(InFlight(
            name=str(folder.relative_to(results)), keep=keep, prune=checkpoints[:-1],
            cpu_s=sum(_cpu_s(path) for path in keep),
            position=checkpoint_position(checkpoints[-1]) if checkpoints else None))
    shared = Path(results) / SHARED_STAGES
    for path in sorted(shared.glob("*.pt")) if shared.is_dir() else []:
        found.append(InFlight(name=str(path.relative_to(results)), keep=[path], cpu_s=_cpu_s(path)))
    return found


def tracked(paths: list[Path], cwd: Path) -> set[Path]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *map(str, paths)], cwd=cwd, check=True,
                         capture_output=True).stdout.decode()
    return {(cwd / name).resolve() for name in out.split("\0") if name}


def carry(jobs: list[InFlight], min_cpu_s: float, cwd: Path) -> list[InFlight]:
    """Prune and force-add the jobs worth ``min_cpu_s`` or more (and any already carried, so the index
    never holds a stale file of a job that went on); returns the carried ones."""
    already = tracked([job.keep[0].parent for job in jobs], cwd) if jobs else set()

    def carried_before(job: InFlight) -> bool:  # by folder: the carried checkpoint may be gone since
        if job.shared:
            return any(path.resolve() in already for path in job.keep)
        return job.keep[0].parent.resolve() in {path.parent for path in already}

    chosen = [job for job in jobs if job.cpu_s >= min_cpu_s or carried_before(job)]
    for job in chosen:
        for path in job.prune:
            path.unlink(missing_ok=True)
        # a run's folder whole (-A stages the checkpoints it deleted since the last carry); a shared fit alone
        target = [str(path) for path in job.keep] if job.shared else [str(job.keep[0].parent)]
        subprocess.run(["git", "add", "-A", "-f", "--", *target], cwd=cwd, check=True)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--add", action="store_true", help="prune and git add -f the jobs worth carrying")
    parser.add_argument("--min-cpu-min", type=float, default=20.0,
                        help="carry a job whose files hold at least this many CPU-minutes (default 20)")
    args = parser.parse_args(argv)
    results = args.results.resolve()
    jobs = in_flight(results)
    carried = carry(jobs, args.min_cpu_min * 60, results) if args.add else []
    for job in jobs:
        at = f" at {job.position}" if job.position is not None else ""
        mark = "carried" if job in carried else ("" if not args.add else "left (under the threshold)")
        print(f"{job.name}{at}: {job.cpu_s / 60:.1f} CPU-min in {job.size / 2**20:.1f} MiB "
              f"({len(job.keep)} file(s)) {mark}".rstrip())
    if args.add:
        print(f"{len(carried)} of {len(jobs)} carried, {sum(job.size for job in carried) / 2**20:.1f} MiB; "
              "commit them (git commit) so the next clone resumes there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
