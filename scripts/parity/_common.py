"""Shared plumbing of the parity scripts (issue 21).

Each ``scripts/parity/<reference>.py`` imports a reference implementation from a checkout whose path is
in an environment variable (``PARITY_<NAME>``), never from a copy in this repository, runs it on inputs
and weights built here, and writes the reference's outputs as a small fixture under
``tests/fixtures/parity/``. ``tests/test_parity.py`` then runs our code on the same inputs and compares.

A checkout is a ``git archive`` export or a clone; its commit comes from ``PARITY_<NAME>_COMMIT``, a
``.commit`` file in the checkout, or ``git rev-parse HEAD``, in that order.

Noise: both sides get the same Gaussian and uniform draws. Here the reference's noise sources are
patched to hand out stored arrays (:func:`patched`); the tests patch ours with the same arrays
(``tests/parity_cases.py``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
sys.path.insert(0, str(ROOT))


def checkout(name: str) -> tuple[Path, str]:
    """``(path, commit)`` of the reference checkout named by ``PARITY_<NAME>``; the path goes on sys.path."""
    var = f"PARITY_{name.upper().replace('-', '_')}"
    value = os.environ.get(var)
    if not value or not Path(value).is_dir():
        sys.exit(f"parity: error: set {var} to a checkout of the reference ({name}); got {value!r}")
    path = Path(value).resolve()
    commit = os.environ.get(f"{var}_COMMIT")
    if not commit and (path / ".commit").is_file():
        commit = (path / ".commit").read_text().strip()
    if not commit:
        try:
            commit = subprocess.check_output(["git", "-C", str(path), "rev-parse", "HEAD"], text=True).strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            sys.exit(f"parity: error: cannot tell the commit of {path}; set {var}_COMMIT")
    sys.path.insert(0, str(path))
    return path, commit


def stub_module(name: str, **attrs) -> types.ModuleType:
    """Register a stand-in module (for imports a reference needs but never uses in the checked code)."""
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def save_fixture(name: str, repo: str, commit: str, files: str, **arrays) -> Path:
    """Write ``tests/fixtures/parity/<name>.npz`` with the reference's repository, commit and files inside."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = {"meta/repo": np.array(repo), "meta/commit": np.array(commit), "meta/files": np.array(files)}
    for key, value in arrays.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        out[key] = value
    path = FIXTURES / f"{name}.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes; {repo}@{commit[:7]})")
    return path


def state(prefix: str, module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A module's state dict as fixture arrays under ``prefix/``."""
    return {f"{prefix}/{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


class NoiseQueue:
    """Stored noise handed out in order, one queue per shape; every array must be used exactly once."""

    def __init__(self, arrays):
        self.queues: dict[tuple, list[torch.Tensor]] = {}
        for a in arrays:
            t = torch.as_tensor(np.asarray(a), dtype=torch.float32)
            self.queues.setdefault(tuple(t.shape), []).append(t)

    def take(self, shape) -> torch.Tensor:
        q = self.queues.get(tuple(shape))
        if not q:
            raise AssertionError(f"unexpected noise draw of shape {tuple(shape)}")
        return q.pop(0).clone()

    def check_used(self) -> None:
        left = {k: len(v) for k, v in self.queues.items() if v}
        if left:
            raise AssertionError(f"noise not used: {left}")


@contextlib.contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def reference_gaussians(noise: NoiseQueue):
    """``torch.distributions`` reparameterised draws and ``torch.randn_like`` take stored noise."""
    import torch.distributions.normal as normal_mod

    def standard_normal(shape, dtype=None, device=None):
        return noise.take(shape)

    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(normal_mod, "_standard_normal", standard_normal))
        stack.enter_context(patched(torch, "randn_like", lambda x, **kw: noise.take(x.shape).to(x)))
        yield
    noise.check_used()


class _AnyMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyMeta(name, (_Anything,), {})


class _Anything(metaclass=_AnyMeta):
    """Stand-in class: accepts any arguments; any attribute or call gives another stand-in."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()


class _StubFinder:
    """Import hook: every module under the given top-level names is an empty stand-in whose attributes
    are mocks (for imports a reference pulls in at module level but the checked code never calls)."""

    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []

        def attribute(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _AnyMeta(attr, (_Anything,), {"__module__": spec.name})

        mod.__getattr__ = attribute
        return mod

    def exec_module(self, module):
        pass


def stub_packages(*roots: str) -> None:
    sys.meta_path.insert(0, _StubFinder(roots))
