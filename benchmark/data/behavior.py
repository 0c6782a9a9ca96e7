"""Train the SAC behaviour policies that generate the locally built D4RL-style datasets.

D4RL built its MuJoCo sets from SAC runs: ``medium`` from a policy stopped at about one third of the
expert return, ``medium-replay`` from the replay buffer of that run up to that point, ``expert`` from
a fully trained policy. This module is the recipe (``admbench data train-behavior``).

Training checkpoints every ``checkpoint_every`` env steps (networks, optimisers, replay buffer, RNG
states) into ``out_dir/checkpoint.pt`` and resumes from it, so it survives the end of a session; a
larger ``steps`` extends a finished run.
It also keeps, in ``out_dir``:

* ``snapshots.pt``: ``{step: {"actor": state_dict, "return_mean": float, "return_std": float}}``,
  the actor at every evaluation, so ``medium`` can be chosen after the fact;
* ``replay.npz``: the full replay buffer in episode order (for ``medium-replay``);
* ``log.jsonl``: one line per evaluation.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.data import policies
from benchmark.data.files import atomic_write, atomic_write_text
from benchmark.envs import make_env
from benchmark.rl.dataset import store_transition
from benchmark.rl.sac import SAC, SACConfig
from benchmark.rl.trainers import evaluate


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
    atomic_write(path, lambda f: torch.save(obj, f))


def _atomic_savez(path: Path, **arrays) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def evaluate_policy(act_fn, env_key: str, episodes: int, seed: int) -> tuple[float, float]:
    """Mean and std of undiscounted returns of ``act_fn(obs) -> action``; episode i uses env seed seed+i."""
    mean, std, _ = evaluate(act_fn, lambda: make_env(env_key), episodes, seed, seed_offset=0,
                            desc=f"measuring a {env_key} policy")
    return mean, std


def replay_to_arrays(replay: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    return {k: v[:size].copy() for k, v in replay.items()}


def _check_resumable(ckpt: dict, cfg: BehaviorConfig, ckpt_path: Path) -> None:
    """A run resumes only under its own config; ``steps`` alone may grow (nothing in training depends
    on the total: no schedule reads it), so a finished run can be extended with a larger ``--steps``."""
    saved, wanted = dict(ckpt["config"]), asdict(cfg)
    saved.pop("steps"), wanted.pop("steps")
    if saved != wanted:
        raise ValueError(f"{ckpt_path}: checkpoint was made with another config: {ckpt['config']}")
    if cfg.steps < ckpt["step"]:
        raise ValueError(f"{ckpt_path}: checkpoint is at step {ckpt['step']}, past steps={cfg.steps}; "
                         f"pass --steps {ckpt['step']} or more to resume it")


def train_behavior(
    cfg: BehaviorConfig, out_dir: str | Path, time_limit_s: float | None = None, progress=True
):
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
        _check_resumable(ckpt, cfg, ckpt_path)
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
        snap_path = out / "snapshots.pt"
        snapshots = torch.load(snap_path, weights_only=False) if snap_path.exists() else {}
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
        store_transition(replay, step, obs, action, rew, next_obs, term, trunc)
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
            elapsed = round(time.time() - t0, 1)
            line = {"step": step, "return_mean": mean, "return_std": std, "elapsed_s": elapsed}
            log.write(json.dumps(line) + "\n")
            log.flush()
            if progress:
                print(f"[{cfg.env}] step {step}: return {mean:.1f} ± {std:.1f} ({elapsed} s)", flush=True)
        if step % cfg.checkpoint_every == 0 or step == n:
            save_checkpoint()
        if time_limit_s is not None and time.time() - t0 > time_limit_s:
            save_checkpoint()
            break
    _atomic_savez(out / "replay.npz", **replay_to_arrays(replay, step))
    log.close()
    return out / "snapshots.pt"


# ----- turning a training run into the shipped behaviour policies -----------------------------------
def compact_replay(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """D4RL arrays without the redundant ``next_observations`` (half the size on disk).

    Only ``s'`` of rows that end an episode is stored (``end_next_observations``, in order);
    :func:`benchmark.data.policies.load_training_replay` restores the full arrays exactly.
    """
    ends = arrays["terminals"] | arrays["timeouts"]
    ends[-1] = True
    out = {k: arrays[k] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    out["end_next_observations"] = arrays["next_observations"][ends]
    return out


def measure_actor(actor, env_key: str, episodes: int = 20, seed: int = 20_000, deterministic: bool = False):
    """Mean/std return of ``actor`` over seeded episodes (stochastic actions with a seeded generator)."""
    if deterministic:
        def act(obs):
            with torch.no_grad():
                t = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
                a, _ = actor.sample(t, deterministic=True)
            return a.squeeze(0).numpy()
    else:
        policy = policies.actor_policy(actor, seed)
        act = lambda obs: policy(obs, None)
    return evaluate_policy(act, env_key, episodes, seed)


def choose_snapshots(snapshots: dict[int, dict], env_key: str) -> dict[str, int]:
    """``medium``: return closest to a third of the D4RL expert return; ``expert``: the best return."""
    from benchmark.scores import REFERENCE_RETURNS

    target = REFERENCE_RETURNS[env_key].expert / 3.0
    steps = sorted(snapshots)
    expert = expert_candidates(snapshots, 1)[0]
    medium = min(steps, key=lambda s: (abs(snapshots[s]["return_mean"] - target), s))
    return {"medium": int(medium), "expert": int(expert)}


def expert_candidates(snapshots: dict[int, dict], count: int) -> list[int]:
    """The ``count`` snapshots with the best training-time return, best first (later step on ties)."""
    ranked = sorted(snapshots, key=lambda s: (snapshots[s]["return_mean"], s), reverse=True)
    return [int(s) for s in ranked[:count]]


def thin_episodes(arrays: dict[str, np.ndarray], max_rows: int) -> tuple[dict[str, np.ndarray], int]:
    """Keep every k-th whole episode (smallest k) so that at most ``max_rows`` rows remain."""
    ends = arrays["terminals"] | arrays["timeouts"]
    ends[-1] = True
    episode = np.concatenate([[0], np.cumsum(ends[:-1])])
    stride = 1
    while (np.isin(episode, np.arange(0, episode[-1] + 1, stride))).sum() > max_rows:
        stride += 1
    keep = np.isin(episode, np.arange(0, episode[-1] + 1, stride))
    return {k: v[keep] for k, v in arrays.items()}, stride


def select_behavior(train_dir: str | Path, env_key: str, out_dir: str | Path | None = None,
                    eval_episodes: int = 20, seed: int | None = None, max_replay_rows: int = 50_000,
                    source: str | None = None, progress=print, keep_medium: bool = False,
                    candidates: int = 1) -> dict[str, dict]:
    """Write ``<env>-medium.pt``, ``<env>-expert.pt`` and ``<env>-medium-replay.npz`` from a run.

    ``train_dir`` holds ``snapshots.pt`` and ``replay.npz`` of one SAC run. The replay buffer up to
    the medium snapshot becomes ``medium-replay``; to keep the shipped file small, when it has more
    than ``max_replay_rows`` rows only every k-th whole episode is kept (k is in the card).
    ``keep_medium``: write the expert only and leave the shipped medium policy and medium-replay files
    untouched (a longer run that only improved the expert then leaves the medium and medium-replay
    datasets, and the records made on them, valid). ``candidates`` > 1: the expert is, of that many
    snapshots with the best training-time return (deterministic actions, few episodes, noisy), the one
    whose measured stochastic return is best, since the datasets are collected with stochastic actions.
    Returns the cards written.
    """
    from benchmark.scores import normalize_return

    train_dir = Path(train_dir)
    out = Path(out_dir) if out_dir is not None else policies.POLICY_DIR
    out.mkdir(parents=True, exist_ok=True)
    snapshots = torch.load(train_dir / "snapshots.pt", weights_only=False, map_location="cpu")
    if not snapshots:
        raise ValueError(f"{train_dir / 'snapshots.pt'} holds no snapshots")
    replay = policies.load_training_replay(train_dir / "replay.npz")
    run_seed = int(replay.pop("seed")) if "seed" in replay else seed
    chosen = choose_snapshots(snapshots, env_key)
    if keep_medium:
        chosen.pop("medium")
    measured: dict[tuple[int, bool], tuple[float, float]] = {}  # medium and expert may be one snapshot

    def measure(step: int, deterministic: bool = False) -> tuple[float, float]:
        if (step, deterministic) not in measured:
            actor, _ = policies.actor_from_state_dict(snapshots[step]["actor"])
            measured[step, deterministic] = measure_actor(
                actor, env_key, eval_episodes, deterministic=deterministic)
        return measured[step, deterministic]

    # one candidate: the best training-time snapshot, as choose_snapshots picked it
    expert_pool = expert_candidates(snapshots, max(1, candidates))
    chosen["expert"] = max(expert_pool, key=lambda s: (measure(s)[0], s))
    if progress and len(expert_pool) > 1:
        for step in expert_pool:
            progress(f"[{env_key}] expert candidate {step}: {measure(step)[0]:.1f} (stochastic)")
    cards = {}
    for level, step in chosen.items():
        _, shape = policies.actor_from_state_dict(snapshots[step]["actor"])
        (mean, std), (det_mean, det_std) = measure(step), measure(step, deterministic=True)
        card = {
            "env": env_key,
            "level": level,
            **shape,
            "training_steps": step,
            "seed": run_seed,
            "return_mean_20ep": round(mean, 2),
            "return_std_20ep": round(std, 2),
            "eval_mode": f"stochastic actions (as the datasets are collected), {eval_episodes} episodes, "
                         "env seeds 20000+i",
            "normalized_score": round(normalize_return(env_key, mean), 2),
            "deterministic_return_mean_20ep": round(det_mean, 2),
            "deterministic_return_std_20ep": round(det_std, 2),
            "training_eval_return_mean": round(float(snapshots[step]["return_mean"]), 2),
            "selection": "medium: snapshot whose training-time (deterministic) return is closest to 1/3 "
                         "of the D4RL expert return; expert: "
                         + (f"of the {len(expert_pool)} snapshots with the best training-time return, "
                            f"the one with the best stochastic {eval_episodes}-episode return"
                            if len(expert_pool) > 1 else "best snapshot"),
            "source": source or str(train_dir),
        }
        if level == "expert" and len(expert_pool) > 1:
            card["expert_candidates_stochastic_return"] = {
                str(s): round(measure(s)[0], 2) for s in expert_pool}
        _atomic_save({"actor": snapshots[step]["actor"], "card": card}, out / f"{env_key}-{level}.pt")
        atomic_write_text(out / f"{env_key}-{level}.json", json.dumps(card, indent=2) + "\n")
        cards[level] = card
        if progress:
            progress(f"[{env_key}] {level}: step {step}, return {mean:.1f} ± {std:.1f} (stochastic), "
                     f"{det_mean:.1f} (deterministic)")
    if keep_medium:
        return cards
    medium_step = chosen["medium"]
    rows = min(medium_step, len(replay["observations"]))
    part = {k: v[:rows].copy() for k, v in replay.items()}
    part["timeouts"][-1] |= not part["terminals"][-1]  # the buffer is cut at the medium snapshot
    part, stride = thin_episodes(part, max_replay_rows)
    compact = compact_replay(part)
    atomic_write(out / f"{env_key}-medium-replay.npz", lambda f: np.savez_compressed(f, **compact))
    cards["medium-replay"] = {
        "env": env_key, "level": "medium-replay", "rows": int(len(part["observations"])),
        "replay_steps": rows, "episode_stride": stride, "seed": run_seed, "source": source or str(train_dir),
    }
    atomic_write_text(out / f"{env_key}-medium-replay.json",
                      json.dumps(cards["medium-replay"], indent=2) + "\n")
    return cards
