"""Management outcomes in the likelihood (pdmodel/fit/_management.py, the smooth managed
course of pdmodel/irae/solvers/_managed.py): the curated rows, the smooth course against the
natural-course solver and the full solver's hard policy, the direction of the steroid effect,
and the gradient against finite differences."""

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
    management_log_likelihood,
    management_targets,
    max_injuries,
    predicted_probability,
    total_loglik,
    trial_loglik,
)
from pdmodel.fit._likelihood import loglik_and_means, managed_arms, management_means
from pdmodel.fit._management import MANAGEMENT_POLICY, management_rows
from pdmodel.irae import IraeProblem, ManagementPolicy, drug_probability, incidence_from_max
from pdmodel.vocab import ORGANS

GI = ORGANS.index("gi")


@functools.cache
def management_design(days=120, patients=8):
    df = load_incidence()
    keep = df["agents_model"] == "nivolumab"
    return build_design(df[keep], patients=patients, days=days, max_days=days,
                        management=management_targets())


def gradient_against_central_differences(d, names, h=1e-5):
    """``jax.grad`` of the log density at 0.05 from the prior's centre against central
    differences for the parameters ``names``; returns ``(spec, u0, gradient)``."""
    spec = FitSpec.default()
    u0 = spec.prior_location() + 0.05
    # one compiled program for the gradient and the differences (compiling is most of the cost)
    value_and_grad = eqx.filter_jit(jax.value_and_grad(log_density))
    g = value_and_grad(u0, spec, d)[1]

    def f(u, spec, d):
        return value_and_grad(u, spec, d)[0]

    for name in names:
        e = jnp.zeros_like(u0).at[spec.names.index(name)].set(h)
        fd = (f(u0 + e, spec, d) - f(u0 - e, spec, d)) / (2 * h)
        assert float(g[spec.names.index(name)]) == pytest.approx(float(fd), rel=1e-5,
                                                                  abs=1e-6), name
    return spec, u0, g


def test_management_rows_are_the_published_counts():
    t = management_targets()
    m = load_management().set_index("row_id")
    assert len(t) == 9 and set(t.measure) == {"steroids", "resolved", "infliximab"}
    for _, r in t.iterrows():
        assert (r.y, r.n) == (m.loc[r.row_id, "numerator"], m.loc[r.row_id, "denominator"])
    by = t.set_index("row_id")
    assert (by.loc["man-0099", "y"], by.loc["man-0099", "n"]) == (21, 21)  # avelumab
    assert by.loc["man-0001", "grade"] == 0 and by.loc["man-0023", "grade"] == 2
    assert by.loc["man-0032", "regimen"].startswith("nivolumab 1 mg/kg")


def test_a_missing_uncounted_or_malformed_row_is_named():
    m = load_management()
    with pytest.raises(ValueError, match="man-0101"):
        management_targets(m[m.row_id != "man-0101"])
    m2 = m.copy()
    m2.loc[m2.row_id == "man-0023", "numerator"] = np.nan
    with pytest.raises(ValueError, match="man-0023"):
        management_targets(m2)
    t = management_targets()
    for field, value, message in (("measure", "dialysis", "unknown measure"),
                                  ("organ", "kidney", "unknown organ"),
                                  ("grade", 0, "grade of the denominator"),
                                  ("y", 99, "y <= n")):
        bad = t.copy()
        bad.loc[bad.row_id == "man-0101", field] = value
        with pytest.raises(ValueError, match=f"man-0101.*{message}"):
            management_rows(bad)
    bad = t.copy()
    bad.loc[bad.row_id == "man-0006", "measure"] = "infliximab"  # lung
    with pytest.raises(ValueError, match="man-0006: infliximab rows must be GI"):
        management_rows(bad)


def without_rescue_effect(p: Params) -> Params:
    """``p`` with neither a steroid nor an infliximab effect."""
    return eqx.tree_at(lambda q: (q.model.steroid_imax, q.model.ifx_imax), p, (0.0, 0.0))


