"""Device placement without CUDA (issue 19): the hot loops of every registered algorithm (a model rollout, the
batches and the gradient steps) make no host tensors, copy no host data in and bring nothing back to the
host (:mod:`tests.device_traffic` records what would be traffic on a GPU); batch indices are drawn on the
generator's device, and with the CPU generator exactly as before; rollout chunks are sized per device
without changing any CPU config."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from helpers import smoke_parts, smoke_sizes

from benchmark import registry
from benchmark.config import resolve_config
from benchmark.rl.buffers import TransitionBuffer, WindowSampler, index_generator
from benchmark.rl.configs import ConfigError
from benchmark.runner import RunSpec, prepare
from tests.device_traffic import HostTraffic

# CPU-only branches: the rollout's dropout keep flags are drawn with numpy into CPU tensors only when the
# model is on the CPU (adm/rollout.py ``_Randomness._fill``; torch generators on other devices)
CPU_ONLY = (" _fill",)
# plus the one read of a rollout's summary numbers (and k draws): once per rollout, outside its steps
# (benchmark.rl.trainers.read_once; per-step reads are counted by tests/test_host_syncs.py)
CPU_ONLY += (" read_once",)


def _build(name: str):
    """The smoke-size algorithm (:func:`helpers.smoke_parts`) and, online, a uniform warm-up that fills the
    replay to ``start_learning``."""
    from benchmark.rl.online import Transition

    spec, task, cfg, common, _, algo = smoke_parts(name, smoke_sizes(name))
    if spec.kind == "offline":
        return spec, cfg, algo
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(max(cfg.batch_size, 64, getattr(cfg, "start_learning", 0))):  # a uniform warm-up
        act = rng.uniform(-common["act_scale"], common["act_scale"], common["act_dim"]).astype(np.float32)
        nxt, rew, term, trunc, _ = env.step(act)
        algo.observe(Transition(obs, act, float(rew), nxt, bool(term), bool(trunc)))
        obs = env.reset()[0] if term or trunc else nxt
    env.close()
    return spec, cfg, algo


def hot_loop_traffic(name: str) -> list[tuple[str, str, str]]:
    """Host-device traffic of one model rollout and three ``learn(next_batch(step))`` steps, after one
    warm-up round (first calls fill caches: window starts, the optimizers' state)."""
    spec, cfg, algo = _build(name)
    if spec.kind == "offline":
        period = getattr(cfg, "rollout_freq", 1)  # step 0 and step `period` roll the model out
        algo.learn(algo.next_batch(0))
        with HostTraffic(allowed=CPU_ONLY) as recorder:
            for step in range(period, period + 3):
                algo.learn(algo.next_batch(step))
        return recorder.events
    algo.before_step(0)  # model training and the first rollout
    algo.learn(algo.next_batch(0))
    with HostTraffic(allowed=CPU_ONLY) as recorder:
        if hasattr(algo, "rollout"):
            algo.rollout(cfg.rollout_batch_size, 1)
        for step in range(1, 4):
            algo.learn(algo.next_batch(step))
    return recorder.events


@pytest.mark.parametrize("algo_name", sorted(registry.algorithms()))
def test_hot_loops_make_no_host_tensors_and_no_host_device_copies(algo_name, tiny_data):
    assert hot_loop_traffic(algo_name) == []


@pytest.mark.parametrize("algo_name", ["admpo-off", "mopo", "admpo-on"])  # ADM, ensemble (MBPO's too)
def test_model_training_moves_data_once_per_training_not_per_step(algo_name, tiny_data, monkeypatch):
    """The model-training loops (ADM windows, ensemble minibatches): what crosses between host and device is
    set-up work (normalisers, the window-start tables per k, ADMPO-ON's view of its replay), a handful of
    times per training whatever its length, never once per gradient step."""
    spec = registry.get(algo_name)
    recorder, infos = HostTraffic(allowed=CPU_ONLY), []
    if spec.kind == "offline":
        real_setup = spec.factory.setup

        def recorded_setup(self):
            with recorder:
                infos.append(real_setup(self))
            return infos[-1]

        monkeypatch.setattr(spec.factory, "setup", recorded_setup)
        _build(algo_name)
    else:
        _, _, algo = _build(algo_name)
        with recorder:
            infos.append(algo.before_step(0))
    steps = [v for k, v in infos[0].items() if k.endswith("steps")]  # the model's gradient steps
    per_site: dict[str, int] = {}
    for _, where, _ in recorder.events:
        per_site[where] = per_site.get(where, 0) + 1
    assert steps and min(steps) >= 30, infos
    assert max(per_site.values(), default=0) <= 10, per_site


def test_the_recorder_catches_indices_drawn_on_the_host(tiny_data, monkeypatch):
    """The draw this issue replaced (CPU indices copied to the data's device every step) is caught."""

    def host_indices(self, batch_size, generator=None):
        idx = torch.randint(0, self.size, (batch_size,), generator=generator, device="cpu").to(self.device)
        return {k: v[idx] for k, v in self.data.items()}

    monkeypatch.setattr(TransitionBuffer, "sample", host_indices)
    events = hot_loop_traffic("td3bc")
    assert {(kind, func) for kind, _, func in events} == {("device move", "to")}
    assert all(" host_indices" in where for _, where, _ in events)


def test_the_recorder_sees_every_kind_of_traffic():
    x = torch.zeros(3, device="cpu")
    with HostTraffic() as recorder:
        torch.randint(0, 5, (2,))  # no device=
        torch.as_tensor(np.ones(2))  # host data in
        x.to("cpu")  # a device move
        x.cpu()  # device data to the host
        x.to(torch.float64)  # a dtype change: no traffic
        torch.zeros_like(x)  # inherits x's device: no traffic
    kinds = [kind for kind, _, _ in recorder.events]
    assert kinds == ["host tensor (no device=)", "host data copied in", "device move",
                     "device data to the host"]


# ----- index generators ---------------------------------------------------------------------------
def test_index_generator_is_the_cpu_generator_itself_on_the_cpu():
    g = torch.Generator().manual_seed(7)
    assert index_generator(g, "cpu") is g
    assert index_generator(g, torch.device("cpu")) is g


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_index_generator_on_a_gpu_is_a_seeded_twin_there():
    g = torch.Generator().manual_seed(7)
    twin = index_generator(g, "cuda")
    assert twin.device.type == "cuda" and twin.initial_seed() == 7
    buf = TransitionBuffer(100, 3, 2, "cuda")
    buf.add(obs=np.ones((100, 3)), act=np.ones((100, 2)), rew=np.ones((100, 1)), next_obs=np.ones((100, 3)),
            done=np.zeros((100, 1)))
    with HostTraffic() as recorder:
        buf.sample(32, twin)
    assert recorder.events == []


def _buffer(n: int = 50) -> TransitionBuffer:
    buf = TransitionBuffer(n, 2, 1)
    rows = np.arange(n, dtype=np.float32)[:, None]
    buf.add(obs=np.repeat(rows, 2, 1), act=rows, rew=rows, next_obs=rows.repeat(2, 1), done=0 * rows)
    return buf


def test_buffer_draws_on_the_generator_s_device_and_the_cpu_draw_is_unchanged():
    """With a CPU generator the rows are today's draw: ``randint(0, size, (B,), generator)`` on the CPU."""
    buf = _buffer()
    calls = []

    class Spy(HostTraffic):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.randint:
                calls.append(kwargs.get("device"))
            return super().__torch_function__(func, types, args, kwargs)

    with Spy() as recorder:
        rows = buf.sample(16, torch.Generator().manual_seed(3))["act"].squeeze(1)
    expected = torch.randint(0, 50, (16,), generator=torch.Generator().manual_seed(3)).float()
    torch.testing.assert_close(rows, expected, rtol=0, atol=0)
    assert calls == [torch.device("cpu")] and recorder.events == []


def test_window_starts_are_drawn_on_the_generator_s_device_and_unchanged_on_the_cpu(tiny_data):
    from benchmark.tasks import resolve_task

    sampler = WindowSampler(resolve_task("local/hopper-medium-replay").load_dataset())
    starts = sampler.valid_starts(3)
    picked = sampler.sample_starts(64, 3, generator=torch.Generator().manual_seed(5))
    expected = starts[torch.randint(0, len(starts), (64,), generator=torch.Generator().manual_seed(5))]
    torch.testing.assert_close(picked, expected, rtol=0, atol=0)
    with HostTraffic() as recorder:
        sampler.sample(64, 3, generator=torch.Generator().manual_seed(5))
    assert recorder.events == []


def test_a_resumed_algorithm_keeps_one_generator_on_the_cpu(tiny_data):
    """The checkpoint pickles the algorithm whole: on the CPU its batch generator stays the generator itself
    (one stream), so a resumed run draws what an uninterrupted one draws."""
    _, _, algo = _build("admpo-off")
    assert algo.batch_generator is algo.generator
    algo.learn(algo.next_batch(1))
    back = pickle.loads(pickle.dumps(algo))
    assert back.batch_generator is back.generator
    torch.testing.assert_close(back.generator.get_state(), algo.generator.get_state(), rtol=0, atol=0)


# ----- rollout chunk size per device --------------------------------------------------------------
@pytest.mark.parametrize("algo_name, cpu_chunk", [("admpo-off", 1000), ("admpo-on", 10_000),
                                                  ("admpo-off-ablation", 1000)])
def test_rollout_chunk_size_is_chosen_per_device_and_echoed_in_the_config(algo_name, cpu_chunk):
    spec = registry.get(algo_name)
    key = ("hopper-medium-replay-v2",) if spec.kind == "offline" else ("Hopper",)
    for budget in ("smoke", "short", "paper"):
        cpu, _ = resolve_config(spec.config_cls, spec.config_dir, key, budget)
        assert cpu.rollout_chunk_size == cpu_chunk  # the value every CPU run had (config hash unchanged)
        gpu, _ = resolve_config(spec.config_cls, spec.config_dir, key, budget, {"device": "cuda"})
        assert gpu.rollout_chunk_size == min(gpu.rollout_batch_size, 50_000)  # all starts, 50k at most
        assert gpu.rollout_batch_size == cpu.rollout_batch_size
    paper_gpu, _ = resolve_config(spec.config_cls, spec.config_dir, key, "paper", {"device": "cuda:1"})
    assert paper_gpu.rollout_chunk_size == min(paper_gpu.rollout_batch_size, 50_000) >= 50_000
    given, _ = resolve_config(spec.config_cls, spec.config_dir, key, "paper",
                              {"device": "cuda", "rollout_chunk_size": 4096})
    assert given.rollout_chunk_size == 4096  # a chunk size given is kept on every device
    with pytest.raises(ConfigError, match=r"^--set: field 'rollout_chunk_size' = 0 is out of range"):
        resolve_config(spec.config_cls, spec.config_dir, key, "paper", {"rollout_chunk_size": 0})


def test_the_resolved_chunk_size_is_in_the_record_config_and_hash():
    """A GPU run's record names its chunk size; the CPU hash is the one the field's old default gave."""
    task = "local/hopper-medium-replay"
    cpu = prepare(RunSpec("admpo-off", task, 0, "paper"))
    gpu = prepare(RunSpec("admpo-off", task, 0, "paper", {"device": "cuda"}))
    old = prepare(RunSpec("admpo-off", task, 0, "paper", {"rollout_chunk_size": 1000}))
    assert cpu[3]["rollout_chunk_size"] == 1000 and gpu[3]["rollout_chunk_size"] == 50_000
    assert cpu[3] == old[3] and cpu[-1] == old[-1]  # the run with the old default: same config and hash
    assert gpu[-1] != cpu[-1]
