"""The local dataset cache under faults: concurrent builders, failed and disk-full saves, malformed
manifests, and the global random streams (a build must not move them)."""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import logging
import multiprocessing
import os
import random

import numpy as np
import pytest
import torch

from benchmark import cli as top_cli
from benchmark import data_cli
from benchmark.data import local, policies
from benchmark.data_cli import main as data_main
from benchmark.rl.dataset import DatasetError

SIZE = 300  # transitions: a hopper-random build of this size takes milliseconds


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMBENCH_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cache_files(cache) -> list[str]:
    return sorted(p.name for p in (cache / "local").iterdir()) if (cache / "local").exists() else []


def temp_files(cache) -> list[str]:
    return [name for name in cache_files(cache) if name.startswith(".") or "tmp" in name]


def arrays_digest(ds) -> str:
    h = hashlib.sha256()
    for key, value in sorted(ds.arrays().items()):
        h.update(key.encode() + value.tobytes())
    return h.hexdigest()


# ----- two processes, one cold cache ---------------------------------------------------------------
def _build_in_lockstep(cache: str, seeds: list[int], barrier, results) -> None:
    """Child process: for each seed, wait for the other builder, then load the same cold dataset."""
    os.environ["ADMBENCH_DATA"] = cache
    from benchmark.data import local as child_local

    builds = []
    real_build = child_local.build_local_dataset

    def counting_build(*args, **kwargs):
        builds.append(args)
        return real_build(*args, **kwargs)

    child_local.build_local_dataset = counting_build
    digests = []
    try:
        for seed in seeds:
            barrier.wait(timeout=120)
            digests.append(arrays_digest(child_local.load_local_dataset("hopper", "random", SIZE, seed)))
        results.put((len(builds), digests))
    except BaseException as err:  # the parent asserts on what each child reports
        results.put((-1, repr(err)))


def test_two_processes_building_one_cold_dataset_both_succeed_and_build_once(cache):
    seeds = [0, 1, 2, 3]  # four trials, each a fresh cache entry both processes want at once
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_build_in_lockstep, args=(str(cache), seeds, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        reports = [results.get(timeout=240) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
    assert all(n >= 0 for n, _ in reports), reports
    (builds_a, digests_a), (builds_b, digests_b) = reports
    assert digests_a == digests_b  # both got the same data for every trial
    assert builds_a + builds_b == len(seeds)  # one builder per entry, the other waited and reused it
    for seed in seeds:
        data_path, manifest_path = local._paths("hopper", "random", SIZE, seed)
        assert json.loads(manifest_path.read_text())["sha256"] == local.sha256_file(data_path)
    assert temp_files(cache) == []
    assert digests_a[0] == arrays_digest(local.build_local_dataset("hopper", "random", SIZE, 0))


# ----- failed and disk-full saves ------------------------------------------------------------------
def _failing_savez(exc):
    def savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")  # a partial write, then the failure
        raise exc

    return savez


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("killed")])
def test_a_failed_save_leaves_no_partial_file(cache, monkeypatch, exc):
    monkeypatch.setattr(np, "savez", _failing_savez(exc))
    expected = DatasetError if isinstance(exc, OSError) else RuntimeError
    with pytest.raises(expected) as info:
        local.load_local_dataset("hopper", "random", SIZE)
    data_path, _ = local._paths("hopper", "random", SIZE, 0)
    if isinstance(exc, OSError):  # an I/O error names the file it could not write
        assert str(info.value) == f"could not write {data_path}: No space left on device"
    assert cache_files(cache) == [data_path.name.removesuffix(".npz") + ".lock"]  # nothing half-written


def test_temp_files_of_a_killed_builder_are_removed_by_the_next_build(cache):
    data_path, manifest_path = local._paths("hopper", "random", SIZE, 0)
    data_path.parent.mkdir(parents=True)
    leftovers = [data_path.with_name(f".{data_path.name}.k1ll3d.tmp"),
                 manifest_path.with_name(f".{manifest_path.name}.k1ll3d.tmp")]
    for path in leftovers:
        path.write_bytes(b"half")
    other = data_path.with_name(f".{data_path.name.replace('n300', 'n301')}.k1ll3d.tmp")
    other.write_bytes(b"another entry's, maybe being written now")
    local.load_local_dataset("hopper", "random", SIZE)
    assert not any(p.exists() for p in leftovers) and other.exists()


