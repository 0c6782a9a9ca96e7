"""Termination functions for model rollouts, as the ADMPO official code defines them
(``components/static_fns/*``, REFERENCE.md section 6).

Each function maps tensors ``(obs, act, next_obs)`` with leading batch dim ``B`` to a bool tensor
``[B]`` (True = the episode ends at ``next_obs``). They work on numpy arrays too (converted). As in the
official numpy code, a non-finite state (NaN, +-inf) ends the episode wherever the official comparison
is false for it (halfcheetah: any NaN; neorl-hopper: z = +inf).

``source="offlinerlkit"`` selects the functions of OfflineRL-Kit (``offlinerlkit/utils/termination_fns.py``)
and MOBILE's official code (``utils/termination_fns.py``), which the ensemble baselines follow; they
differ from ADMPO's only for walker2d, where every coordinate must also lie in (-100, 100).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _t(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float32)


def hopper(obs, act, next_obs) -> torch.Tensor:
    # obs without x: index 0 = height, 1 = torso angle. Official quirk kept: only the upper bound 100
    # is enforced on next_obs[1:] (abs is applied to the boolean, not to the state).
    s = _t(next_obs)
    height, angle = s[:, 0], s[:, 1]
    not_done = (
        torch.isfinite(s).all(dim=-1) & (s[:, 1:] < 100).all(dim=-1) & (height > 0.7) & (angle.abs() < 0.2)
    )
    return ~not_done


def walker2d(obs, act, next_obs) -> torch.Tensor:
    s = _t(next_obs)
    height, angle = s[:, 0], s[:, 1]
    not_done = (height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~not_done


def walker2d_offlinerlkit(obs, act, next_obs) -> torch.Tensor:
    # OfflineRL-Kit termination_fns.py:68 / MOBILE utils/termination_fns.py: also every |s_i| < 100
    s = _t(next_obs)
    return walker2d(obs, act, s) | ~((s > -100) & (s < 100)).all(dim=-1)


def halfcheetah(obs, act, next_obs) -> torch.Tensor:
    # the official code since 2025-01-26: done iff any element leaves (-100, 100)
    s = _t(next_obs)
    return ~((s > -100) & (s < 100)).all(dim=-1)


def neorl_hopper(obs, act, next_obs) -> torch.Tensor:
    # obs with x: 0 = x, 1 = z, 2 = angle
    s = _t(next_obs)
    healthy = (
        ((s[:, 3:] > -100) & (s[:, 3:] < 100)).all(dim=-1)
        & (s[:, 1] > 0.7)
        & (s[:, 1] < float("inf"))
        & (s[:, 2] > -0.2)
        & (s[:, 2] < 0.2)
    )
    return ~healthy


def neorl_walker2d(obs, act, next_obs) -> torch.Tensor:
    s = _t(next_obs)
    healthy = (
        (s[:, 1] > 0.8)
        & (s[:, 1] < 2.0)
        & (s[:, 2] > -1.0)
        & (s[:, 2] < 1.0)
        & ((s[:, 3:] > -100) & (s[:, 3:] < 100)).all(dim=-1)
    )
    return ~healthy


def never(obs, act, next_obs) -> torch.Tensor:
    s = _t(next_obs)
    return torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)


def anttruncatedobs(obs, act, next_obs) -> torch.Tensor:
    s = _t(next_obs)
    z = s[:, 0]
    not_done = torch.isfinite(s).all(dim=-1) & (z >= 0.2) & (z <= 1.0)
    return ~not_done


def humanoidtruncatedobs(obs, act, next_obs) -> torch.Tensor:
    s = _t(next_obs)
    z = s[:, 0]
    return (z < 1.0) | (z > 2.0)


TERMINATION_FNS: dict[str, TerminationFn] = {
    "hopper": hopper,
    "walker2d": walker2d,
    "halfcheetah": halfcheetah,
    "neorl-hopper": neorl_hopper,
    "neorl-walker2d": neorl_walker2d,
    "neorl-halfcheetah": never,
    "anttruncatedobs": anttruncatedobs,
    "humanoidtruncatedobs": humanoidtruncatedobs,
}


# where OfflineRL-Kit / MOBILE-official differ from the ADMPO functions above
OFFLINERLKIT_OVERRIDES: dict[str, TerminationFn] = {"walker2d": walker2d_offlinerlkit}
TERMINATION_SOURCES = ("admpo", "offlinerlkit")


def get_termination_fn(env_key: str, source: str = "admpo") -> TerminationFn:
    """The termination function of ``env_key`` as the reference ``source`` defines it."""
    if source not in TERMINATION_SOURCES:
        raise KeyError(f"unknown termination source {source!r}; known: {', '.join(TERMINATION_SOURCES)}")
    if env_key not in TERMINATION_FNS:
        raise KeyError(
            f"no termination function for {env_key!r}; known: {', '.join(sorted(TERMINATION_FNS))}"
        )
    if source == "offlinerlkit" and env_key in OFFLINERLKIT_OVERRIDES:
        return OFFLINERLKIT_OVERRIDES[env_key]
    return TERMINATION_FNS[env_key]
