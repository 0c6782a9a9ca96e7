"""Uncertainty quantifiers over the m any-step predictions of one next state (REFERENCE.md 1.7).

Every function takes the per-k absolute next-state means ``means [m, B, d]`` (k = 1..m; the predicted
deltas are taken from *different* start states, so they must be turned into next states first) and,
where needed, the per-k log-variances ``logvars [m, B, d]`` of the same dimensions, and returns ``[B, 1]``.
State dimensions only: the reward dimension is excluded, as in the code.

* ``mean_std`` (default, the official code): ``sqrt(mean_d Var_k(mu_k))``, population variance.
* ``mixture_l1`` (paper Eq. 4): ``|| (1/m) sum_k (sigma_k^2 + mu_k^2) - mu_bar^2 ||_1``, the L1 norm of
  the total variance of the uniform mixture over k, aleatoric part included.
* ``max_aleatoric`` (camera-ready E.5, MOPO-style): ``max_k ||sigma_k||_2``.
* ``max_pairwise`` (camera-ready E.5): ``max_{k,k'} ||mu_k - mu_k'||_2``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def mean_std(means: torch.Tensor, logvars: torch.Tensor | None = None) -> torch.Tensor:
    return means.var(dim=0, unbiased=False).mean(dim=-1, keepdim=True).sqrt()


def mixture_l1(means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    second_moment = (logvars.exp() + means.pow(2)).mean(dim=0)
    total_var = second_moment - means.mean(dim=0).pow(2)
    return total_var.abs().sum(dim=-1, keepdim=True)


def max_aleatoric(means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    return (0.5 * logvars).exp().norm(dim=-1).amax(dim=0).unsqueeze(-1)


def max_pairwise(means: torch.Tensor, logvars: torch.Tensor | None = None) -> torch.Tensor:
    diff = means.unsqueeze(0) - means.unsqueeze(1)  # [m, m, B, d]
    return diff.norm(dim=-1).amax(dim=(0, 1)).unsqueeze(-1)


QUANTIFIERS: dict[str, Callable[..., torch.Tensor]] = {
    "mean_std": mean_std,
    "mixture_l1": mixture_l1,
    "max_aleatoric": max_aleatoric,
    "max_pairwise": max_pairwise,
}
NEEDS_LOGVAR = {"mixture_l1", "max_aleatoric"}


def get_quantifier(name: str) -> Callable[..., torch.Tensor]:
    if name not in QUANTIFIERS:
        raise ValueError(f"unknown uncertainty quantifier {name!r}; expected one of {', '.join(QUANTIFIERS)}")
    return QUANTIFIERS[name]
