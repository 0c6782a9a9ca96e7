"""Normalised scores: ``100 * (R - R_random) / (R_expert - R_random)``.

A standard deviation is only *scaled* by ``100 / (R_expert - R_random)``, never shifted (the official
ADMPO code shifts it, REFERENCE.md 3.1, which is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceReturns:
    random: float
    expert: float
    source: str
    verified: bool


_D4RL_SOURCE = "D4RL d4rl/gym_mujoco/__init__.py REF_MIN_SCORE/REF_MAX_SCORE (via REFERENCE.md 3.4)"
_NEORL_SOURCE = (
    "twni2016/neubay@7aa8c6b neorl/core.py get_normalized_score (a NeoRL fork; values read there); "
    "UNVERIFIED against the official source the NeoRL maintainers name (appendix H of the NeoRL paper, "
    "expert and random columns, polixir/NeoRL issue 11; not available to us) and against what the ADMPO "
    "paper used (its code records raw returns only)"
)

REFERENCE_RETURNS: dict[str, ReferenceReturns] = {
    # D4RL MuJoCo (also used for the locally built D4RL-style datasets and online MuJoCo tasks)
    "hopper": ReferenceReturns(-20.272305, 3234.3, _D4RL_SOURCE, True),
    "halfcheetah": ReferenceReturns(-280.178953, 12135.0, _D4RL_SOURCE, True),
    "walker2d": ReferenceReturns(1.629008, 4592.3, _D4RL_SOURCE, True),
    # NeoRL (observations keep the x position)
    "neorl-hopper": ReferenceReturns(5.0, 3294.0, _NEORL_SOURCE, False),
    "neorl-halfcheetah": ReferenceReturns(-298.0, 12284.0, _NEORL_SOURCE, False),
    "neorl-walker2d": ReferenceReturns(1.0, 5143.0, _NEORL_SOURCE, False),
}


def has_reference(env_key: str) -> bool:
    return env_key in REFERENCE_RETURNS


def normalize_return(env_key: str, ret: float) -> float:
    ref = REFERENCE_RETURNS[env_key]
    return 100.0 * (ret - ref.random) / (ref.expert - ref.random)


def normalize_std(env_key: str, std: float) -> float:
    ref = REFERENCE_RETURNS[env_key]
    return 100.0 * std / (ref.expert - ref.random)
