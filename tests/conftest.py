import os

# one torch thread per test process (tests run as parallel processes); ADMBENCH_THREADS=2 times the
# benchmarks with two, side by side with the official code's anchor (which uses two)
THREADS = int(os.environ.get("ADMBENCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

torch.set_num_threads(THREADS)


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_data_cache(tmp_path_factory):
    """Tests never write into a real data cache (~/.cache/admbench or the caller's $ADMBENCH_DATA):
    ADMBENCH_DATA (and with it the NeoRL default folder) points at one temp folder per test run, shared
    by the xdist workers; a test that needs another cache sets its own (``tiny_data``)."""
    before = os.environ.get("ADMBENCH_DATA")
    shared = tmp_path_factory.getbasetemp().parent / "admbench-cache"
    shared.mkdir(parents=True, exist_ok=True)
    os.environ["ADMBENCH_DATA"] = str(shared)
    yield
    if before is None:
        os.environ.pop("ADMBENCH_DATA", None)
    else:
        os.environ["ADMBENCH_DATA"] = before


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("admbench-data")


@pytest.fixture
def tiny_data(tiny_data_dir, monkeypatch):
    """Locally built datasets shrunk to 2000 transitions, cached for the whole test session."""
    monkeypatch.setenv("ADMBENCH_DATA", str(tiny_data_dir))
    monkeypatch.setenv("ADMBENCH_LOCAL_SIZE", "2000")
    return tiny_data_dir


@pytest.fixture
def hopper_short_run_learns(tmp_path):
    """``check(algo, last_evals) -> record``: run an online algorithm on mujoco/Hopper at the short budget,
    seed 0, and assert the online learning thresholds: the stochastic training episodes of the last
    interval, and the mean of the last ``last_evals`` deterministic evaluations, return at least 5x the
    random warm-up return (an untrained deterministic Hopper policy can stand for a while; an untrained
    stochastic one scores like the random warm-up)."""
    import numpy as np

    from benchmark.runner import RunSpec, run_one

    def check(algo: str, last_evals: int) -> dict:
        record = run_one(RunSpec(algo, "mujoco/Hopper", seed=0, budget="short"), tmp_path, progress=False)
        assert record["status"] == "ok", record.get("traceback")
        random_return = record["setup_info"]["warmup_return_mean"]
        final_eval = np.mean([p["return_mean"] for p in record["curve"][-last_evals:]])
        final_train = record["curve"][-1]["train_return_mean"]
        assert final_eval >= 5 * random_return, (final_eval, random_return)
        assert final_train >= 5 * random_return, (final_train, random_return)
        return record

    return check


@pytest.fixture
def sac_first_evaluation(tmp_path):
    """The return of online SAC's first evaluation at the short budget on mujoco/Hopper, seed 0 (taken at
    it = 0, after one env step and one update, so ``env_steps=1`` gives the full run's first point):
    an untrained deterministic Hopper policy that stands for a while (197.2 measured)."""
    from benchmark.runner import RunSpec, run_one

    spec = RunSpec("sac", "mujoco/Hopper", seed=0, budget="short", overrides={"env_steps": 1})
    record = run_one(spec, tmp_path / "sac-first", progress=False)
    assert record["status"] == "ok", record.get("traceback")
    return record["curve"][0]["return_mean"]


def pytest_collection_modifyitems(config, items):
    # every test in a bench_*.py file is a timing benchmark: run by `tox -e bench`, not by the fast suite
    for item in items:
        if item.path.name.startswith("bench_"):
            item.add_marker(pytest.mark.benchmark)
