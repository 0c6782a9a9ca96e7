import os

# one torch thread per test process (tests run as parallel processes); ADMBENCH_THREADS=2 times the
# benchmarks with two, side by side with the official code's anchor (which uses two)
THREADS = int(os.environ.get("ADMBENCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

torch.set_num_threads(THREADS)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("admbench-data")


@pytest.fixture
def tiny_data(tiny_data_dir, monkeypatch):
    """Locally built datasets shrunk to 2000 transitions, cached for the whole test session."""
    monkeypatch.setenv("ADMBENCH_DATA", str(tiny_data_dir))
    monkeypatch.setenv("ADMBENCH_LOCAL_SIZE", "2000")
    return tiny_data_dir


def pytest_collection_modifyitems(config, items):
    # every test in a bench_*.py file is a timing benchmark: run by `tox -e bench`, not by the fast suite
    for item in items:
        if item.path.name.startswith("bench_"):
            item.add_marker(pytest.mark.benchmark)
