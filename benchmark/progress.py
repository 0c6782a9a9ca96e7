"""Progress for long work (model training, rollouts, dataset builds, behaviour-policy selection, runs).

One switch for the whole process: :func:`set_enabled` (``--quiet`` turns it off; ``reproduce`` worker
processes have it off and report through the parent's ``runs`` line). On a terminal a phase is a tqdm bar
(what, how far, ETA). When stderr is not a terminal (a piped or redirected log) there is no bar: a phase
that has run for :data:`LINE_AFTER_S` seconds prints one plain line, then at most one every
:data:`LINE_EVERY_S` seconds, and a closing line, so logs stay readable and short phases print nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

LINE_AFTER_S = 10.0
LINE_EVERY_S = 30.0
_ENABLED = os.environ.get("ADMBENCH_QUIET", "") in ("", "0")


def set_enabled(enabled: bool) -> None:
    global _ENABLED
    _ENABLED = bool(enabled)


def enabled() -> bool:
    return _ENABLED


def is_tty(stream=None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """``with Progress("ADM model training", total=50, unit="epoch") as p: p.update(1, loss=0.3)``.

    ``total`` may be None (unknown length, e.g. early stopping): then the line shows the count and the
    elapsed time without an ETA. Disabled (``--quiet``), every method is a no-op."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", *, show: bool | None = None,
                 leave: bool = False, stream=None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream or sys.stderr
        self.show = _ENABLED if show is None else (show and _ENABLED)
        self.n, self.postfix = 0, ""
        self.t0 = self.last_line = time.monotonic()
        self.printed = False
        self.bar = None
        if self.show and is_tty(self.stream):
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=self.stream,
                            dynamic_ncols=True, mininterval=0.5)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc, refresh=False)

    def update(self, n: int = 1, **postfix) -> None:
        if not self.show:
            return
        self.n += n
        if postfix:
            self.postfix = ", ".join(f"{k}={_short(v)}" for k, v in postfix.items())
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix_str(self.postfix, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.t0 >= LINE_AFTER_S and (not self.printed or now - self.last_line >= LINE_EVERY_S):
            self._line(now)

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        if self.total:
            frac = min(1.0, self.n / self.total)
            eta = elapsed / self.n * (self.total - self.n) if self.n else None
            where = f"{self.n}/{self.total} {self.unit} ({frac:.0%})"
            timing = f"elapsed {_clock(elapsed)}" + (f", ETA {_clock(eta)}" if eta is not None else "")
        else:
            where, timing = f"{self.n} {self.unit}", f"elapsed {_clock(elapsed)}"
        return f"{self.desc}: {where}, {timing}" + (f" [{self.postfix}]" if self.postfix else "")

    def _line(self, now: float) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.printed, self.last_line = True, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.show and self.printed:  # a phase that announced itself also says it finished
            self._line(time.monotonic())
            self.printed = False


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def track(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it",
          show: bool | None = None) -> Iterator:
    """Iterate with progress (``for ep in track(range(n), "evaluation", unit="episode")``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(desc, total, unit, show=show) as p:
        for item in iterable:
            yield item
            p.update()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Silence progress inside the block (tests, nested phases that would print twice)."""
    before = _ENABLED
    set_enabled(False)
    try:
        yield
    finally:
        set_enabled(before)


