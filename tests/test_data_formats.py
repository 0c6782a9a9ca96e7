"""D4RL HDF5, NeoRL npz and Minari readers on small files made here, including broken ones."""

from __future__ import annotations

import json
import sys
import types

import h5py
import numpy as np
import pytest

from benchmark.data.d4rl import load_d4rl_dataset, load_hdf5_dataset
from benchmark.data.minari_loader import load_minari_dataset
from benchmark.data.neorl import load_neorl_dataset, load_neorl_npz
from benchmark.data_cli import main as data_main
from benchmark.rl.dataset import DatasetError
from benchmark.tasks import resolve_task


def d4rl_arrays(n=60, obs_dim=11, act_dim=3, seed=0, episode=25):
    """Episodes of ``episode`` steps ending in timeouts, plus one early terminal at row 7."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    timeouts = (np.arange(n) % episode) == episode - 1
    terminals = np.zeros(n, bool)
    terminals[7] = True
    return {
        "observations": obs,
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
    }


def write_hdf5(path, arrays, with_infos=True):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
        if with_infos:
            f["infos/qpos"] = np.zeros((len(arrays["observations"]), 6))
            f["metadata/algorithm"] = "SAC"
    return path


# ----- D4RL -------------------------------------------------------------------------------------
def test_d4rl_with_next_observations_keeps_every_row(tmp_path):
    a = d4rl_arrays()
    ds = load_hdf5_dataset(write_hdf5(tmp_path / "x.hdf5", a), env_key="hopper")
    assert len(ds) == 60
    np.testing.assert_array_equal(ds.next_observations, a["next_observations"])
    np.testing.assert_array_equal(ds.terminals, a["terminals"])
    np.testing.assert_array_equal(ds.timeouts, a["timeouts"])


def test_d4rl_without_next_observations_never_joins_across_episode_ends(tmp_path):
    a = d4rl_arrays()
    del a["next_observations"]
    ds = load_hdf5_dataset(write_hdf5(tmp_path / "x.hdf5", a), env_key="hopper")
    ends = a["terminals"] | a["timeouts"]
    ends[-1] = True
    kept = np.flatnonzero(~ends)
    assert len(ds) == len(kept) == 60 - 4  # terminal 7, timeouts 24 and 49, last row 59
    np.testing.assert_array_equal(ds.observations, a["observations"][kept])
    np.testing.assert_array_equal(ds.next_observations, a["observations"][kept + 1])
    # the rows before the dropped ones now end their episodes
    assert set(kept[ds.timeouts]) == {6, 23, 48, 58}
    assert not ds.terminals.any()
    assert ds.meta["dropped_rows"] == 4


def test_load_d4rl_dataset_uses_d4rl_file_names_and_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    write_hdf5(tmp_path / "walker2d_medium_replay-v2.hdf5", d4rl_arrays(obs_dim=17, act_dim=6))
    ds = load_d4rl_dataset("d4rl/walker2d-medium-replay-v2")
    assert ds.name == "d4rl/walker2d-medium-replay-v2" and ds.env_key == "walker2d" and ds.obs_dim == 17
    hint = r"hopper_medium-v2\.hdf5.*admbench data fetch d4rl/hopper-medium-v2"
    with pytest.raises(DatasetError, match=hint):
        load_d4rl_dataset("hopper-medium-v2")
    with pytest.raises(DatasetError, match="unknown D4RL dataset"):
        load_d4rl_dataset("ant-medium-v2")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda a: a.pop("timeouts"), r"missing keys \['timeouts'\]"),
        (lambda a: a.update(rewards=a["rewards"][:-3]), "'rewards' has 57 rows"),
        (lambda a: a["observations"].__setitem__((5, 2), np.nan), "'observations' has NaN/inf .*row 5"),
        (lambda a: a["actions"].__setitem__((9, 0), np.inf), "'actions' has NaN/inf"),
        (lambda a: a.update(observations=np.zeros((60, 12), np.float32),
                            next_observations=np.zeros((60, 12), np.float32)), "dims 12/3.*expects 11/3"),
    ],
)
def test_d4rl_bad_content_is_a_dataset_error_naming_the_file(tmp_path, corrupt, message):
    a = d4rl_arrays()
    corrupt(a)
    path = write_hdf5(tmp_path / "bad.hdf5", a)
    with pytest.raises(DatasetError, match=message) as info:
        load_hdf5_dataset(path, env_key="hopper")
    assert "bad.hdf5" in str(info.value)


def test_truncated_and_non_hdf5_files(tmp_path):
    path = write_hdf5(tmp_path / "full.hdf5", d4rl_arrays(n=2000))
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="cut.hdf5: not a readable HDF5 file"):
        load_hdf5_dataset(cut)
    text = tmp_path / "page.hdf5"
    text.write_text("<html>404</html>")
    with pytest.raises(DatasetError, match="page.hdf5: not a readable HDF5 file"):
        load_hdf5_dataset(text)
    with pytest.raises(DatasetError, match="nothere.hdf5: file not found"):
        load_hdf5_dataset(tmp_path / "nothere.hdf5")


# ----- NeoRL ------------------------------------------------------------------------------------
def neorl_arrays(trajectories=1003, obs_dim=12, act_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 6, size=trajectories)
    n = int(lengths.sum())
    ends = np.cumsum(lengths)
    done = np.zeros((n, 1), np.float32)
    done[ends[::3] - 1] = 1.0  # every third trajectory terminates
    return {
        "obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "reward": rng.normal(size=(n, 1)).astype(np.float32),
        "next_obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "done": done,
        "index": ends,
    }


def test_neorl_keeps_first_1000_trajectories_with_timeouts_at_starts(tmp_path):
    a = neorl_arrays()
    np.savez(tmp_path / "Hopper-v3-low-1000-train-noise.npz", **a)
    ds = load_neorl_npz(tmp_path / "Hopper-v3-low-1000-train-noise.npz", env_key="neorl-hopper")
    rows = a["index"][999]
    assert len(ds) == rows and ds.meta["trajectories"] == 1000 and ds.obs_dim == 12
    assert len(ds.episode_returns()) == 1000
    starts = np.concatenate([[0], a["index"][:999]])
    # i is a timeout iff i+1 starts a trajectory (or i is last) and i is not a terminal
    expected_timeouts = np.isin(np.arange(rows) + 1, np.append(starts[1:], rows)) & ~ds.terminals
    np.testing.assert_array_equal(ds.timeouts, expected_timeouts)
    np.testing.assert_array_equal(ds.terminals, a["done"][:rows, 0] > 0)
    np.testing.assert_array_equal(ds.rewards, a["reward"][:rows, 0])


def test_neorl_picks_smallest_file_with_enough_trajectories(tmp_path, monkeypatch):
    monkeypatch.setenv("NEORL_DATA_DIR", str(tmp_path))
    np.savez(tmp_path / "Walker2d-v3-high-100-train-noise.npz", **neorl_arrays(100, 18, 6))
    np.savez(tmp_path / "Walker2d-v3-high-10000-train-noise.npz", **neorl_arrays(1200, 18, 6, seed=1))
    np.savez(tmp_path / "Walker2d-v3-high-1000-train-noise.npz", **neorl_arrays(1000, 18, 6, seed=2))
    ds = load_neorl_dataset("neorl/Walker2d-v3-high")
    assert ds.meta["file"].endswith("-1000-train-noise.npz") and ds.env_key == "neorl-walker2d"
    with pytest.raises(DatasetError, match="Hopper-v3-low-1000-train-noise.npz.*admbench data fetch"):
        load_neorl_dataset("Hopper-v3-low")


def test_neorl_bad_files(tmp_path):
    a = neorl_arrays()
    del a["next_obs"]
    np.savez(tmp_path / "m.npz", **a)
    with pytest.raises(DatasetError, match=r"m.npz: missing keys \['next_obs'\]"):
        load_neorl_npz(tmp_path / "m.npz")
    a = neorl_arrays()
    a["index"] = a["index"][::-1]
    np.savez(tmp_path / "i.npz", **a)
    with pytest.raises(DatasetError, match="i.npz: 'index' must be increasing"):
        load_neorl_npz(tmp_path / "i.npz")
    np.savez(tmp_path / "d.npz", **neorl_arrays(1000, obs_dim=11))
    with pytest.raises(DatasetError, match="dims 11/3.*neorl-hopper.*12/3"):
        load_neorl_npz(tmp_path / "d.npz", env_key="neorl-hopper")
    np.savez(tmp_path / "few.npz", **neorl_arrays(10))
    with pytest.raises(DatasetError, match="has 10 trajectories, 1000 requested"):
        load_neorl_npz(tmp_path / "few.npz")
    (tmp_path / "t.npz").write_bytes((tmp_path / "m.npz").read_bytes()[:500])
    with pytest.raises(DatasetError, match="t.npz: not a readable .npz"):
        load_neorl_npz(tmp_path / "t.npz")


# ----- Minari -----------------------------------------------------------------------------------
def test_minari_missing_package_has_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` raise ImportError
    with pytest.raises(DatasetError, match=r"pip install 'admbench\[minari\]'"):
        load_minari_dataset("mujoco/hopper/medium-v0", "hopper")


def test_minari_episodes_become_flat_transitions(monkeypatch):
    rng = np.random.default_rng(0)

    def episode(t, terminated):
        term = np.zeros(t, bool)
        term[-1] = terminated
        return types.SimpleNamespace(
            observations=rng.normal(size=(t + 1, 11)), actions=rng.normal(size=(t, 3)),
            rewards=np.ones(t), terminations=term, truncations=np.zeros(t, bool),
        )

    episodes = [episode(4, True), episode(3, False)]
    fake = types.SimpleNamespace(
        load_dataset=lambda i: types.SimpleNamespace(iterate_episodes=lambda: iter(episodes))
    )
    monkeypatch.setitem(sys.modules, "minari", fake)
    ds = resolve_task("minari/mujoco/hopper/medium-v0").load_dataset()  # the task knows the env key
    assert len(ds) == 7 and ds.env_key == "hopper"
    np.testing.assert_allclose(ds.next_observations[:4], episodes[0].observations[1:], rtol=1e-6)
    np.testing.assert_array_equal(ds.terminals, [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(ds.timeouts, [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ds.episode_returns(), [4, 3])


# ----- inspect ------------------------------------------------------------------------------------
def test_inspect_prints_json_with_normalized_score(tmp_path, capsys):
    path = write_hdf5(tmp_path / "hopper_medium-v2.hdf5", d4rl_arrays())
    assert data_main(["data", "inspect", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["transitions"] == 60 and out["env_key"] == "hopper" and out["episodes"] == 4
    rets = load_hdf5_dataset(path).episode_returns()
    expected = 100 * (rets.mean() + 20.272305) / (3234.3 + 20.272305)  # D4RL hopper random/expert
    assert out["normalized_return_mean"] == pytest.approx(expected, abs=0.01)
    assert out["normalized_return_std"] == pytest.approx(100 * rets.std() / (3234.3 + 20.272305), abs=0.01)


def test_inspect_bad_input_exits_nonzero_with_message(tmp_path, capsys):
    bad = tmp_path / "hopper_medium-v2.hdf5"
    bad.write_text("not hdf5")
    assert data_main(["data", "inspect", str(bad)]) == 2
    assert "hopper_medium-v2.hdf5: not a readable HDF5 file" in capsys.readouterr().err
    assert data_main(["data", "inspect", "local/ant-medium"]) == 2
    assert "unknown local dataset" in capsys.readouterr().err


def test_task_ids_load_through_the_readers(tmp_path, monkeypatch):
    from benchmark.tasks import resolve_task

    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    monkeypatch.setenv("NEORL_DATA_DIR", str(tmp_path))
    write_hdf5(tmp_path / "halfcheetah_medium_expert-v2.hdf5", d4rl_arrays(obs_dim=17, act_dim=6))
    np.savez(tmp_path / "HalfCheetah-v3-medium-1000-train-noise.npz", **neorl_arrays(1000, 18, 6))
    d4 = resolve_task("d4rl/halfcheetah-medium-expert-v2").load_dataset()
    assert d4.name == "d4rl/halfcheetah-medium-expert-v2" and len(d4) == 60
    neo = resolve_task("neorl/HalfCheetah-v3-medium").load_dataset()
    assert neo.env_key == "neorl-halfcheetah" and neo.obs_dim == 18


def test_admbench_cli_dispatches_data_commands(tmp_path, capsys):
    from benchmark.cli import main as admbench_main

    path = write_hdf5(tmp_path / "walker2d_random-v2.hdf5", d4rl_arrays(obs_dim=17, act_dim=6))
    assert admbench_main(["data", "inspect", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["env_key"] == "walker2d"
    assert admbench_main(["data", "inspect", str(tmp_path / "none.hdf5")]) == 2