def test_without_rescue_effect_both_courses_are_the_natural_course():
    d = management_design()
    p = without_rescue_effect(Params())
    arms = managed_arms(p, d)
    nat = np.asarray(arms.natural_max)
    # the natural course of the likelihood's solver, same regimens, population and steps
    ref = np.asarray(max_injuries(p, eqx.tree_at(lambda x: x.stacked, d, d.management.stacked)))
    # the managed course takes interior peaks through a parabola (smooth gradients), the
    # natural-course solver the largest step value: never below it, within 1e-3
    assert (nat >= ref * (1 - 1e-12)).all()
    np.testing.assert_allclose(nat, ref, rtol=1e-3, atol=1e-14)
    np.testing.assert_allclose(np.asarray(arms.treated_max), nat, rtol=1e-10, atol=1e-14)
    assert (np.asarray(arms.steroid) > 0).any() and (np.asarray(arms.steroid) <= 1).all()


def test_smooth_course_agrees_with_the_full_solvers_hard_policy():
    # the same policy without holds and stops (the smooth course has neither), one regimen
    regimen = "nivolumab 1 mg/kg q3w x4 + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"
    t = management_targets()
    t = t[t.regimen == regimen]
    df = load_incidence()
    d = build_design(df[df["agents_model"] == "nivolumab"], patients=192, days=180,
                     max_days=180, management=t)
    assert d.management.units[0].regimen == regimen
    p = Params()
    arms = jax.jit(managed_arms)(p, d)
    assert MANAGEMENT_POLICY == ManagementPolicy()
    policy = ManagementPolicy(hold_at_grade2=False, discontinue_grade=0)
    problem = IraeProblem.build(regimen, days=d.management.units[0].days, steps_per_day=1,
                                refine=1)
    daily, events = problem.run(p.model, d.population, policy)
    hard_steroid = np.isfinite(np.asarray(events.steroid_start)).mean()
    smooth_steroid = float(np.mean(arms.steroid[0]))
    assert smooth_steroid == pytest.approx(hard_steroid, abs=0.05)
    # grade >= 3 by organ under management: per-patient thresholds in both
    hard = np.asarray(incidence_from_max(p.model, daily.max_injury[:, -1:], d.population, policy,
                                         background=False))[0, 1:, 2]
    smooth = np.asarray(incidence_from_max(p.model, arms.treated_max[0][:, None],
                                           d.population, policy, background=False))[0, 1:, 2]
    natural = np.asarray(incidence_from_max(p.model, arms.natural_max[0][:, None], d.population,
                                            policy, background=False))[0, 1:, 2]
    np.testing.assert_allclose(smooth, hard, atol=0.025)
    assert smooth.sum() < 0.8 * natural.sum()  # steroids prevent a share of grade >= 3 events
    # infliximab, of the patients with colitis: the smooth check against the full solver's
    # patients (a steroid-refractory share in both; docs/model.md §5.9)
    colitis = np.isfinite(np.asarray(events.onset)[:, GI, 0])
    hard_ifx = float((np.asarray(events.infliximab_doses) > 0)[colitis].mean())
    smooth_ifx = float(jnp.sum(arms.infliximab[0])
                       / jnp.sum(drug_probability(p.model, arms.natural_max[0])[:, GI, 0]))
    # within two binomial SEs of the full solver's share of its colitis patients, + 0.02 (on
    # the prior model 0.20 against 0.26; before the steroid-refractory share the
    # smooth check gave 0.28 where the full solver gave 0.08 at the reference MAP)
    assert hard_ifx > 0.05
    se = np.sqrt(hard_ifx * (1 - hard_ifx) / colitis.sum())
    assert smooth_ifx == pytest.approx(hard_ifx, abs=0.02 + 2 * se)


def test_a_stronger_steroid_resolves_more_and_escalates_less():
    # resolution responds to the steroid's effect only for patients near the boundary (the
    # drug is held until it resolves either way): 32 Latin-hypercube patients have one, the
    # default 8 do not
    d = management_design(patients=32)
    rows = d.management.rows
    weak = eqx.tree_at(lambda q: q.model.steroid_imax, Params(), 0.3)
    strong = eqx.tree_at(lambda q: q.model.steroid_imax, Params(), 0.95)
    mw, ms = np.asarray(management_means(weak, d)), np.asarray(management_means(strong, d))
    measure = np.asarray(rows.measure)
    steroids, resolved, infliximab = (measure == k for k in range(3))
    assert (ms[resolved] >= mw[resolved] - 1e-9).all() and (ms[resolved] > mw[resolved]).any()
    assert (ms[infliximab] <= mw[infliximab] + 1e-9).all()
    # steroids are given before they act: their fractions do not depend on the effect
    np.testing.assert_allclose(ms[steroids], mw[steroids], rtol=1e-9)
    aw, as_ = managed_arms(weak, d), managed_arms(strong, d)
    assert float(jnp.sum(as_.treated_max)) < float(jnp.sum(aw.treated_max))


