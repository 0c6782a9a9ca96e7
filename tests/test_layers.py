"""Every import points down: the floors of the house, written once, checked against every import in the code.

The walk reads each module of ``benchmark``, ``adm`` and ``baselines`` with :mod:`ast` and takes every
``import``/``from ... import`` in it, module-level AND function-local (a lazy import is still an arrow). A
module may import its own group and any group on a lower floor; a group on the same floor is a neighbour,
not a foundation. The harness (``benchmark``) never imports the method or the baselines: it meets them only
through the registry (which imports their modules by name, at run time). And there is no cycle.

A new module needs a row here: that is the point (say where it stands before it is built on).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "adm", "baselines")

# Lowest first (README "Layout" numbers them from 1). A floor is a tuple of groups; a group is a tuple of
# modules, where "pkg.sub." means the package and everything under it. Nothing in benchmark/rl/ imports
# anything but itself and the tools.
FLOORS: tuple[tuple[tuple[str, ...], ...], ...] = (
    # tools: no notion of RL or of the harness
    (("benchmark",), ("benchmark.atomic",), ("benchmark.progress",), ("benchmark.seeding",)),
    # the shared RL blocks: dataset format, buffers, nets, SAC, dynamics, trainer configs and loops
    (("benchmark.rl.",),),
    # harness leaves
    (("benchmark.registry",), ("benchmark.envs.",), ("benchmark.scores",), ("benchmark.metrics",),
     ("benchmark.results",), ("benchmark.config",)),
    # data readers and builders; the baselines; the reporting rooms (records -> stats -> frames
    # -> tables -> paper -> sections; they import each other only downwards, see tests/test_report.py)
    (("benchmark.data.",), ("baselines.",), ("benchmark.reporting.",)),
    # the paper's method (beside the tasks, not between the runner and the tasks); the task layer
    (("adm.",), ("benchmark.tasks",)),
    # one run or one analysis job; the data commands
    (("benchmark.runner",), ("benchmark.data_cli",)),
    # many runs
    (("benchmark.suites",), ("benchmark.executor",), ("benchmark.ray_executor",), ("benchmark.plan",)),
    (("benchmark.reporting.readme",), ("benchmark.regress",)),
    (("benchmark.cli",),),
    (("benchmark.__main__",),),
)
METHOD = ("adm", "baselines")  # the harness never imports these


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports(path: Path, modules: dict[str, Path], name: str) -> set[str]:
    """The project modules that module ``name`` (at ``path``) imports anywhere in its body; ``from pkg
    import mod`` names ``pkg.mod``."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(filter(None, map(known, names)))
    out.discard(name)
    return out


def placement(module: str) -> tuple[int, int] | None:
    """(floor, group) of the longest matching entry, or None."""
    best, where = -1, None
    for f, groups in enumerate(FLOORS):
        for g, group in enumerate(groups):
            for entry in group:
                hit = (module == entry.rstrip(".") or module.startswith(entry)) if entry.endswith(".") \
                    else module == entry
                if hit and len(entry) > best:
                    best, where = len(entry), (f, g)
    return where


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imports(p, modules, m) for m, p in modules.items()}


def test_every_module_has_a_floor():
    assert [m for m in project_modules() if placement(m) is None] == []


def test_every_import_points_down_or_stays_in_its_group():
    bad = []
    for module, targets in graph().items():
        here = placement(module)
        for target in sorted(targets):
            there = placement(target)
            if there is not None and here is not None and not (there[0] < here[0] or there == here):
                bad.append(f"{module} (floor {here[0]}) -> {target} (floor {there[0]})")
    assert bad == []


def test_the_harness_never_imports_the_method():
    bad = [f"{m} -> {t}" for m, targets in graph().items() if m.split(".")[0] == "benchmark"
           for t in sorted(targets) if t.split(".")[0] in METHOD]
    assert bad == []


def test_the_shared_rl_blocks_stand_on_the_tools_only():
    tools = {entry for group in FLOORS[0] for entry in group}
    bad = [f"{m} -> {t}" for m, targets in graph().items() if m.startswith("benchmark.rl")
           for t in sorted(targets) if not t.startswith("benchmark.rl") and t not in tools]
    assert bad == []


def test_no_import_cycle():
    """Tarjan's strongly connected components: every one is a single module."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_walk_sees_function_local_imports(tmp_path):
    """The checker itself: a lazy import inside a function is an arrow too."""
    src = tmp_path / "m.py"
    src.write_text("import os\n\n\ndef f():\n    from benchmark.tasks import resolve_task\n\n"
                   "    return resolve_task\n")
    assert imports(src, {"benchmark.tasks": src, "benchmark": src}, "m") == {"benchmark.tasks"}
    assert placement("benchmark.rl.online.trainers") == (1, 0) and placement("benchmark.runner")[0] == 5
