"""Print, per parity fixture, the reference (repo@commit), the tolerance and the largest deviation of our
code from the reference's outputs (the README "Fidelity" table's last column).

    python scripts/parity/report.py            # every committed fixture
    python scripts/parity/report.py --detail   # every compared quantity
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from parity_cases import CASES, Fixture  # noqa: E402


def main(detail: bool) -> int:
    bad = 0
    print(f"{'fixture':<18} {'reference':<38} {'tol':>8} {'max |ours - ref|':>17}")
    for name, case in CASES.items():
        fx = Fixture("admpo_model" if name == "admpo_rollout_carry" else name)
        checks = case()
        worst, tol = 0.0, 0.0
        for label, ours, ref, atol in checks:
            dev = float(np.max(np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64))))
            bad += dev > atol
            if detail:
                print(f"    {label:<60} {atol:8.0e} {dev:17.2e}")
            worst, tol = max(worst, dev), max(tol, atol)
        print(f"{name:<18} {fx.repo + '@' + fx.commit[:7]:<38} {tol:8.0e} {worst:17.2e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main("--detail" in sys.argv))