def test_total_loglik_adds_the_management_rows_and_its_gradient_is_exact():
    d = management_design(days=60, patients=6)
    spec = FitSpec.default()
    # one compiled forward program (compiling is most of this test's cost), called again
    # below at the same kind of argument (FitSpec.to_params), so not compiled again
    forward = eqx.filter_jit(lambda p, d: (
        total_loglik(p, d), jnp.sum(trial_loglik(p, d)),
        jnp.sum(management_log_likelihood(p, d)), loglik_and_means(p, d),
        predicted_probability(p, d)))
    total, trial, man, both, mu = forward(spec.to_params(spec.prior_location()), d)
    assert float(total) == pytest.approx(float(trial) + float(man), rel=1e-10)
    # the Laplace check's one solve gives the total and the rows' means the results reuse
    assert float(both[0]) == pytest.approx(float(total), rel=1e-10)
    np.testing.assert_allclose(np.asarray(both[1]), np.asarray(mu), rtol=1e-10)
    spec, u0, g = gradient_against_central_differences(
        d, ("steroid_imax", "steroid_ed50", "k_rep[1]", "log_gap2[3]"))
    # the incidence rows do not depend on the steroid effect: beyond its prior's gradient
    # (−0.05/sd² at 0.05 from the prior's centre) only the management rows move it
    # (their central difference, from the forward program at the two shifted points)
    k, h = spec.names.index("steroid_ed50"), 1e-5
    e = jnp.zeros_like(u0).at[k].set(h)
    lik = (float(forward(spec.to_params(u0 + e), d)[2])
           - float(forward(spec.to_params(u0 - e), d)[2])) / (2 * h)
    prior = -0.05 / spec.entries[k].prior.sd ** 2
    assert float(g[k]) == pytest.approx(prior + lik, rel=1e-5, abs=1e-6)
    assert abs(lik) > 1e-4


def test_design_without_management():
    df = load_incidence()
    d = build_design(df[df["agents_model"] == "nivolumab"], patients=2, days=60,
                     management=pd.DataFrame())
    assert d.management is None and float(jnp.sum(management_log_likelihood(Params(), d))) == 0.0


def test_management_check_reports_each_row_against_its_predictive_interval():
    from pdmodel.fit._checks import management_check, management_summary

    d = management_design(days=60, patients=6)
    spec = FitSpec.default()
    draws = np.stack([np.asarray(spec.prior_location()) + s for s in (0.0, 0.05, -0.05)])
    table = management_check(spec, d, draws, replicates=50)
    assert list(table.row_id) == list(d.management.rows.row_id)
    assert ((table.model_mean > 0) & (table.model_mean < 1)).all()
    assert (table.model_q05 <= table.model_q95).all()
    expect = (table.observed >= table.predictive_q05) & (table.observed <= table.predictive_q95)
    assert (table.in_predictive == expect).all()
    summary = management_summary(table)
    assert summary["management_rows_fitted"] == 9
    assert summary["management_in_predictive"] == f"{int(expect.sum())}/9"
    assert management_summary(pd.DataFrame())["management_rows_fitted"] == 0


@functools.cache
def combination_designs(days=120, patients=8):
    df = load_incidence()
    rows = df[df["agents_model"] == "nivolumab;ipilimumab"]
    return tuple(build_design(rows, patients=patients, days=days, max_days=days,
                              managed_arms=managed) for managed in (False, True))


