"""Reliability of the Python API's model inputs: parameters, populations, horizons, covariates.

Table-driven: each case is a bad input and the error it must raise, whose message must name the
field. None of them simulates: the checks run before anything is compiled.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdmodel as pdm
from pdmodel.errors import EXIT_USAGE, SimulationError, exit_code
from pdmodel.irae._api import check_finite_incidence

NAN, INF = float("nan"), float("inf")


def _model(**kw):
    return pdm.IraeModel(**kw)


MODEL_CASES = [
    pytest.param({"g_pd1": -1.0}, "g_pd1", "positive", id="g_pd1-negative"),
    pytest.param({"k_e": -5.0}, "k_e", "positive", id="k_e-negative"),
    pytest.param({"k_e": 0.0}, "k_e", "positive", id="k_e-zero"),
    pytest.param({"k_e": NAN}, "k_e", "finite", id="k_e-nan"),
    pytest.param({"e_max": INF}, "e_max", "finite", id="e_max-inf"),
    pytest.param({"steroid_imax": 1.5}, "steroid_imax", "[0, 1]", id="steroid_imax-above-1"),
    pytest.param({"ifx_imax": -0.1}, "ifx_imax", "[0, 1]", id="ifx_imax-negative"),
    pytest.param({"omega_g": -0.2}, "omega_g", "non-negative", id="omega-negative"),
    pytest.param({"sigma": (0.7, 0.7, -1.0, 0.7, 0.7, 0.7)}, "organ liver", "positive",
                 id="sigma-organ-negative"),
    pytest.param({"susceptibility": (0.04, NAN, 0.007, 0.001, 0.001, 0.0004)}, "organ gi",
                 "finite", id="susceptibility-organ-nan"),
    pytest.param({"background": [[1e-4] * 3] * 5 + [[1e-4, -1e-5, 1e-6]]},
                 "organ pituitary, grade 2+", "non-negative", id="background-element"),
    pytest.param({"agent_effect": (0.0,) * 7 + (INF,)}, "agent_effect", "finite",
                 id="agent_effect-inf"),
    pytest.param({"tumour_effect": np.full((4, 6), 0.0)}, "tumour_effect", "positive",
                 id="tumour_effect-zero"),
    pytest.param({"sigma": (0.7,) * 5}, "sigma", "shape", id="sigma-wrong-shape"),
]


@pytest.mark.parametrize(("kwargs", "names", "says"), MODEL_CASES)
def test_model_parameter_is_checked(kwargs, names, says):
    with pytest.raises(ValueError) as err:
        _model(**kwargs)
    field = next(iter(kwargs))
    assert field in str(err.value) and names in str(err.value) and says in str(err.value)


def test_parameter_error_is_a_pdmodel_error_with_its_field():
    with pytest.raises(pdm.ParameterError) as err:
        pdm.IraeModel(g_pd1=-1.0)
    assert err.value.field == "IraeModel.g_pd1" and exit_code(err.value) == EXIT_USAGE


@pytest.fixture(scope="module")
def pop():
    return pdm.Population.sample(jax.random.key(0), 4, max_agents=2)


def _with(pop, name, index, value):
    """``pop`` rebuilt through its constructor with one element changed."""
    fields = {k: getattr(pop, k) for k in pop.__dataclass_fields__}
    fields[name] = jnp.asarray(fields[name]).at[index].set(value)
    return fields


POPULATION_CASES = [
    pytest.param("weight_kg", 1, NAN, "patient 1", id="weight-nan"),
    pytest.param("weight_kg", 0, -70.0, "patient 0", id="weight-negative"),
    pytest.param("weight_kg", 2, INF, "patient 2", id="weight-inf"),
    pytest.param("preexisting_ad", 3, 2.0, "patient 3", id="ad-above-1"),
    pytest.param("a0", 0, 0.0, "patient 0", id="a0-zero"),
    pytest.param("stop_day", 1, NAN, "patient 1", id="stop-day-nan"),
    pytest.param("z_pd", (2, 1), NAN, "patient 2", id="z-nan"),
    pytest.param("tumour", 0, 9, "patient 0", id="tumour-index"),
]


@pytest.mark.parametrize(("name", "index", "value", "where"), POPULATION_CASES)
def test_population_values_are_checked(pop, name, index, value, where):
    with pytest.raises(pdm.ParameterError) as err:
        pdm.Population(**_with(pop, name, index, value))
    assert f"Population.{name}" in str(err.value) and where in str(err.value)


SAMPLE_CASES = [
    pytest.param({"weight_kg": NAN}, "weight_kg", id="sample-weight-nan"),
    pytest.param({"weight_kg": INF}, "weight_kg", id="sample-weight-inf"),
    pytest.param({"weight_cv": -0.1}, "weight_cv", id="sample-cv-negative"),
    pytest.param({"preexisting_ad": 1.2}, "preexisting_ad", id="sample-ad"),
    pytest.param({"a0_positive_fraction": -0.5}, "a0_positive_fraction", id="sample-a0-fraction"),
    pytest.param({"tumour": "lung"}, "tumour", id="sample-tumour"),
    pytest.param({"setting": "adjuvant"}, "setting", id="sample-setting-not-a-level"),
    pytest.param({"median_duration_days": NAN}, "median_duration_days", id="sample-duration-nan"),
]


@pytest.mark.parametrize(("kwargs", "field"), SAMPLE_CASES)
def test_population_sample_arguments_are_checked(kwargs, field):
    with pytest.raises(pdm.ParameterError) as err:
        pdm.Population.sample(jax.random.key(0), 3, **kwargs)
    assert field in str(err.value)


def test_population_sample_rejects_zero_patients():
    with pytest.raises(ValueError, match="n"):
        pdm.Population.sample(jax.random.key(0), 0)


CALL_CASES = [
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w", p.take(slice(0, 0)),
                                            days=28), "population", "empty", id="empty-population"),
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w",
                                            p.replace(weight_kg=jnp.full(4, NAN)), days=28),
                 "Population.weight_kg", "patient 0", id="nan-weight-after-replace"),
    pytest.param(lambda m, p: pdm.incidence(eqx.tree_at(lambda t: t.k_e, m, jnp.asarray(-5.0)),
                                            "nivolumab 240 mg q2w", p, days=28),
                 "IraeModel.k_e", "positive", id="negative-rate-after-tree-at"),
    pytest.param(lambda m, p: pdm.simulate(eqx.tree_at(lambda t: t.g_pd1, m,
                                                       jnp.asarray(NAN)),
                                           "nivolumab 240 mg q2w", p, days=28),
                 "IraeModel.g_pd1", "finite", id="simulate-nan-parameter"),
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w", p, days=0), "days",
                 "1-3653", id="days-zero"),
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w", p, days=10**6), "days",
                 "1-3653", id="days-huge"),
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w", p, days=28.5), "days",
                 "whole number", id="days-fraction"),
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w", p, days=28,
                                            organ="kidney"), "kidney", "organ", id="organ-unknown"),
    pytest.param(lambda m, p: pdm.incidence(m, "nivolumab 240 mg q2w", p, days=28,
                                            grade="4+"), "4+", "grade", id="grade-unknown"),
]


@pytest.mark.parametrize(("call", "names", "says"), CALL_CASES)
def test_simulation_inputs_are_checked(pop, call, names, says):
    with pytest.raises(ValueError) as err:
        call(pdm.IraeModel(), pop)
    assert names in str(err.value) and says in str(err.value)


def test_model_must_be_a_model(pop):
    with pytest.raises(TypeError, match="IraeModel"):
        pdm.incidence({"g_pd1": 0.04}, "nivolumab 240 mg q2w", pop, days=28)


def test_non_finite_incidence_names_regimen_day_organ_and_grade():
    arr = np.zeros((30, 7, 3))
    arr[11:, 2, 1] = np.nan
    with pytest.raises(SimulationError) as err:
        check_finite_incidence(arr, "nivolumab 240 mg q2w")
    text = str(err.value)
    assert "nivolumab 240 mg q2w" in text and "day 12" in text and "organ gi" in text \
        and "grade 2+" in text
    assert isinstance(err.value, RuntimeError)


def test_unknown_covariate_gets_did_you_mean():
    from pdmodel.fit._predict import population

    with pytest.raises(pdm.ParameterError) as err:
        population(jax.random.key(0), 2, max_agents=1, wieght_kg=70.0)
    assert "wieght_kg" in str(err.value) and "did you mean 'weight_kg'" in str(err.value)
