"""Network building blocks shared by ``adm`` and ``baselines``.

Ensembles are stored as stacked weights ``[members, in, out]`` and evaluated with one batched
matmul (``torch.baddbmm``), never a Python loop over members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Swish(nn.Module):
    """x * sigmoid(x), the activation used by MBPO-style dynamics models and the ADM head (one fused
    kernel, ``F.silu``, instead of a sigmoid and a product)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256),
    activation: type[nn.Module] = nn.ReLU,
    output_activation: type[nn.Module] | None = None,
) -> nn.Sequential:
    """A plain fully connected network ``in -> hidden... -> out``."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(dims[-1], out_dim))
    if output_activation is not None:
        layers.append(output_activation())
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers evaluated as one batched matmul.

    Input ``[members, batch, in]`` (or ``[batch, in]``, broadcast to every member); output
    ``[members, batch, out]``. Initialised like ``nn.Linear`` member by member.
    """

    def __init__(self, members: int, in_dim: int, out_dim: int, weight_decay: float = 0.0):
        super().__init__()
        self.members, self.in_dim, self.out_dim = members, in_dim, out_dim
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        self.weight_decay = weight_decay
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """``members``: evaluate only these members (a slice of the stacked weights, no copy)."""
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        return torch.baddbmm(bias, x, weight)

    def decay_loss(self) -> torch.Tensor:
        return self.weight_decay * 0.5 * (self.weight**2).sum()

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_dim}, out={self.out_dim}"


class EnsembleMLP(nn.Module):
    """An ensemble of MLPs built from :class:`EnsembleLinear` layers (one batched op per layer)."""

    def __init__(
        self,
        members: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: type[nn.Module] = nn.ReLU,
        weight_decays: Sequence[float] | None = None,
    ):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        decays = list(weight_decays) if weight_decays is not None else [0.0] * (len(dims) - 1)
        if len(decays) != len(dims) - 1:
            raise ValueError(f"weight_decays needs {len(dims) - 1} entries, got {len(decays)}")
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b, wd) for a, b, wd in zip(dims[:-1], dims[1:], decays)
        )
        self.activation = activation()
        self.members = members

    def forward(self, x: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, members)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x

    def decay_loss(self) -> torch.Tensor:
        return sum(layer.decay_loss() for layer in self.layers)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` in place."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)
