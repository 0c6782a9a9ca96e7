"""pytest-benchmark: one env step of MBPO and of BMPO at Hopper paper settings (one torch thread), with
everything the loop does per env step between model trainings: the action (BMPO: MPC over 1000 candidates
x 6 model steps), the simulator step, and the G = 20 SAC updates on 12 real + 244 model transitions
(BMPO: plus its backward-policy step). Model training and rollouts (every 250 steps) are not included.

Run: ``pytest tests/bench_online_mb.py -m benchmark -p no:xdist --benchmark-only
--benchmark-json=results/bench/online-mb.json``.
"""

import pytest
import torch

from benchmark import registry
from benchmark.config import resolve_config
from benchmark.rl.online import Context, Transition
from benchmark.seeding import seed_everything
from benchmark.tasks import resolve_task


def prepared(algo_name: str):
    """The algorithm after 5000 random steps, one (1-epoch) model training and a 5000-start rollout."""
    seed_everything(0, threads=1)
    task = resolve_task("mujoco/Hopper")
    spec = registry.get(algo_name)
    # sizes of the setup only; the per-step work is the paper's (G = 20, batch 256, MPC 1000 x 6)
    cfg, _ = resolve_config(spec.config_cls, spec.config_dir, task.config_keys, "paper",
                            {"dynamics_max_epochs": 1, "rollout_batch_size": 5000, "buffer_size": 100_000})
    algo = spec.factory(cfg, Context(None, "hopper", 11, 3, 1.0, torch.device("cpu"), 0))
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(cfg.start_learning):
        action = env.action_space.sample()
        next_obs, rew, term, trunc, _ = env.step(action)
        algo.observe(Transition(obs, action, float(rew), next_obs, term, trunc))
        obs = env.reset()[0] if term or trunc else next_obs
    algo.before_step(0)
    state = {"obs": obs, "it": 1}

    def env_step():
        algo.before_step(state["it"])  # no model work between trainings
        action = algo.act(state["obs"], deterministic=False)
        next_obs, rew, term, trunc, _ = env.step(action)
        algo.observe(Transition(state["obs"], action, float(rew), next_obs, term, trunc))
        state["obs"] = env.reset()[0] if term or trunc else next_obs
        for _ in range(cfg.updates_per_step):
            algo.learn(algo.next_batch(state["it"]))
        state["it"] += 1

    return algo, env_step


@pytest.mark.parametrize("algo_name", ["mbpo", "bmpo"])
def test_env_step_with_updates(benchmark, algo_name):
    algo, env_step = prepared(algo_name)
    benchmark.extra_info["updates_per_step"] = algo.cfg.updates_per_step
    benchmark.extra_info["mpc"] = getattr(algo.cfg, "planning_horizon", 0)
    benchmark.pedantic(env_step, rounds=12, iterations=1, warmup_rounds=1)
