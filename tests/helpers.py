"""Helpers shared by the test modules (test modules never import each other): builders of algorithms on
small local data and their learning runs, a random-policy baseline, seeded batches, and synthetic run
records with known scores for the aggregation and report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from benchmark.config import resolve_config
from benchmark.data.local import load_local_dataset
from benchmark.registry import get
from benchmark.reporting.output import ReportSettings
from benchmark.rl.algorithm import Context
from benchmark.rl.dataset import standing_hopper_data
from benchmark.rl.trainers import evaluate, train_offline
from benchmark.seeding import seed_everything
from benchmark.tasks import resolve_task


def standing_hopper_context(n: int = 5000, device: str | torch.device = "cpu") -> Context:
    """:func:`benchmark.rl.dataset.standing_hopper_data` as an algorithm's context on ``device``."""
    ds = standing_hopper_data(n)
    return Context(ds, "hopper", ds.obs_dim, ds.act_dim, 1.0, torch.device(device), seed=0)


def build_model_based(
    algo: str, level: str = "random", size: int = 2000, budget: str = "smoke", seed: int = 0, **over
):
    """The algorithm object, its config and the task for ``local/hopper-<level>`` (cached dataset)."""
    seed_everything(seed)
    task = resolve_task(f"local/hopper-{level}")
    spec = get(algo)
    cfg, _ = resolve_config(spec.config_cls, spec.config_dir, task.config_keys, budget, over, seed=seed)
    ds = load_local_dataset("hopper", level, size=size)
    env = task.make_env()
    ctx = Context(
        ds, task.env_key, ds.obs_dim, ds.act_dim, float(env.action_space.high[0]), torch.device("cpu"), seed
    )
    return spec.factory(cfg, ctx), cfg, task


# smaller than any algorithm's smoke value where the algorithm has the field (as the checkpoint tests)
SHRINK = {"rollout_batch_size": 200, "model_max_epochs": 1, "dynamics_max_epochs": 1, "bc_steps": 20,
          "pe_steps": 20, "bc_epochs": 1, "adv_train_steps": 5, "num_critics": 5, "batch_size": 32}


def smoke_sizes(algo_name: str) -> dict:
    """The :data:`SHRINK` sizes the algorithm's config declares and that are below its defaults."""
    defaults = get(algo_name).config_cls()
    return {k: v for k, v in SHRINK.items() if isinstance(getattr(defaults, k, None), int)
            and not isinstance(getattr(defaults, k), bool) and v < getattr(defaults, k)}


def smoke_parts(algo_name: str, sizes: dict | None = None, seed: int = 0):
    """Any registered algorithm at the smoke budget (``sizes`` overrides), built and set up, nothing learned
    or observed yet: offline ones on ``local/hopper-medium-replay``, online ones on ``mujoco/Hopper``.
    Returns ``(spec, task, cfg, common context fields, dataset or None, algo)``."""
    from benchmark.runner import RunSpec, _inputs, prepare

    spec = get(algo_name)
    task_id = "local/hopper-medium-replay" if spec.kind == "offline" else "mujoco/Hopper"
    spec, task, cfg, *_ = prepare(RunSpec(algo_name, task_id, seed, "smoke", sizes or {}))
    common, dataset = _inputs(spec, task, cfg, progress=False)
    seed_everything(cfg.seed)
    if spec.kind == "offline":
        algo = spec.factory(cfg, Context(dataset=dataset, **common))
    else:
        from benchmark.rl.online import Context as OnlineContext

        algo = spec.factory(cfg, OnlineContext(None, **common))
    algo.setup()
    return spec, task, cfg, common, dataset, algo


def smoke_algorithm(algo_name: str, sizes: dict | None = None, seed: int = 0):
    """:func:`smoke_parts` ready to learn: online ones after a seeded warm-up of uniform actions (as
    ``train_online``'s) and their step-0 hooks. Returns ``(algo, obs, act_scale, act_dim)``, ``obs`` a few
    observations of the data to act on."""
    spec, task, cfg, common, dataset, algo = smoke_parts(algo_name, sizes, seed)
    if spec.kind == "offline":
        return algo, dataset.observations[:7], common["act_scale"], common["act_dim"]
    return algo, uniform_warmup(algo, task, cfg, common, seed), common["act_scale"], common["act_dim"]


def uniform_warmup(algo, task, cfg, common: dict, seed: int = 0) -> np.ndarray:
    """An online algorithm's seeded warm-up of uniform actions (as ``train_online``'s) and its step-0
    hooks; returns the first 7 observations."""
    from benchmark.rl.online import Transition

    env = task.make_env()
    o, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    first = []
    for _ in range(max(cfg.batch_size, 64)):
        a = rng.uniform(-common["act_scale"], common["act_scale"], common["act_dim"]).astype(np.float32)
        o2, r, term, trunc, _ = env.step(a)
        algo.observe(Transition(o, a, float(r), o2, bool(term), bool(trunc)))
        first.append(o)
        o = env.reset()[0] if term or trunc else o2
    env.close()
    algo.before_step(0)
    return np.stack(first[:7])


def random_policy_score(task, episodes: int = 10, seed: int = 0) -> float:
    """Normalized score of a uniformly random policy over the task's action box (seeded)."""
    env = task.make_env()
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    mean, _, _ = evaluate(lambda o: rng.uniform(low, high).astype(np.float32), task.make_env, episodes, seed)
    return task.normalize(mean)


def random_batch(obs_dim: int, act_dim: int, b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded batch ``obs, act, rew, next_obs, done`` of ``b`` rows (actions in [-1, 1], no terminals)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(b, obs_dim, generator=g),
        "act": torch.rand(b, act_dim, generator=g) * 2 - 1,
        "rew": torch.randn(b, 1, generator=g),
        "next_obs": torch.randn(b, obs_dim, generator=g),
        "done": torch.zeros(b, 1),
    }


