"""Score regression on short runs: rerun a suite, compare each final score with a committed reference.

References live in ``results/reference/<suite>/`` as ordinary run records (written only by
``admbench regress SUITE --update``). The rule:

* **same platform** (python, torch, numpy, gymnasium and mujoco versions, OS/arch and CPU model all
  equal): runs are deterministic, so ``|now - reference| <= atol + rtol * |reference|`` with
  ``atol = 1e-6`` and ``rtol = 1e-6`` normalized-score points. Anything else is a **regression**
  (exit code 1).
* **other platform**: floating-point kernels differ and RL amplifies the difference, so exact
  agreement is not expected; a delta is reported as ``drift`` (exit code 0), and ``--strict`` turns
  it into a failure.
* a run missing from the references is ``new``; a failed run, or a reference with no counterpart, is
  a regression.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmark.executor import run_many
from benchmark.results import RecordError, is_finished, read_record, versions, write_record
from benchmark.runner import RunSpec
from benchmark.suites import load_suite

REFERENCE_ROOT = Path("results") / "reference"
ATOL = 1e-6
RTOL = 1e-6
PLATFORM_KEYS = ("python", "torch", "numpy", "gymnasium", "mujoco", "platform", "cpu")


@dataclass
class Comparison:
    algo: str
    task: str
    seed: int
    reference: float | None
    now: float | None
    status: str  # ok | regression | drift | new | missing

    @property
    def delta(self) -> float | None:
        if self.reference is None or self.now is None:
            return None
        return self.now - self.reference


def same_platform(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in PLATFORM_KEYS)


def compare(reference: dict | None, now: dict | None, strict: bool = False) -> str:
    if now is None:
        return "missing"
    if now.get("status") != "ok":
        return "regression"
    if reference is None:
        return "new"
    ref, cur = reference.get("final_score"), now.get("final_score")
    if ref is None or cur is None:
        ref, cur = reference.get("final_return"), now.get("final_return")
    if ref is None or cur is None or not (math.isfinite(ref) and math.isfinite(cur)):
        return "regression"
    if abs(cur - ref) <= ATOL + RTOL * abs(ref):
        return "ok"
    if same_platform(reference.get("versions", {}), now.get("versions", {})) or strict:
        return "regression"
    return "drift"


def _load(root: Path, run: RunSpec) -> dict | None:
    path = run.path(root)
    return read_record(path) if path.exists() else None


def regress(
    suite_name: str,
    reference_root: Path = REFERENCE_ROOT,
    workers: int = 2,
    update: bool = False,
    strict: bool = False,
    work_dir: Path | None = None,
    progress: bool = True,
) -> list[Comparison]:
    """Rerun ``suite_name`` from scratch in a scratch store and compare (or, with ``update``, replace
    the references)."""
    suite = load_suite(suite_name)
    runs = suite.plan()
    references = {} if update else {run: _reference(reference_root, run) for run in runs}
    scratch = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"admbench-regress-{suite.name}-"))
    try:
        run_many(runs, scratch, workers=workers, force=True, progress=progress)
        out = []
        for run in runs:
            now = _load(scratch, run)
            if update:
                if now is None or now.get("status") != "ok":
                    raise RuntimeError(f"cannot update references: {run.label()} did not finish ok")
                write_record(run.path(reference_root), now)
                score = now.get("final_score")
                out.append(Comparison(run.name, run.task, run.seed, score, score, "updated"))
                continue
            ref = references[run]
            out.append(
                Comparison(
                    run.name,
                    run.task,
                    run.seed,
                    ref and ref.get("final_score"),
                    now and now.get("final_score"),
                    compare(ref, now, strict),
                )
            )
        if update:  # drop references of runs the suite no longer has
            planned = {r.path(reference_root) for r in runs}
            for p in (
                (reference_root / suite.name).rglob("seed-*.json")
                if (reference_root / suite.name).exists()
                else []
            ):
                if p not in planned:
                    p.unlink()
    finally:
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return out


def _reference(root: Path, run: RunSpec) -> dict | None:
    """The reference record of ``run`` (None if the suite has no reference for it yet), checked before
    anything is rerun: unreadable, malformed, failed or non-finite references are errors, never a pass."""
    ref = _load(root, run)
    if ref is not None and not is_finished(ref):
        raise RecordError(
            f"{run.path(root)}: a reference must be an 'ok' record with a finite final score, got status "
            f"{ref.get('status')!r}, final_score {ref.get('final_score')!r}; rewrite it with "
            f"`admbench regress {run.suite} --update`"
        )
    return ref


def format_table(rows: list[Comparison]) -> str:
    def f(x):
        return "—" if x is None else f"{x:.4f}"

    lines = ["| algo | task | seed | reference | now | delta | status |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.algo} | {r.task} | {r.seed} | {f(r.reference)} | {f(r.now)} | {f(r.delta)} | {r.status} |"
        )
    counts = {s: sum(1 for r in rows if r.status == s) for s in sorted({r.status for r in rows})}
    lines.append("")
    lines.append("summary: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    lines.append(f"platform now: {', '.join(f'{k}={versions().get(k)}' for k in PLATFORM_KEYS)}")
    return "\n".join(lines)


def failed(rows: list[Comparison]) -> bool:
    return any(r.status in ("regression", "missing") for r in rows)
