"""One seed controls python, numpy, torch and (through the trainers) env resets and eval envs."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch


def seed_everything(seed: int, threads: int | None = 1) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    # bit-identical reruns on CPU; warn_only keeps ops without a deterministic kernel usable on GPU
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def preserved_rng():
    """Run the body without moving python's, numpy's or torch's global random streams.

    Work that may or may not happen before training (building a dataset on a cold cache, loading a behaviour
    policy, probing an env) runs inside this, so a run's result never depends on the cache state."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
