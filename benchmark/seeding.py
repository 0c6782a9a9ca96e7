"""One seed controls python, numpy, torch and (through the trainers) env resets and eval envs."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

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
def rng_preserved() -> Iterator[None]:
    """Run a block without moving the global python, numpy and torch (CPU) random streams: building a
    dataset on first use (which initialises a behaviour actor) must not change the run that follows, so a
    run gives the same result with a cold or a warm data cache."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)
