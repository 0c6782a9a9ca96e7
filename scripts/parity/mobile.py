"""Parity fixture from MOBILE's official code (yihaosun1124/mobile): its termination functions, which
the ensemble baselines use through ``get_termination_fn(env, "offlinerlkit")`` (the NeoRL ones too).

    PARITY_MOBILE=/path/to/mobile python scripts/parity/mobile.py

MOBILE's penalty and update (``policies/mobile.py``) are line-for-line those of OfflineRL-Kit, whose
fixture (``okit_mobile``) pins them. No shim is needed: ``utils/termination_fns.py`` imports numpy only.
"""

from __future__ import annotations

import numpy as np
from _common import checkout, save_fixture

_, COMMIT = checkout("mobile")
REPO = "yihaosun1124/mobile"

from utils import termination_fns as official  # noqa: E402

ENVS = {  # our env key -> (official function, observation size, column of height / z)
    "hopper": (official.termination_fn_hopper, 11, 0),
    "walker2d": (official.termination_fn_walker2d, 17, 0),
    "halfcheetah": (official.termination_fn_halfcheetah, 17, 0),
    "neorl-hopper": (official.termination_fn_neorl_hopper, 12, 1),
    "neorl-walker2d": (official.termination_fn_neorl_walker2d, 18, 1),
    "neorl-halfcheetah": (official.termination_fn_neorl_halfcheetah, 18, 1),
}


def main():
    g = np.random.default_rng(5)
    out = {}
    for env, (fn, dim, z) in ENVS.items():
        n = 60
        s = g.normal(0, 1, (n, dim)).astype(np.float32)
        s[:, z] = g.uniform(0.1, 2.2, n)
        s[:, z + 1] = g.uniform(-1.2, 1.2, n)
        big = g.random(n) < 0.25
        s[big, g.integers(z + 2, dim, big.sum())] = g.choice([-150.0, 150.0, 99.9, -99.9], big.sum())
        s[::13, dim - 1] = np.nan
        s[::17, z] = np.inf
        out[f"{env}/next_obs"] = s
        out[f"{env}/done"] = np.asarray(fn(s, np.zeros((n, 3), np.float32), s)).reshape(-1)
    save_fixture("mobile_termination", REPO, COMMIT, "utils/termination_fns.py", **out)


if __name__ == "__main__":
    main()
