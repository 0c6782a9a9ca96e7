"""A recorder of host-device traffic for CPU test runs (no CUDA needed): under :class:`HostTraffic` every
torch call that on a GPU would create a tensor on the host, copy host data to the device or bring a device
tensor back to the host is recorded with the line of our code that made it.

On a CPU all tensors live on one device, so the recorder judges the calls, not where their results land:

* a factory or random call (``randint``, ``zeros``, ``arange``, ...) without ``device=`` makes a host tensor
  whatever the algorithm's device (``*_like`` calls and ``as_tensor`` of a tensor inherit theirs);
* ``as_tensor``/``tensor``/``from_numpy`` of host data (numpy, lists, Python numbers) is a host-to-device
  copy;
* ``Tensor.to(<device>)``/``.cuda()`` moves data between devices (the hot loops keep data where it is);
* ``.cpu()``, ``.numpy()``, ``.tolist()`` bring device data to the host;
* a random call whose ``generator`` lives on another device than its ``device=`` fails on a GPU.

``.item()``/``float()`` reads of metrics are not recorded here (they are flushed per epoch elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parent.parent
OUR_CODE = tuple(str(ROOT / d) for d in ("adm", "baselines", "benchmark", "tests"))

FACTORIES = {torch.randint, torch.randperm, torch.rand, torch.randn, torch.arange, torch.zeros, torch.ones,
             torch.empty, torch.full, torch.linspace, torch.eye, torch.normal}
HOST_DATA = {torch.as_tensor, torch.tensor, torch.from_numpy}
MOVES = {torch.Tensor.to, torch.Tensor.cuda}
TO_HOST = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist}


def _caller() -> str | None:
    """``file:line function`` of the code that made the call, when it is ours; None when torch itself made
    it (an optimizer's CPU step counters, a module's ``to``): those are torch's own placement choices."""
    frame = sys._getframe(3)
    path = frame.f_code.co_filename
    if not path.startswith(OUR_CODE):
        return None
    return f"{Path(path).relative_to(ROOT)}:{frame.f_lineno} {frame.f_code.co_name}"


def _moves_device(args, kwargs) -> bool:
    """``Tensor.to(...)`` names a device (a dtype-only ``to`` stays where it is)."""
    for a in (*args[1:], kwargs.get("device")):
        if isinstance(a, str | torch.device) or (isinstance(a, torch.Tensor) and a is not args[0]):
            return True
    return False


class HostTraffic(TorchFunctionMode):
    """Records ``(kind, where, function)`` for every call that means host-device traffic on a GPU."""

    def __init__(self, allowed: tuple[str, ...] = ()):
        super().__init__()
        self.allowed = allowed  # function names (``where`` suffixes) whose traffic is on a CPU-only path
        self.events: list[tuple[str, str, str]] = []

    def _note(self, kind: str, func) -> None:
        where = _caller()
        if where is not None and not (self.allowed and where.endswith(self.allowed)):
            self.events.append((kind, where, getattr(func, "__name__", str(func))))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES:
            if kwargs.get("device") is None:
                self._note("host tensor (no device=)", func)
            gen = kwargs.get("generator")
            if gen is not None and kwargs.get("device") is not None and \
                    torch.device(kwargs["device"]).type != gen.device.type:
                self._note("generator on another device", func)
        elif func in HOST_DATA:
            if not (args and isinstance(args[0], torch.Tensor)):
                self._note("host data copied in", func)
        elif func in MOVES and _moves_device(args, kwargs):
            self._note("device move", func)
        elif func in TO_HOST:
            self._note("device data to the host", func)
        return func(*args, **kwargs)
