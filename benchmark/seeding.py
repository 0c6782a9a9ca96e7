"""One seed controls python, numpy, torch and (through the trainers) env resets and eval envs."""

from __future__ import annotations

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
