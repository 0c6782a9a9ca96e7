"""Algorithm registry: a name maps to a typed config class, a factory and a kind.

An algorithm registers once, at import time of its module::

    register(AlgorithmSpec(name="bc", config_cls=BCConfig, factory=BC, kind="offline",
                           config_dir=Path(__file__).parent / "configs" / "bc"))

Analyses (a computation over a task's data that records a ``result`` instead of a score, e.g. the
compounding-error figure) register the same way as :class:`AnalysisSpec` with :func:`register_analysis`.

Built-ins are the modules of the ``adm`` and ``baselines`` packages (each module is imported and
registers itself). Algorithms outside this repository register the same way from a module named by
the ``admbench.algorithms`` entry-point group or by ``ADMBENCH_PLUGINS=pkg.module[,pkg2.mod]``.
The runner only ever looks names up here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("offline", "online")
BUILTIN_PACKAGES = ("baselines", "adm")


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str  # CLI id, e.g. "td3bc"
    config_cls: type  # dataclass, subclass of OfflineConfig / OnlineConfig
    factory: Callable[..., Any]  # factory(cfg, ctx) -> algorithm object
    kind: str  # "offline" or "online"
    config_dir: Path | None = None  # holds <task config key>.yaml files
    description: str = ""
    paper: str = ""  # citation of the method's paper
    module: str = ""


@dataclass(frozen=True)
class AnalysisSpec:
    """An analysis job kind. ``config_cls`` is a dataclass of sizes with ``BUDGETS`` (resolved like an
    algorithm config); ``run(dataset, env_key, sizes, seed) -> dict`` is the computation (JSON-able).

    ``config_from`` names a registered algorithm whose resolved config (the task's YAML, ``paper`` budget)
    gives the fields named in ``inherit`` (``{sizes field: algorithm config field}``): an analysis of a
    method's model borrows the method's model settings, and the runner, not the analysis, looks them up."""

    name: str
    config_cls: type
    run: Callable[..., dict]
    config_from: str = ""
    inherit: tuple[tuple[str, str], ...] = ()  # (sizes field, config_from field) pairs
    config_dir: Path | None = None  # holds <task config key>.yaml files, as for algorithms
    description: str = ""
    module: str = ""


_REGISTRY: dict[str, AlgorithmSpec] = {}
_ANALYSES: dict[str, AnalysisSpec] = {}
_LOADED = False
IMPORT_ERRORS: dict[str, str] = {}  # built-in module -> error; one broken module must not hide the rest


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    if spec.kind not in KINDS:
        raise RegistryError(f"algorithm {spec.name!r}: kind must be one of {KINDS}, got {spec.kind!r}")
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing.factory is not spec.factory:
        raise RegistryError(f"algorithm {spec.name!r} is already registered by {existing.module}")
    _REGISTRY[spec.name] = spec
    return spec


def register_analysis(spec: AnalysisSpec) -> AnalysisSpec:
    existing = _ANALYSES.get(spec.name)
    if existing is not None and existing.run is not spec.run:
        raise RegistryError(f"analysis {spec.name!r} is already registered by {existing.module}")
    _ANALYSES[spec.name] = spec
    return spec


def _import_builtins() -> None:
    for pkg_name in BUILTIN_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                module = f"{pkg_name}.{info.name}"
                try:
                    importlib.import_module(module)
                except Exception as e:  # reported by `admbench list` and by get(); a test asserts none
                    IMPORT_ERRORS[module] = f"{type(e).__name__}: {e}"


def _import_plugins() -> None:
    for ep in importlib.metadata.entry_points(group="admbench.algorithms"):
        obj = ep.load()
        if isinstance(obj, AlgorithmSpec):
            register(obj)
        elif callable(obj):
            obj()
    plugins = [m.strip() for m in os.environ.get("ADMBENCH_PLUGINS", "").split(",") if m.strip()]
    if plugins and os.getcwd() not in sys.path:
        # like `python -m`, a plugin module in the current folder imports; appended, so it never
        # shadows an installed package (the `admbench` script's sys.path[0] is its bin folder)
        sys.path.append(os.getcwd())
    for mod in plugins:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise RegistryError(f"ADMBENCH_PLUGINS: cannot import {mod!r}: {e}") from e


def load_all(force: bool = False) -> None:
    global _LOADED
    if _LOADED and not force:
        return
    _LOADED = True
    _import_builtins()
    _import_plugins()


def algorithms() -> dict[str, AlgorithmSpec]:
    load_all()
    return dict(sorted(_REGISTRY.items()))


def _lookup(kind: str, known: dict, name: str):
    if name not in known:
        broken = "".join(f"; {m} failed to import ({err})" for m, err in IMPORT_ERRORS.items())
        raise RegistryError(f"unknown {kind} {name!r}; available: {', '.join(known)}{broken}")
    return known[name]


def get(name: str) -> AlgorithmSpec:
    return _lookup("algorithm", algorithms(), name)


def analyses() -> dict[str, AnalysisSpec]:
    load_all()
    return dict(sorted(_ANALYSES.items()))


def get_analysis(name: str) -> AnalysisSpec:
    return _lookup("analysis", analyses(), name)
