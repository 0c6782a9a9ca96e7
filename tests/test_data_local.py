"""Locally built datasets, the cache/manifest, and the behaviour-policy recipe end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.data import behavior, local, policies
from benchmark.data.behavior import (
    BehaviorConfig,
    choose_snapshots,
    compact_replay,
    select_behavior,
    thin_episodes,
    train_behavior,
)
from benchmark.data.policies import load_training_replay
from benchmark.data_cli import main as data_main
from benchmark.rl.dataset import DatasetError
from benchmark.rl.sac import TanhGaussianActor


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMBENCH_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_random_build_is_deterministic_and_d4rl_shaped():
    a = local.build_local_dataset("hopper", "random", size=800, seed=3)
    b = local.build_local_dataset("hopper", "random", size=800, seed=3)
    c = local.build_local_dataset("hopper", "random", size=800, seed=4)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in a.arrays())
    assert not np.array_equal(a.actions, c.actions)
    assert a.terminals.sum() > 10 and (a.terminals | a.timeouts)[-1]
    # inside an episode s' is the next row's s
    inside = ~(a.terminals | a.timeouts)
    np.testing.assert_array_equal(a.next_observations[:-1][inside[:-1]], a.observations[1:][inside[:-1]])


def test_cache_is_idempotent_verified_and_rebuilt_when_tampered(cache):
    ds = local.load_local_dataset("walker2d", "random", size=800)
    data, manifest = local._paths("walker2d", "random", 800, 0)
    meta = json.loads(manifest.read_text())
    assert meta["sha256"] == local.sha256_file(data) and meta["transitions"] == 800
    mtime = data.stat().st_mtime_ns
    again = local.load_local_dataset("walker2d", "random", size=800)
    assert data.stat().st_mtime_ns == mtime and np.array_equal(again.observations, ds.observations)
    data.write_bytes(b"tampered")
    rebuilt = local.load_local_dataset("walker2d", "random", size=800)
    assert np.array_equal(rebuilt.observations, ds.observations)
    assert local.sha256_file(data) == meta["sha256"]  # deterministic rebuild, same bytes


def test_cached_transitions_reads_the_manifest_without_building(cache, monkeypatch):
    """--plan's dataset size: from a cached build's manifest only; nothing cached (or a broken manifest)
    gives None and builds nothing."""
    from benchmark.tasks import resolve_task

    monkeypatch.setenv("ADMBENCH_LOCAL_SIZE", "700")
    task = resolve_task("local/walker2d-random")
    assert task.cached_transitions() is None and not list(cache.glob("local/*.npz"))
    task.load_dataset()
    assert task.cached_transitions() == 700
    assert local.cached_transitions("walker2d", "random", size=701) is None  # another build
    local._paths("walker2d", "random", 700, 0)[1].write_text("{")
    assert task.cached_transitions() is None
    assert resolve_task("mujoco/Hopper").cached_transitions() is None


def test_failed_build_caches_nothing(cache, monkeypatch):
    def boom(*args, **kwargs):
        raise DatasetError("simulated failure")

    monkeypatch.setattr(local, "build_local_dataset", boom)
    with pytest.raises(DatasetError):
        local.load_local_dataset("hopper", "random", size=100)
    left = sorted(p.name for p in cache.rglob("*")) if cache.exists() else []
    assert left in ([], ["hopper-random-n100-s0-v1.lock", "local"])  # the lock file, nothing cached


def test_cli_build_prints_summaries_and_inspect_reads_cache(cache, capsys):
    argv = ["data", "build", "--env", "hopper", "--level", "random", "--size", "600"]
    assert data_main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["name"] == "local/hopper-random" and first["transitions"] == 600
    assert "normalized_return_mean" in first
    assert data_main(argv + ["--markdown"]) == 0
    line, *table = capsys.readouterr().out.splitlines()
    assert json.loads(line) == first  # the cached copy, same summary
    assert table[2].startswith("| local/hopper-random | 600 |")
    cached = next((cache / "local").glob("hopper-random-n600-*.npz"))
    assert data_main(["data", "inspect", str(cached)]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["transitions"] == 600 and inspected["return_mean"] == first["return_mean"]


# ----- behaviour policies --------------------------------------------------------------------------
def fake_replay(n=500, seed=0):
    rng = np.random.default_rng(seed)
    ends = np.zeros(n, bool)
    ends[[40, 99, 260, 333]] = True
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    nxt = np.concatenate([obs[1:], rng.normal(size=(1, 11)).astype(np.float32)])
    nxt[ends] = rng.normal(size=(ends.sum(), 11))  # successors of episode ends are not the next row
    return {"observations": obs, "actions": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "next_observations": nxt,
            "terminals": ends & (np.arange(n) != 99), "timeouts": ends & (np.arange(n) == 99)}


def test_compact_replay_round_trip(tmp_path):
    full = fake_replay()
    np.savez(tmp_path / "replay.npz", **compact_replay(full), seed=5)
    back = load_training_replay(tmp_path / "replay.npz")
    assert int(back.pop("seed")) == 5
    for k, v in full.items():
        np.testing.assert_array_equal(back[k], v)
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in compact_replay(full).items() if k != "rewards"})
    with pytest.raises(DatasetError, match=r"bad.npz: missing keys \['rewards'\]"):
        load_training_replay(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "replay.npz").read_bytes()[:300])
    with pytest.raises(DatasetError, match="cut.npz: not a readable .npz"):
        load_training_replay(tmp_path / "cut.npz")


def test_thin_episodes_keeps_whole_episodes():
    full = fake_replay()
    thin, stride = thin_episodes({k: v.copy() for k, v in full.items()}, 400)
    assert stride == 2 and len(thin["observations"]) == 41 + 161 + 166
    # episodes 0, 2, 4 of [0..40], [41..99], [100..260], [261..333], [334..499]
    np.testing.assert_array_equal(thin["observations"], full["observations"][np.r_[0:41, 100:261, 334:500]])


def test_choose_snapshots_medium_is_closest_to_a_third_of_expert():
    returns = [(1, 100.0), (2, 1000.0), (3, 1200.0), (4, 3000.0), (5, 2900.0)]
    snaps = {s: {"return_mean": r} for s, r in returns}
    # hopper: a third of 3234.3 is 1078.1 -> 1000 (step 2) is closer than 1200 (step 3)
    assert choose_snapshots(snaps, "hopper") == {"medium": 2, "expert": 4}


def test_select_behavior_writes_loadable_policies_and_replay(tmp_path, monkeypatch):
    torch.manual_seed(0)
    snaps = {}
    for step, ret in [(100, 50.0), (200, 1100.0), (300, 2500.0)]:
        actor = TanhGaussianActor(11, 3, (32, 32), 1.0)
        snaps[step] = {"actor": actor.state_dict(), "return_mean": ret, "return_std": 1.0}
    run = tmp_path / "run"
    run.mkdir()
    torch.save(snaps, run / "snapshots.pt")
    full = fake_replay()
    np.savez(run / "replay.npz", **compact_replay(full), seed=7)
    out = tmp_path / "policies"
    cards = select_behavior(run, "hopper", out, eval_episodes=2, source="unit test", progress=None)
    assert cards["medium"]["training_steps"] == 200 and cards["expert"]["training_steps"] == 300
    card = cards["expert"]
    assert card["hidden"] == [32, 32] and card["obs_dim"] == 11 and card["act_dim"] == 3 and card["seed"] == 7
    assert card["normalized_score"] == pytest.approx(
        100 * (card["return_mean_20ep"] + 20.272305) / (3234.3 + 20.272305), abs=0.01)
    monkeypatch.setattr(policies, "POLICY_DIR", out)
    actor, loaded_card = policies.load_behavior_actor("hopper", "medium")
    assert loaded_card == cards["medium"]
    assert torch.equal(actor.state_dict()["trunk.0.weight"], snaps[200]["actor"]["trunk.0.weight"])
    replay = local.build_local_dataset("hopper", "medium-replay")
    assert len(replay) == 200  # the replay buffer up to the medium snapshot
    np.testing.assert_array_equal(replay.next_observations, full["next_observations"][:200])
    assert replay.timeouts[-1] and replay.terminals[40]
    ds = local.build_local_dataset("hopper", "medium", size=300)
    assert len(ds) == 300
    # a longer run that only improved the expert: --keep-medium rewrites the expert files only
    kept = {f: (out / f).read_bytes() for f in ("hopper-medium.pt", "hopper-medium.json",
                                                 "hopper-medium-replay.npz", "hopper-medium-replay.json")}
    better = TanhGaussianActor(11, 3, (32, 32), 1.0)
    snaps[400] = {"actor": better.state_dict(), "return_mean": 3000.0, "return_std": 1.0}
    snaps[500] = {"actor": better.state_dict(), "return_mean": 1078.0, "return_std": 1.0}  # closer medium
    torch.save(snaps, run / "snapshots.pt")
    cards = select_behavior(run, "hopper", out, eval_episodes=2, progress=None, keep_medium=True)
    assert list(cards) == ["expert"] and cards["expert"]["training_steps"] == 400
    assert all((out / f).read_bytes() == data for f, data in kept.items())
    assert json.loads((out / "hopper-expert.json").read_text())["training_steps"] == 400


def test_train_behavior_resumes_after_interruption(tmp_path):
    # one evaluation only: an untrained hopper policy may stand still for a whole 1000-step episode
    cfg = BehaviorConfig(env="hopper", steps=160, seed=1, start_steps=100, batch_size=32, eval_every=160,
                         eval_episodes=1, checkpoint_every=80, hidden=(16, 16))
    out = tmp_path / "run"
    train_behavior(cfg, out, time_limit_s=0.0, progress=False)  # stops after one step, checkpointed
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 1
    train_behavior(cfg, out, progress=False)
    snaps = torch.load(out / "snapshots.pt", weights_only=False)
    assert sorted(snaps) == [160]
    replay = load_training_replay(out / "replay.npz")
    assert len(replay["observations"]) == 160 and replay["timeouts"][0]  # the interrupted episode
    with pytest.raises(ValueError, match="another config"):
        train_behavior(BehaviorConfig(**{**cfg.__dict__, "seed": 2}), out, progress=False)
    with pytest.raises(ValueError, match="past steps=100"):
        train_behavior(BehaviorConfig(**{**cfg.__dict__, "steps": 100}), out, progress=False)
    # a finished run is extended by a larger ``steps``: the first 160 transitions are kept as they were
    train_behavior(BehaviorConfig(**{**cfg.__dict__, "steps": 320}), out, progress=False)
    assert sorted(torch.load(out / "snapshots.pt", weights_only=False)) == [160, 320]
    longer = load_training_replay(out / "replay.npz")
    assert len(longer["observations"]) == 320
    assert np.array_equal(longer["observations"][:160], replay["observations"])
    assert longer["timeouts"][159] or longer["terminals"][159]  # the episode cut at the old end


def test_shipped_policies_match_their_cards():
    shipped = policies.POLICY_DIR
    for path in sorted(shipped.glob("*-medium.pt")) + sorted(shipped.glob("*-expert.pt")):
        env, level = path.stem.split("-", 1)
        actor, card = policies.load_behavior_actor(env, level)
        assert card["env"] == env and card["level"] == level
        assert json.loads(path.with_suffix(".json").read_text()) == card
        assert policies.actor_from_state_dict(actor.state_dict())[1]["hidden"] == card["hidden"]


def test_cache_rebuilds_when_the_shipped_policy_changes(cache, tmp_path, monkeypatch):
    torch.manual_seed(0)
    out = tmp_path / "policies"
    out.mkdir()
    card = {"obs_dim": 11, "act_dim": 3, "hidden": [8], "act_scale": 1.0}
    torch.save({"actor": TanhGaussianActor(11, 3, (8,)).state_dict(), "card": card}, out / "hopper-medium.pt")
    monkeypatch.setattr(policies, "POLICY_DIR", out)
    first = local.load_local_dataset("hopper", "medium", size=300)
    assert local.load_local_dataset("hopper", "medium", size=300).meta == first.meta
    torch.save({"actor": TanhGaussianActor(11, 3, (8,)).state_dict(), "card": card}, out / "hopper-medium.pt")
    second = local.load_local_dataset("hopper", "medium", size=300)
    assert second.meta["sources"] != first.meta["sources"]
    assert not np.array_equal(second.actions, first.actions)


def test_numpy_actor_policy_matches_torch_actor():
    torch.manual_seed(0)
    actor = TanhGaussianActor(11, 3, (32, 32), act_scale=0.7)
    policy = policies.actor_policy(actor, seed=5)
    eps = np.random.default_rng(5).standard_normal((4, 3), dtype=np.float32)
    obs = np.random.default_rng(1).normal(size=(4, 11)).astype(np.float32)
    for o, e in zip(obs, eps):
        mean, log_std = actor.dist_params(torch.as_tensor(o)[None])
        expected = 0.7 * torch.tanh(mean + log_std.exp() * torch.as_tensor(e)[None])
        np.testing.assert_allclose(policy(o, None), expected[0].detach().numpy(), atol=1e-5)


def test_select_behavior_expert_is_the_best_stochastic_of_the_candidates(tmp_path, monkeypatch):
    torch.manual_seed(0)
    snaps, stochastic_return = {}, {}
    # training-time returns rank 300 first, but measured with stochastic actions 200 is the better policy
    for step, train_ret, stoch_ret in [(100, 50.0, 10.0), (200, 2900.0, 2800.0), (300, 3000.0, 1500.0)]:
        actor = TanhGaussianActor(11, 3, (8,), 1.0)
        snaps[step] = {"actor": actor.state_dict(), "return_mean": train_ret, "return_std": 1.0}
        stochastic_return[actor.state_dict()["trunk.0.weight"].sum().item()] = stoch_ret
    run = tmp_path / "run"
    run.mkdir()
    torch.save(snaps, run / "snapshots.pt")
    np.savez(run / "replay.npz", **compact_replay(fake_replay()), seed=7)

    def fake_measure(actor, env_key, episodes, seed=20_000, deterministic=False):
        ret = stochastic_return[actor.state_dict()["trunk.0.weight"].sum().item()]
        return (ret + 100.0 if deterministic else ret), 1.0

    monkeypatch.setattr(behavior, "measure_actor", fake_measure)
    out = tmp_path / "policies"
    one = select_behavior(run, "hopper", out, eval_episodes=2, progress=None, keep_medium=True)
    assert one["expert"]["training_steps"] == 300 and one["expert"]["return_mean_20ep"] == 1500.0
    two = select_behavior(run, "hopper", out, eval_episodes=2, progress=None, keep_medium=True, candidates=2)
    card = json.loads((out / "hopper-expert.json").read_text())
    assert card == two["expert"] and card["training_steps"] == 200 and card["return_mean_20ep"] == 2800.0
    assert card["deterministic_return_mean_20ep"] == 2900.0
    assert card["expert_candidates_stochastic_return"] == {"200": 2800.0, "300": 1500.0}
    assert "of the 2 snapshots" in card["selection"]