def test_disk_full_while_writing_the_manifest_leaves_no_temp_file_and_rebuilds(cache, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:  # the second published file is the manifest
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    _, manifest_path = local._paths("hopper", "random", SIZE, 0)
    with pytest.raises(DatasetError, match=f"could not write {manifest_path}: No space left"):
        local.load_local_dataset("hopper", "random", SIZE)
    assert temp_files(cache) == [] and not manifest_path.exists()
    monkeypatch.setattr(os, "fsync", real_fsync)
    ds = local.load_local_dataset("hopper", "random", SIZE)  # no manifest: rebuilt and published
    assert ds.meta["sha256"] == json.loads(manifest_path.read_text())["sha256"]


def test_cli_build_on_a_full_disk_is_one_line_naming_the_file(cache, monkeypatch, capsys):
    monkeypatch.setattr(np, "savez", _failing_savez(OSError(errno.ENOSPC, "No space left on device")))
    code = data_main(["data", "build", "--env", "walker2d", "--level", "random", "--size", str(SIZE)])
    data_path, _ = local._paths("walker2d", "random", SIZE, 0)
    assert code == 2
    expected = f"admbench: error: could not write {data_path}: No space left on device\n"
    assert capsys.readouterr().err == expected


def test_published_files_are_readable_by_others(cache):
    old = os.umask(0o022)
    try:
        local.load_local_dataset("hopper", "random", SIZE)
    finally:
        os.umask(old)
    data_path, manifest_path = local._paths("hopper", "random", SIZE, 0)
    assert oct(data_path.stat().st_mode & 0o777) == oct(manifest_path.stat().st_mode & 0o777) == "0o644"


# ----- malformed manifests -------------------------------------------------------------------------
@pytest.mark.parametrize("content, problem", [
    (None, "unreadable"),  # truncated JSON (filled in below)
    (b"[1, 2, 3]", "not a JSON object (list)"),
    (b'"local/hopper-random"', "not a JSON object (str)"),
    (b"null", "not a JSON object (NoneType)"),
    (b'{"id": "local/hopper-random", "size": 300}', "missing seed, format_version, sha256, sources"),
    (b"\xff\xfe\x00garbage", "unreadable"),
])
def test_malformed_manifest_is_stale_rebuilt_and_named(cache, caplog, content, problem):
    first = local.load_local_dataset("hopper", "random", SIZE)
    data_path, manifest_path = local._paths("hopper", "random", SIZE, 0)
    good = manifest_path.read_bytes()
    manifest_path.write_bytes(good[:50] if content is None else content)
    with caplog.at_level(logging.WARNING, logger="benchmark.data.local"):
        again = local.load_local_dataset("hopper", "random", SIZE)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"{manifest_path}: manifest {problem}")
    assert warnings[0].endswith("rebuilding the cached dataset")
    assert manifest_path.read_bytes() == good  # rebuilt to the same manifest and data
    assert arrays_digest(again) == arrays_digest(first) and again.meta == json.loads(good)
    assert temp_files(cache) == []


def test_manifest_of_another_build_is_stale_without_warning(cache, caplog):
    local.load_local_dataset("hopper", "random", SIZE)
    data_path, manifest_path = local._paths("hopper", "random", SIZE, 0)
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "seed": 7}))  # valid, but not this entry's
    mtime = data_path.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="benchmark.data.local"):
        local.load_local_dataset("hopper", "random", SIZE)
    assert caplog.records == [] and data_path.stat().st_mtime_ns != mtime  # rebuilt quietly
    assert json.loads(manifest_path.read_text()) == manifest


# ----- global random streams -----------------------------------------------------------------------
def global_rng_states() -> tuple:
    np_state = np.random.get_state()
    return (random.getstate(), np_state[0], np_state[1].tobytes(), *np_state[2:],
            torch.get_rng_state().numpy().tobytes())


