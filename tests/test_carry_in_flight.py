"""scripts/carry_in_flight.py: what an in-flight run would lose with its machine goes into git's index,
pruned to what a resume reads, and only for runs worth the bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from benchmark.rl.checkpoint import FORMAT

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "carry_in_flight.py"


def _save(path: Path, cpu_s: float, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, key: {"cpu_s": cpu_s, "wall_s": 2 * cpu_s}}, path)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _carry(repo: Path, *args: str) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), "--results", str(repo / "results"), *args],
                          check=True, capture_output=True, text=True).stdout


def test_carry_adds_the_newest_checkpoint_and_stage_files_of_runs_worth_keeping(tmp_path):
    repo = tmp_path
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("*.checkpoints/\n.shared-stages/\n")
    long_run = repo / "results/fig3/admpo-on/mujoco__Hopper/seed-1.checkpoints"
    _save(long_run / "ckpt-0000007250.pt", 9000.0, "spent")
    _save(long_run / "ckpt-0000007500.pt", 9300.0, "spent")
    short_run = repo / "results/table1/mopo/local__hopper/seed-1.checkpoints"
    _save(short_run / "ckpt-0000000005.pt", 120.0, "spent")
    analysis = repo / "results/fig2/analysis-compounding-error/local__hopper/seed-1.checkpoints"
    _save(analysis / "stage-model-adm.pt", 3000.0, "cost")
    _save(analysis / "stage-model-bootrnn.loop.pt", 600.0, "cost")
    _save(repo / "results/.shared-stages/model-adm-abc123.pt", 3000.0, "cost")

    listing = _carry(repo)
    assert "seed-1.checkpoints at 7500: 155.0 CPU-min" in listing  # the newest checkpoint's cost
    assert "analysis-compounding-error/local__hopper/seed-1.checkpoints: 60.0 CPU-min" in listing
    assert _git(repo, "ls-files") == ""  # listing adds nothing

    out = _carry(repo, "--add")
    assert "3 of 4 carried" in out
    assert _git(repo, "ls-files").split() == [
        "results/.shared-stages/model-adm-abc123.pt",
        "results/fig2/analysis-compounding-error/local__hopper/seed-1.checkpoints/stage-model-adm.pt",
        "results/fig2/analysis-compounding-error/local__hopper/seed-1.checkpoints/stage-model-bootrnn.loop.pt",
        "results/fig3/admpo-on/mujoco__Hopper/seed-1.checkpoints/ckpt-0000007500.pt",
    ]
    assert not (long_run / "ckpt-0000007250.pt").exists()  # pruned: a resume reads the newest
    assert (short_run / "ckpt-0000000005.pt").exists()  # left where it is, only not carried

    # the run went on and wrote a newer checkpoint (deleting the older one): carrying again follows it
    _save(long_run / "ckpt-0000007750.pt", 9600.0, "spent")
    (long_run / "ckpt-0000007500.pt").unlink()
    _carry(repo, "--add", "--min-cpu-min", "1000")  # above every job: an already-carried one still follows
    files = _git(repo, "ls-files")
    assert "results/fig3/admpo-on/mujoco__Hopper/seed-1.checkpoints/ckpt-0000007750.pt" in files
    assert "ckpt-0000007500.pt" not in files and "mopo" not in files
