"""Each uncertainty quantifier against a hand-computed case (m=2 predictions of a 2-dim state)."""

import math

import pytest
import torch

from adm.uncertainty import get_quantifier, max_aleatoric, max_pairwise, mean_std, mixture_l1

# mu_1 = (0, 0), mu_2 = (2, 4); sigma_1^2 = (1, 1), sigma_2^2 = (4, 0.25)
MEANS = torch.tensor([[[0.0, 0.0]], [[2.0, 4.0]]])
LOGVARS = torch.log(torch.tensor([[[1.0, 1.0]], [[4.0, 0.25]]]))


def test_mean_std_code_default():
    # population variances per dim: 1 and 4; mean 2.5; sqrt
    assert mean_std(MEANS).item() == pytest.approx(math.sqrt(2.5), rel=1e-6)


def test_mixture_l1_paper_eq4():
    # dim 0: (1 + 0 + 4 + 4)/2 - 1^2 = 3.5; dim 1: (1 + 0 + 0.25 + 16)/2 - 2^2 = 4.625
    assert mixture_l1(MEANS, LOGVARS).item() == pytest.approx(8.125, rel=1e-6)


def test_max_aleatoric():
    # ||(1, 1)|| = sqrt 2, ||(2, 0.5)|| = sqrt 4.25
    assert max_aleatoric(MEANS, LOGVARS).item() == pytest.approx(math.sqrt(4.25), rel=1e-6)


def test_max_pairwise_difference():
    assert max_pairwise(MEANS).item() == pytest.approx(math.sqrt(20.0), rel=1e-6)


def test_shapes_and_unknown_name():
    means, logvars = torch.randn(5, 7, 3), torch.randn(5, 7, 3)
    for name in ("mean_std", "mixture_l1", "max_aleatoric", "max_pairwise"):
        assert get_quantifier(name)(means, logvars).shape == (7, 1)
    with pytest.raises(ValueError, match="unknown uncertainty quantifier"):
        get_quantifier("ensemble_std")
