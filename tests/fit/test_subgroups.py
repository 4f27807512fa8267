"""Subgroup incidences in the likelihood (pdmodel/fit/_subgroups.py): the curated rows of the
management table, the subgroup solve against the daily solver with the subgroup's covariates,
the direction of each subgroup's effect, and the gradient against finite differences."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from pdmodel.data import load_incidence, load_management
from pdmodel.fit import (
    FitSpec,
    Params,
    build_design,
    log_density,
    log_max_injury,
    subgroup_log_likelihood,
    subgroup_targets,
    total_loglik,
    trial_loglik,
)
from pdmodel.fit._likelihood import reported_incidence, subgroup_incidence
from pdmodel.fit._subgroups import SUBGROUP_COVARIATES, SUBGROUP_ENDPOINT
from pdmodel.irae import THYROID_ANTIBODY_PREVALENCE, IraeProblem, Population
from pdmodel.vocab import GRADES, ORGAN_CHOICES


@functools.cache
def subgroup_design(days=60):
    df = load_incidence()
    keep = df["agents_model"].isin(["ipilimumab", "nivolumab"])
    return build_design(df[keep], patients=6, days=days, subgroups=subgroup_targets())


def test_subgroup_rows_are_the_published_counts():
    t = subgroup_targets()
    m = load_management().set_index("row_id")
    assert list(t.row_id) == ["man-0132", "man-0133", "man-0059", "man-0069"]
    for _, r in t.iterrows():
        assert (r.y, r.n) == (m.loc[r.row_id, "numerator"], m.loc[r.row_id, "denominator"])
    okada = t.set_index("subgroup")
    assert okada.loc["antibody_positive", "y"] == 15 and okada.loc["antibody_negative", "n"] == 165


def test_a_missing_or_uncounted_row_is_named():
    m = load_management()
    with pytest.raises(ValueError, match="man-0133"):
        subgroup_targets(m[m.row_id != "man-0133"])
    m2 = m.copy()
    m2.loc[m2.row_id == "man-0059", "denominator"] = np.nan
    with pytest.raises(ValueError, match="man-0059"):
        subgroup_targets(m2)


def test_default_population_has_the_published_antibody_prevalence():
    pop = Population.sample(jax.random.key(0), 4000, max_agents=1)
    positive = np.asarray(pop.a0) > 1.0
    assert positive.mean() == pytest.approx(THYROID_ANTIBODY_PREVALENCE, abs=0.02)
    assert not (np.asarray(Population.sample(jax.random.key(0), 50, max_agents=1,
                                             a0_positive_fraction=0.0).a0) > 1).any()


def test_subgroup_solve_matches_the_daily_solver_with_the_subgroups_covariates():
    d = subgroup_design()
    sg = d.subgroups
    assert sg is not None and len(sg.rows.row_id) == 4
    spec = FitSpec.default()
    params = spec.to_params(spec.prior_location() + 0.1)
    ours = np.asarray(subgroup_incidence(params, d, log_max_injury(params, d)))
    for k, row in enumerate(sg.rows.row_id):
        unit = sg.units[sg.rows.unit[k]]
        pop = d.population.replace(**SUBGROUP_COVARIATES[sg.subgroups[sg.rows.unit[k]]])
        problem = IraeProblem.build(unit.regimen, days=unit.days, steps_per_day=1, refine=1)
        inc = np.asarray(reported_incidence(params, problem, pop, SUBGROUP_ENDPOINT))
        ref = inc[-1, sg.rows.organ[k], sg.rows.grade[k]]
        assert ours[k] == pytest.approx(ref, rel=1e-9), row


def test_antibodies_raise_thyroid_risk_and_autoimmune_disease_raises_every_risk():
    d = subgroup_design()
    p = Params()
    inc = dict(zip(d.subgroups.rows.row_id,
                   np.asarray(subgroup_incidence(p, d, log_max_injury(p, d))), strict=True))
    assert inc["man-0132"] > 2 * inc["man-0133"]  # antibody positive vs negative, thyroid
    # more pre-existing autoimmunity, more new irAEs (ad_excess > 0 by its prior's support)
    more = eqx.tree_at(lambda q: q.model.ad_excess, p, 2.0)
    inc2 = np.asarray(subgroup_incidence(more, d, log_max_injury(more, d)))
    rows = list(d.subgroups.rows.row_id)
    for r in ("man-0059", "man-0069"):
        assert inc2[rows.index(r)] > inc[r] + 1e-3
    assert ORGAN_CHOICES[d.subgroups.rows.organ[rows.index("man-0059")]] == "any"
    assert GRADES[d.subgroups.rows.grade[0]] == "any"


def test_total_loglik_adds_the_subgroup_rows_and_its_gradient_is_exact():
    d = subgroup_design()
    spec = FitSpec.default()
    u0 = spec.prior_location()
    # one compiled program each (compiling is most of this test's cost); the forward one is
    # called again below at the same kind of argument (FitSpec.to_params), so not compiled again
    forward = eqx.filter_jit(lambda p, d: (
        total_loglik(p, d), jnp.sum(trial_loglik(p, d)),
        jnp.sum(subgroup_log_likelihood(p, d))))
    total, trial, sub = forward(spec.to_params(u0), d)
    assert float(total) == pytest.approx(float(trial) + float(sub), rel=1e-10)
    k = spec.names.index("ad_excess")
    value_and_grad = eqx.filter_jit(jax.value_and_grad(log_density))
    g = value_and_grad(u0, spec, d)[1]
    w = spec.names.index("w_ab[4]")
    h = 1e-5
    for j in (k, w, 0):
        e = jnp.zeros_like(u0).at[j].set(h)
        fd = (value_and_grad(u0 + e, spec, d)[0] - value_and_grad(u0 - e, spec, d)[0]) / (2 * h)
        assert float(g[j]) == pytest.approx(float(fd), rel=1e-5, abs=1e-6), spec.names[j]
    # at its prior's centre ad_excess has no prior gradient: all of it is the subgroup rows'
    # (their central difference, from the forward program at the two shifted points), and
    # the incidence rows do not depend on it
    e = jnp.zeros_like(u0).at[k].set(h)
    plus, minus = forward(spec.to_params(u0 + e), d), forward(spec.to_params(u0 - e), d)
    assert float(plus[1]) == float(minus[1])
    sub_grad = (float(plus[2]) - float(minus[2])) / (2 * h)
    assert float(g[k]) == pytest.approx(sub_grad, rel=1e-5, abs=1e-6) and abs(sub_grad) > 1e-2


def test_design_without_subgroups():
    df = load_incidence()
    d = build_design(df[df["agents_model"] == "nivolumab"], patients=2, days=60,
                     subgroups=pd.DataFrame())
    assert d.subgroups is None and float(jnp.sum(subgroup_log_likelihood(Params(), d))) == 0.0


def test_subgroup_check_reports_each_row_against_its_predictive_interval():
    from pdmodel.fit._checks import subgroup_check, subgroup_summary

    d = subgroup_design()
    spec = FitSpec.default()
    draws = np.stack([np.asarray(spec.prior_location()) + s for s in (0.0, 0.05, -0.05)])
    table = subgroup_check(spec, d, draws, replicates=50)
    assert list(table.row_id) == list(d.subgroups.rows.row_id)
    assert (table.predictive_q05 <= table.model_mean).all()
    assert (table.model_mean <= table.predictive_q95).all()
    assert (table.model_q05 <= table.model_q95).all()
    expect = (table.observed >= table.predictive_q05) & (table.observed <= table.predictive_q95)
    assert (table.in_predictive == expect).all()
    summary = subgroup_summary(table)
    assert summary["subgroup_rows_fitted"] == 4
    assert summary["subgroups_in_predictive"] == f"{int(expect.sum())}/4"
    assert subgroup_summary(pd.DataFrame())["subgroup_rows_fitted"] == 0
