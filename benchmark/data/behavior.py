"""Train the SAC behaviour policies that generate the locally built D4RL-style datasets.

D4RL built its MuJoCo sets from SAC runs: ``medium`` from a policy stopped at about one third of the
expert return, ``medium-replay`` from the replay buffer of that run up to that point, ``expert`` from
a fully trained policy. This module is the recipe (``admbench data train-behavior``).

Training checkpoints every ``checkpoint_every`` env steps (networks, optimisers, replay buffer, RNG
states) into ``out_dir/checkpoint.pt`` and resumes from it, so it survives the end of a session.
It also keeps, in ``out_dir``:

* ``snapshots.pt``: ``{step: {"actor": state_dict, "return_mean": float, "return_std": float}}``,
  the actor at every evaluation, so ``medium`` can be chosen after the fact;
* ``replay.npz``: the full replay buffer in episode order (for ``medium-replay``);
* ``log.jsonl``: one line per evaluation.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.envs import make_env
from benchmark.rl.sac import SAC, SACConfig


@dataclass
class BehaviorConfig:
    env: str = "hopper"
    steps: int = 1_000_000  # total env steps (= SAC updates after warm-up)
    seed: int = 0
    start_steps: int = 5000  # uniform random actions before learning starts
    batch_size: int = 256
    eval_every: int = 5000
    eval_episodes: int = 10
    checkpoint_every: int = 20000
    hidden: tuple[int, ...] = (256, 256)
    device: str = "cpu"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def evaluate_policy(act_fn, env_key: str, episodes: int, seed: int) -> tuple[float, float]:
    """Mean and std of undiscounted returns of ``act_fn(obs) -> action`` over seeded episodes."""
    env = make_env(env_key)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            obs, rew, term, trunc, _ = env.step(act_fn(obs))
            total += float(rew)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


def replay_to_arrays(replay: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    return {k: v[:size].copy() for k, v in replay.items()}


def train_behavior(cfg: BehaviorConfig, out_dir: str | Path, time_limit_s: float | None = None, progress=True):
    """Train (or resume) a SAC behaviour policy. Returns the path of ``snapshots.pt``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    env = make_env(cfg.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    act_scale = float(env.action_space.high[0])
    sac_cfg = SACConfig(hidden=cfg.hidden, actor_lr=3e-4, critic_lr=3e-4, alpha_lr=3e-4, auto_alpha=True)
    agent = SAC(obs_dim, act_dim, sac_cfg, act_scale, device=cfg.device)

    n = cfg.steps
    replay = {
        "observations": np.zeros((n, obs_dim), np.float32),
        "actions": np.zeros((n, act_dim), np.float32),
        "rewards": np.zeros((n,), np.float32),
        "next_observations": np.zeros((n, obs_dim), np.float32),
        "terminals": np.zeros((n,), bool),
        "timeouts": np.zeros((n,), bool),
    }
    snapshots: dict[int, dict] = {}
    step = 0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location=cfg.device)
        if ckpt["config"] != asdict(cfg):
            raise ValueError(f"{ckpt_path}: checkpoint was made with another config: {ckpt['config']}")
        agent.load_state_dict(ckpt["agent"])
        agent.actor_optim.load_state_dict(ckpt["actor_optim"])
        agent.critic_optim.load_state_dict(ckpt["critic_optim"])
        agent.alpha_optim.load_state_dict(ckpt["alpha_optim"])
        agent.num_updates = ckpt["num_updates"]
        step = ckpt["step"]
        with np.load(out / "checkpoint_replay.npz") as z:
            for k in replay:
                replay[k][:step] = z[k][:step]
        random.setstate(ckpt["py_rng"])
        np.random.set_state(ckpt["np_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        snapshots = torch.load(out / "snapshots.pt", weights_only=False) if (out / "snapshots.pt").exists() else {}
        if step > 0:  # the interrupted episode cannot be continued: mark it as cut off
            if not replay["terminals"][step - 1]:
                replay["timeouts"][step - 1] = True
    else:
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

    obs, _ = env.reset(seed=cfg.seed + step)
    env.action_space.seed(cfg.seed + step)
    ep_len = 0
    t0 = time.time()
    log = open(out / "log.jsonl", "a")

    def save_checkpoint():
        _atomic_savez(out / "checkpoint_replay.npz", **replay_to_arrays(replay, step))
        _atomic_save(
            {
                "config": asdict(cfg),
                "agent": agent.state_dict(),
                "actor_optim": agent.actor_optim.state_dict(),
                "critic_optim": agent.critic_optim.state_dict(),
                "alpha_optim": agent.alpha_optim.state_dict(),
                "num_updates": agent.num_updates,
                "step": step,
                "py_rng": random.getstate(),
                "np_rng": np.random.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
            ckpt_path,
        )

    while step < n:
        if step < cfg.start_steps:
            action = env.action_space.sample()
        else:
            action = agent.act(obs, deterministic=False)
        next_obs, rew, term, trunc, _ = env.step(action)
        ep_len += 1
        replay["observations"][step] = obs
        replay["actions"][step] = action
        replay["rewards"][step] = rew
        replay["next_observations"][step] = next_obs
        replay["terminals"][step] = term
        replay["timeouts"][step] = trunc
        step += 1
        obs = next_obs
        if term or trunc:
            obs, _ = env.reset()
            ep_len = 0
        if step >= cfg.start_steps:
            idx = np.random.randint(0, step, size=cfg.batch_size)
            batch = {
                "obs": torch.from_numpy(replay["observations"][idx]),
                "act": torch.from_numpy(replay["actions"][idx]),
                "rew": torch.from_numpy(replay["rewards"][idx]).unsqueeze(-1),
                "next_obs": torch.from_numpy(replay["next_observations"][idx]),
                "done": torch.from_numpy(replay["terminals"][idx].astype(np.float32)).unsqueeze(-1),
            }
            batch = {k: v.to(agent.device, non_blocking=True) for k, v in batch.items()}
            agent.update(batch)
        if step % cfg.eval_every == 0:
            mean, std = evaluate_policy(
                lambda o: agent.act(o, deterministic=True), cfg.env, cfg.eval_episodes, seed=10_000 + step
            )
            snapshots[step] = {
                "actor": {k: v.detach().cpu().clone() for k, v in agent.actor.state_dict().items()},
                "return_mean": mean,
                "return_std": std,
            }
            _atomic_save(snapshots, out / "snapshots.pt")
            line = {"step": step, "return_mean": mean, "return_std": std, "elapsed_s": round(time.time() - t0, 1)}
            log.write(json.dumps(line) + "\n")
            log.flush()
            if progress:
                print(f"[{cfg.env}] step {step}: return {mean:.1f} ± {std:.1f} ({line['elapsed_s']} s)", flush=True)
        if step % cfg.checkpoint_every == 0 or step == n:
            save_checkpoint()
        if time_limit_s is not None and time.time() - t0 > time_limit_s:
            save_checkpoint()
            break
    _atomic_savez(out / "replay.npz", **replay_to_arrays(replay, step))
    log.close()
    return out / "snapshots.pt"
