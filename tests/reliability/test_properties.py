"""Property-based checks (hypothesis): incidence curves are fractions in [0, 1] that never fall,
for any parameter draw of the fit's priors (out to 3 prior SDs), on any of a few regimens, with
and without the default management policy. One compile per regimen and policy; each example then
re-runs the compiled program with new parameter values."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pdmodel as pdm
from pdmodel.vocab import GRADES, ORGAN_CHOICES

DAYS = 70
CASES = [  # (regimen, policy): a combination in its natural course, one agent managed
    pytest.param("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w",
                 None, id="nivo+ipi-natural"),
    pytest.param("atezolizumab 1200 mg q3w", "default", id="atezolizumab-managed"),
]


@pytest.fixture(scope="module")
def spec():
    return pdm.FitSpec.default()


@pytest.fixture(scope="module")
def population():
    return pdm.Population.sample(jax.random.key(1), 12, weight_kg=75.0,
                                 preexisting_ad=0.2, a0_positive_fraction=0.2, max_agents=2)


draws = st.tuples(st.integers(0, 2**31 - 1), st.floats(0.0, 3.0))
"""A seed and a spread (in prior SDs) of one parameter draw."""


def _model(spec, seed, spread):
    z = np.random.default_rng(seed).standard_normal(spec.size).clip(-1, 1) * spread
    u = spec.prior_location() + spec.prior_scale() * z
    return spec.to_params(u).model


@pytest.mark.parametrize(("regimen", "policy"), CASES)
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draw=draws)
def test_incidence_is_a_non_decreasing_fraction(spec, population, regimen, policy, draw):
    model = _model(spec, *draw)
    inc = pdm.incidence(model, regimen, population, days=DAYS, organ=list(ORGAN_CHOICES),
                        grade=list(GRADES),
                        policy=pdm.ManagementPolicy() if policy else None).values
    assert np.all(np.isfinite(inc))
    assert np.all((inc >= 0.0) & (inc <= 1.0))
    assert np.all(np.diff(inc, axis=0) >= -1e-6), "incidence fell over time"
    # grades are nested: any >= 2+ >= 3+, and any organ >= each organ
    assert np.all(inc[:, :, 0] + 1e-6 >= inc[:, :, 1])
    assert np.all(inc[:, :, 1] + 1e-6 >= inc[:, :, 2])
    assert np.all(inc[:, :1, :] + 1e-6 >= inc[:, 1:, :])
