"""Our code against fixtures written by the reference implementations (``scripts/parity/*.py``): the
same weights, inputs and noise must give the reference's outputs within float tolerance."""

import numpy as np
import pytest
from parity_cases import (
    CASES,
    FIXTURES,
    Fixture,
    cbop_target,
    float32_ulps,
    max_deviation,
    okit_cql,
    okit_sac,
    okit_termination,
)

FIXTURE_OF = {"admpo_rollout_carry": "admpo_model"}  # cases that reuse another case's fixture
REFERENCE_REPOS = {
    "okit": "yihaosun1124/OfflineRL-Kit",
    "admpo": "HxLyn3/ADMPO",
    "td3bc": "sfujim/TD3_BC",
    "cbop": "jihwan-jeong/CBOP",
    "mobile": "yihaosun1124/mobile",
    "corl": "corl-team/CORL",
}


def test_every_case_has_a_committed_fixture_with_its_reference_inside():
    for name in CASES:
        name = FIXTURE_OF.get(name, name)
        assert (FIXTURES / f"{name}.npz").exists(), name
        fx = Fixture(name)
        assert fx.repo == REFERENCE_REPOS[name.split("_")[0]]
        assert len(fx.commit) == 40 and all(c in "0123456789abcdef" for c in fx.commit)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference(name):
    checks = CASES[name]()
    assert checks
    for label, ours, ref, atol in checks:
        ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
        assert ours.shape == ref.shape, (label, ours.shape, ref.shape)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=atol, err_msg=f"{name}: {label}")


def test_the_fixtures_tell_the_audited_differences_apart():
    """Negative controls: each closed difference, reopened, fails its fixture by far more than tolerance."""
    assert max_deviation(okit_sac(alpha_max=None)) > 1.0  # MOPO/RAMBO before the alpha clamp
    assert max_deviation(okit_cql(lse_grouping="state")) > 1.0  # the CQL paper's grouping
    assert max_deviation(okit_cql(lse_grouping="state_sample", fixture="corl_cql")) > 1.0  # and the other way
    assert max_deviation(okit_termination(source="admpo")) == 1.0  # walker2d without |s| < 100
    assert max_deviation(cbop_target(mask_terminated_horizons=False)) > 10.0  # CBOP before the mask


def test_float32_ulp_tolerance_is_a_few_rounding_steps_and_still_catches_a_real_difference():
    assert float32_ulps(277.97226, 8) == 8 * 2.0**-15  # float32 spacing in [256, 512) is 2^-15
    assert float32_ulps(0.25, 8) == 1e-5  # never below the absolute floor the other checks use
    tol = float32_ulps(277.97226, 8)
    assert abs(277.97229 - 277.97226) < tol < 1e-3  # the one-ulp host difference passes; a 1e-3 change fails