def test_managed_arms_lower_grade_3_rows_only_and_only_through_the_steroid_effect():
    from pdmodel.fit import predicted_probability
    from pdmodel.fit._design import managed_arm_regimens

    natural, managed = combination_designs()
    assert natural.management is None and managed.management.rows.row_id == ()
    label = managed_arm_regimens(managed.units)
    assert set(label) == {"nivolumab 1 mg/kg q3w x4 + ipilimumab 3 mg/kg q3w x4, then "
                          "nivolumab 3 mg/kg q2w"}
    assert [managed.management.units[k].regimen for k in managed.management.arm_unit] == \
        list(label)
    p = Params()
    mu_n = np.asarray(predicted_probability(p, natural))
    mu_m = np.asarray(predicted_probability(p, managed))
    o = natural.obs.arrays()
    # P(>= 1) and P(>= 2) are reached before any steroid: rows of those alone do not move
    low = (o.lo <= 2) & (o.upper == 0)
    assert low.any()
    np.testing.assert_allclose(mu_m[low], mu_n[low], rtol=1e-10)
    severe = (o.lo >= 3) & (mu_n > 0.01)
    assert severe.any()
    assert (mu_m[severe] <= mu_n[severe] + 1e-12).all()
    assert (mu_m[severe] < 0.9 * mu_n[severe]).any()  # steroids prevent grade >= 3 events
    # without a steroid or infliximab effect the managed arms are the natural course
    off = without_rescue_effect(p)
    np.testing.assert_allclose(np.asarray(predicted_probability(off, managed)),
                               np.asarray(predicted_probability(off, natural)), rtol=1e-9)


def test_managed_arms_gradient_is_exact():
    _, d = combination_designs(days=60, patients=4)
    spec, u0, g = gradient_against_central_differences(
        d, ("steroid_imax", "log_gap3[1]", "k_rep[1]", "ifx_imax", "ifx_ec50"))
    # only the managed arms tie the incidence rows to the steroid and infliximab effects
    for name, least in (("steroid_imax", 1e-3), ("ifx_imax", 1e-6), ("ifx_ec50", 1e-6)):
        k = spec.names.index(name)
        prior = -0.05 / spec.entries[k].prior.sd ** 2
        assert abs(float(g[k]) - prior) > least, name


def test_infliximab_suppresses_the_gi_course_on_steroids_only():
    regimen = "nivolumab 1 mg/kg q3w x4 + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"
    t = management_targets()
    df = load_incidence()
    d = build_design(df[df["agents_model"] == "nivolumab"], patients=32, days=365,
                     max_days=365, management=t[t.regimen == regimen])
    off = eqx.tree_at(lambda q: q.model.ifx_imax, Params(), 0.0)
    on = eqx.tree_at(lambda q: (q.model.ifx_imax, q.model.ifx_ec50), Params(), (0.95, 1.0))
    a_off, a_on = (jax.jit(managed_arms)(p, d) for p in (off, on))
    gi, rest = 1, [0, 2, 3, 4, 5]
    np.testing.assert_allclose(a_on.natural_max, a_off.natural_max, rtol=1e-12)
    np.testing.assert_allclose(a_on.steroid, a_off.steroid, rtol=1e-12)
    # the drive of the other organs is not touched
    for field in ("treated_max", "final_injury"):
        np.testing.assert_allclose(getattr(a_on, field)[..., rest],
                                   getattr(a_off, field)[..., rest], rtol=1e-12, atol=1e-300)
    gi_on, gi_off = np.asarray(a_on.treated_max[..., gi]), np.asarray(a_off.treated_max[..., gi])
    assert (gi_on <= gi_off * (1 + 1e-12)).all() and (gi_on < 0.99 * gi_off).any()
    # infused courses improve sooner, so fewer of the later checks find grade 2 still
    assert (np.asarray(a_on.infliximab) <= np.asarray(a_off.infliximab) + 1e-12).all()
    assert float(jnp.mean(a_on.infliximab)) > 0.5 * float(jnp.mean(a_off.infliximab)) > 0.01


def test_peak_is_the_vertex_of_the_parabola_through_three_steps():
    from pdmodel.irae.solvers._managed import _peak

    def y(t):
        return 3.0 - 2.0 * (t - 0.3) ** 2

    t0, t1, t2 = -0.5, 0.25, 0.6  # unequal steps, the vertex inside them
    v = _peak(jnp.array(y(t0)), jnp.array(y(t1)), jnp.array(y(t2)), t1 - t0, t2 - t1)
    assert float(v) == pytest.approx(3.0, rel=1e-12)
    # not a local maximum (still rising): the newest value
    assert float(_peak(jnp.array(1.0), jnp.array(2.0), jnp.array(2.5), 1.0, 1.0)) == 2.5
    # a padded step of length 0: the newest value, and a finite gradient
    g = jax.grad(lambda a: _peak(a, jnp.array(2.0), jnp.array(1.0), 0.0, 1.0))(jnp.array(1.0))
    assert np.isfinite(float(g))