def learning_run(algo: str, level: str, size: int, seed: int = 0, **over) -> tuple[float, float, dict]:
    """Train, then return (final score = mean of the last 2 evaluations, random-policy score, result)."""
    algo_obj, cfg, task = build_model_based(algo, level, size, "smoke", seed, **over)
    out = train_offline(algo_obj, cfg, task.make_env, task.normalize, progress=False)
    final = float(np.mean([p["score"] for p in out["curve"][-2:]]))
    return final, random_policy_score(task, cfg.eval_episodes, seed), out


# sizes of the model-based learning tests on local/hopper-medium-replay (10k transitions): 6 epochs of 500
# steps, 5 evaluation episodes, an ensemble capped at 20 epochs / 400 steps, 1000 rollout starts every 250
MODEL_BASED_LEARNING = dict(epochs=6, steps_per_epoch=500, eval_episodes=5, rollout_batch_size=1000,
                            rollout_freq=250, dynamics_max_steps=400, dynamics_max_epochs=20)


def assert_learned(out: dict, final: float, random_score: float, margin: float = 2.0) -> None:
    """A model-based learning test's verdict: the ensemble more than halved its first holdout error, and
    the policy beat the random policy by ``margin`` normalized points."""
    assert out["setup"]["dynamics/holdout_mse"] < 0.5 * out["setup"]["dynamics/holdout_mse_first_epoch"]
    assert final > random_score + margin, (final, random_score)


# how the paper's suites present the method (their YAML ``report:``), for synthetic suites without a file
PAPER_PRESENTATION = ReportSettings(
    highlight=("admpo-off", "admpo-on"), improvement_of=("admpo-off", "admpo-on"), asymptote="sac"
)


def make_record(
    algo: str,
    task: str,
    seed: int,
    final_score: float | None,
    *,
    suite: str = "synth",
    n_evals: int = 4,
    status: str = "ok",
    budget: str = "smoke",
    final_return: float | None = None,
    curve_scores: list[float] | None = None,
) -> dict:
    """A schema-complete record whose curve ends at ``final_score`` (final_k = 1)."""
    if curve_scores is None:
        end = 0.0 if final_score is None else final_score
        curve_scores = [end * (i + 1) / n_evals for i in range(n_evals)]
    curve = [
        {
            "step": 100 * (i + 1),
            "epoch": i + 1,
            "return_mean": 30.0 * s if s is not None else 10.0 * i,
            "return_std": 1.0,
            "score": s,
            "score_std": None,
        }
        for i, s in enumerate(curve_scores)
    ]
    return {
        "algo": algo,
        "task": task,
        "seed": seed,
        "budget": budget,
        "suite": suite,
        "config": {"final_k": 1, "seed": seed},
        "config_hash": "abc123",
        "versions": {"admbench": "0.1.0"},
        "commit": "deadbeef",
        "wall_time_s": 1.5,
        "status": status,
        "reason": None if status == "ok" else "RuntimeError: boom",
        "curve": curve if status == "ok" else [],
        "final_score": final_score if status == "ok" else None,
        "final_return": (
            final_return
            if final_return is not None
            else (curve[-1]["return_mean"] if status == "ok" and curve else None)
        ),
        "final_rule": "mean of the last 1 evaluations",
        "dataset": {"transitions": 2000, "episodes": 7, "return_mean": 123.45, "sha256": "ab" * 32},
    }


def write_records(results_dir: Path, records: list[dict]) -> None:
    for rec in records:
        path = (
            Path(results_dir)
            / rec["suite"]
            / rec["algo"]
            / rec["task"].replace("/", "__")
            / f"seed-{rec['seed']}.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec, indent=1, sort_keys=True))


KNOWN_TASKS = ("local/hopper-medium", "local/walker2d-medium", "local/halfcheetah-medium")


def known_scores(seed: int = 0) -> dict[str, np.ndarray]:
    """algo -> scores[run, task] over :data:`KNOWN_TASKS` (3 seeds), fixed by a seeded generator."""
    rng = np.random.default_rng(seed)
    return {
        "admpo-off": np.round(rng.normal(80, 8, size=(3, 3)), 3),
        "bc": np.round(rng.normal(50, 10, size=(3, 3)), 3),
        "td3bc": np.round(rng.normal(60, 15, size=(3, 3)), 3),
    }


def known_records(suite: str = "synth") -> list[dict]:
    out = []
    for algo, scores in known_scores().items():
        for run in range(scores.shape[0]):
            for j, task in enumerate(KNOWN_TASKS):
                out.append(make_record(algo, task, run, float(scores[run, j]), suite=suite))
    return out


class Interrupted(BaseException):
    """Stands for a SIGKILL inside the process: not an Exception, so the runner records nothing."""


def resume_after_second_checkpoint(run, results: Path, monkeypatch) -> tuple[dict, int]:
    """Run ``run`` into ``results`` until its second checkpoint is written, stop it there, and run it again.
    Returns the resumed record and the position of that checkpoint (where it should have resumed from)."""
    import pytest

    from benchmark.rl.checkpoint import Checkpointer
    from benchmark.runner import run_one

    real_save, saves = Checkpointer.save, []

    def save_then_die(self, position, state):
        path = real_save(self, position, state)
        saves.append(position)
        if len(saves) == 2:
            raise Interrupted
        return path

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(Interrupted):
        run_one(run, results, progress=False)
    monkeypatch.setattr(Checkpointer, "save", real_save)
    return run_one(run, results, progress=False), saves[-1]