def test_loading_published_formats_does_not_move_the_global_random_streams(tmp_path, monkeypatch):
    import h5py

    from benchmark.tasks import resolve_task

    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "hopper_medium-v2.hdf5", "w") as f:
        for key, dim in {"observations": 11, "next_observations": 11, "actions": 3}.items():
            f[key] = rng.normal(size=(40, dim)).astype(np.float32)
        f["rewards"], f["terminals"] = np.ones(40, np.float32), np.zeros(40, bool)
        f["timeouts"] = np.arange(40) == 39
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    torch.manual_seed(5)
    before = global_rng_states()
    assert len(resolve_task("d4rl/hopper-medium-v2").load_dataset()) == 40
    assert global_rng_states() == before


@pytest.mark.parametrize("level", ["medium", "medium-expert", "random"])
def test_building_or_loading_a_dataset_does_not_move_the_global_random_streams(cache, level):
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = global_rng_states()
    cold = local.load_local_dataset("hopper", level, 40)  # cold: builds (a SAC actor for medium/expert)
    assert global_rng_states() == before
    warm = local.load_local_dataset("hopper", level, 40)  # warm: loads the cached file
    assert global_rng_states() == before
    assert arrays_digest(cold) == arrays_digest(warm)
    if level != "random":
        policies.load_behavior_actor("hopper", "expert")  # called alone, too
        assert global_rng_states() == before


# ----- numeric flags of the data commands ----------------------------------------------------------
REQUIRED_ARGS = {"build": [], "train-behavior": ["--env", "hopper", "--out", "OUT"],
                 "select-behavior": ["TRAIN_DIR", "--env", "hopper"], "fetch": ["d4rl/hopper-medium-v2"],
                 "inspect": ["local/hopper-random"]}


def test_every_numeric_flag_of_every_data_command_has_a_range():
    commands = argparse.ArgumentParser().add_subparsers(dest="data_command")
    data_cli.add_data_commands(commands)
    assert set(commands.choices) == set(REQUIRED_ARGS)
    for command, sub in commands.choices.items():
        numeric = {a.option_strings[0] for a in sub._actions if a.type in (int, float)}
        assert numeric == set(data_cli.FLAG_RANGES.get(command, {})), command


BAD_FLAGS = [(command, flag, bad, allowed) for command, flags in data_cli.FLAG_RANGES.items()
             for flag, allowed in flags.items()
             for bad in ((-1,) if allowed == data_cli.NON_NEGATIVE_INT else (0, -5))]


@pytest.mark.parametrize("entry", ["admbench", "data-cli"])
@pytest.mark.parametrize("command, flag, bad, allowed", BAD_FLAGS)
def test_out_of_range_flags_are_refused_before_any_work(cache, monkeypatch, capsys, entry, command, flag,
                                                        bad, allowed):
    def must_not_run(args):
        raise AssertionError(f"{command} ran with {flag} {bad}")

    monkeypatch.setitem(data_cli.COMMANDS, command, must_not_run)
    argv = ["data", command, *REQUIRED_ARGS[command], flag, str(bad)]
    code = top_cli.main(argv) if entry == "admbench" else data_main(argv)
    assert code == 2
    assert capsys.readouterr().err == f"admbench: error: {flag} must be {allowed}, got {bad}\n"
    assert not cache.exists()


def test_nan_time_limit_is_refused(capsys):
    assert data_main(["data", "train-behavior", "--env", "hopper", "--out", "x", "--time-limit", "nan"]) == 2
    assert capsys.readouterr().err == "admbench: error: --time-limit must be a positive number, got nan\n"


def test_data_errors_carry_the_admbench_prefix(cache, capsys):
    assert data_main(["data", "inspect", "no/such-task"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("admbench: error: ") and err.count("\n") == 1


def test_library_refuses_non_positive_sizes_and_negative_seeds(cache):
    for size in (0, -5, 2.5, True):
        expected = f"local/hopper-random: size must be a positive integer, got {size}"
        with pytest.raises(DatasetError, match=expected):
            local.load_local_dataset("hopper", "random", size)
    with pytest.raises(DatasetError, match="build seed must be a non-negative integer, got -1"):
        local.load_local_dataset("hopper", "random", SIZE, seed=-1)
    assert not cache.exists()
