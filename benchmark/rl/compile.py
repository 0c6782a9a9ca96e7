"""``torch.compile`` of an algorithm's fixed-shape update steps (the config field ``compile``).

An algorithm that compiles its updates keeps a :class:`CompiledSteps` and calls its step methods through
:func:`step`: with ``compile = "off"`` that is the method itself (eager, bit-exact as before); otherwise the
method compiled with ``torch.compile(mode=...)`` on first use ("reduce-overhead" is inductor with CUDA
graphs for the fixed-shape updates). A step method holds one whole update: loss, ``backward``,
``optimizer.step`` and target updates; dynamo splits it at ``backward`` into a compiled forward (with its
AOT backward) and a compiled optimizer step. Its diagnostics must stay tensors (``.detach()``, not
``.item()``): a host read inside the region breaks the graph and, for a value that changes every step
(the temperature), recompiles it every step.

Compiled callables do not pickle: a checkpoint keeps only the mode, and the compiled steps are built
again on first use after loading. Random numbers inside a compiled step come from torch's generators as in
eager mode (inductor's ``fallback_random``), so a compiled run draws the same noise as an eager one and
differs from it only by floating-point rounding (tests/test_compile.py states the tolerance). Not
bit-exact, so a run with ``compile`` set has its own config hash (``HASHED_WHEN_SET`` in
benchmark/runner.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmark.rl.configs import COMPILE_MODES

# inductor generates the kernels; tests check the plumbing (graph breaks, recompiles, pickling) with
# "aot_eager", dynamo and AOT autograd without code generation, which takes seconds instead of minutes
BACKEND = "inductor"


class CompiledSteps:
    """The compiled versions of one object's step methods, built on first use; pickles as its mode."""

    def __init__(self, mode: str = "off"):
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
        self.mode = mode
        self.built: dict[str, Callable] = {}

    def __getstate__(self) -> dict:
        return {"mode": self.mode}  # the compiled callables are rebuilt after loading

    def __setstate__(self, state: dict) -> None:
        self.mode, self.built = state["mode"], {}

    def __call__(self, method: Callable) -> Callable:
        """``method`` (bound), compiled unless the mode is off."""
        if self.mode == "off":
            return method
        name = method.__name__
        if name not in self.built:
            # the compiled step draws its noise from torch's generators, like eager mode (see module doc)
            import torch._inductor.config as inductor_config

            inductor_config.fallback_random = True
            if BACKEND == "inductor":
                compiled = torch.compile(method, mode=None if self.mode == "default" else self.mode)
            else:
                compiled = torch.compile(method, backend=BACKEND)
            self.built[name] = _cuda_graph_step(compiled) if self.mode == "reduce-overhead" else compiled
        return self.built[name]


def _cuda_graph_step(compiled: Callable) -> Callable:
    """A CUDA-graph step as a caller may use it: each call starts a new graph iteration, and its tensor
    outputs are copied out, because the next replay overwrites the graph's output memory (diagnostics kept
    past the next step, e.g. logged once per epoch, would otherwise change under the caller)."""

    def run(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(*args, **kwargs)
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in out.items()}

    return run


def step(owner, method: Callable) -> Callable:
    """``method`` of ``owner`` as ``owner.compiled_steps`` runs it (eager when the owner has none, e.g. an
    object pickled before compiled steps existed)."""
    steps = owner.__dict__.get("compiled_steps")
    return method if steps is None else steps(method)

