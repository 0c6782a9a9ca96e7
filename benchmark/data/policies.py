"""The shipped behaviour policies, read side: where they live, their actors and replay buffers.

``benchmark/data/behavior_policies/`` holds, per env, the SAC actors ``<env>-medium.pt`` and
``<env>-expert.pt`` (state dict and card) and the replay buffer ``<env>-medium-replay.npz`` that
:mod:`benchmark.data.behavior` wrote; :mod:`benchmark.data.local` builds the datasets from them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from benchmark.rl.dataset import DatasetError
from benchmark.rl.sac import LOG_STD_MAX, LOG_STD_MIN, TanhGaussianActor
from benchmark.seeding import preserved_rng

POLICY_DIR = Path(__file__).parent / "behavior_policies"


def uniform_policy(act_dim: int, scale: float):
    return lambda obs, rng: rng.uniform(-scale, scale, size=act_dim)


@preserved_rng()  # building the network draws its (overwritten) init from torch's global stream
def load_behavior_actor(env_key: str, level: str):
    """The shipped SAC actor for ``level`` (medium or expert) and its card."""
    path = POLICY_DIR / f"{env_key}-{level}.pt"
    if not path.exists():
        raise DatasetError(
            f"no behaviour policy {path}; train one with `admbench data train-behavior --env {env_key}` "
            "and select snapshots with `admbench data select-behavior`"
        )
    blob = torch.load(path, weights_only=False, map_location="cpu")
    card = blob["card"]
    actor = TanhGaussianActor(card["obs_dim"], card["act_dim"], tuple(card["hidden"]), card["act_scale"])
    actor.load_state_dict(blob["actor"])
    actor.eval()
    return actor, card


def actor_policy(actor, seed: int):
    """Stochastic SAC actions, noise from a numpy generator seeded per dataset (deterministic builds).

    The actor's MLP runs in numpy: for one observation at a time that is ~10x cheaper than torch's
    per-op overhead, and data collection is one observation at a time. Same maths as
    ``TanhGaussianActor.sample``: ``a = scale * tanh(mean + std * eps)`` with log-std clamped.
    """
    layers = [m for m in actor.trunk if isinstance(m, torch.nn.Linear)]
    if any(not isinstance(m, torch.nn.Linear | torch.nn.ReLU) for m in actor.trunk):
        raise TypeError("actor_policy expects an MLP of Linear and ReLU layers")
    weights = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in layers]
    scale = float(actor.act_scale)
    noise = np.random.default_rng(seed)

    def policy(obs, rng):
        h = np.asarray(obs, dtype=np.float32)
        for w, b in weights[:-1]:
            h = np.maximum(h @ w + b, 0.0)
        out = h @ weights[-1][0] + weights[-1][1]
        mean, log_std = np.split(out, 2)
        std = np.exp(np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))
        return (scale * np.tanh(mean + std * noise.standard_normal(mean.shape, dtype=np.float32))).astype(
            np.float32)

    return policy


# ----- training runs' files -------------------------------------------------------------------------
REPLAY_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def load_training_replay(path: str | Path) -> dict[str, np.ndarray]:
    """A training ``replay.npz`` as D4RL arrays.

    Accepts the full layout (with ``next_observations``) and the compact one GPU runs write:
    ``end_next_observations`` holds ``s'`` of every row that ends an episode (terminal, timeout or the
    last row), in order; every other row's ``s'`` is the next row's ``s``.
    """
    path = Path(path)
    try:
        with np.load(path) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{path}: not a readable .npz file (truncated or another format): {err}") from err
    base = ("observations", "actions", "rewards", "terminals", "timeouts")
    missing = [k for k in base if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing keys {missing} (has {sorted(arrays)})")
    if "next_observations" not in arrays:
        if "end_next_observations" not in arrays:
            raise DatasetError(f"{path}: needs 'next_observations' or 'end_next_observations'")
        obs = arrays["observations"]
        ends = arrays["terminals"].astype(bool) | arrays["timeouts"].astype(bool)
        ends[-1] = True
        end_rows = np.flatnonzero(ends)
        if len(end_rows) != len(arrays["end_next_observations"]):
            raise DatasetError(
                f"{path}: {len(arrays['end_next_observations'])} end_next_observations for {len(end_rows)} "
                "episode ends"
            )
        next_obs = np.empty_like(obs)
        next_obs[:-1] = obs[1:]
        next_obs[end_rows] = arrays["end_next_observations"]
        arrays["next_observations"] = next_obs
    out = {k: arrays[k] for k in REPLAY_FIELDS}
    if "seed" in arrays:
        out["seed"] = arrays["seed"]
    return out


def actor_from_state_dict(state_dict: dict) -> tuple[torch.nn.Module, dict]:
    """Rebuild a :class:`TanhGaussianActor` from its state dict; returns it and its shape info."""
    weights = [state_dict[k] for k in sorted(state_dict, key=_layer_order) if k.endswith(".weight")]
    obs_dim = int(weights[0].shape[1])
    hidden = tuple(int(w.shape[0]) for w in weights[:-1])
    act_dim = int(weights[-1].shape[0]) // 2
    act_scale = float(state_dict["act_scale"])
    actor = TanhGaussianActor(obs_dim, act_dim, hidden, act_scale)
    actor.load_state_dict(state_dict)
    actor.eval()
    return actor, {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden), "act_scale": act_scale}


def _layer_order(key: str) -> tuple[int, str]:
    parts = key.split(".")
    return (int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1, key)
