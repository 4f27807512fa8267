"""Observation model, priors/transforms and MAP: against scipy, finite differences and a
known truth."""

import dataclasses
import functools
import itertools
import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pdmodel.data import load_incidence
from pdmodel.fit import (
    FitSpec,
    FittedParameter,
    ObservationParams,
    Params,
    Prior,
    beta_binomial_logpmf,
    build_design,
    drug_probabilities,
    laplace_scale,
    log_density,
    log_likelihood,
    map_fit,
    max_injuries,
    predicted_probability,
    select_rows,
    trial_loglik,
)
from pdmodel.fit._likelihood import ODE_FREE_FIELDS
from pdmodel.fit._map import _value_and_grad
from pdmodel.irae import IraeModel, drug_probability


def test_beta_binomial_matches_scipy():
    y, n, mu, phi = 7.0, 40.0, 0.23, 12.0
    ours = beta_binomial_logpmf(y, n, mu, phi)
    ref = stats.betabinom.logpmf(7, 40, mu * phi, (1 - mu) * phi)
    assert float(ours) == pytest.approx(ref, rel=1e-10)


def test_transforms_round_trip_and_prior_centre():
    spec = FitSpec.default()
    u = spec.prior_location()
    np.testing.assert_allclose(spec.to_unconstrained(spec.to_params(u)), u, atol=1e-12)
    p = spec.to_params(u)
    assert float(p.model.a_ctla4) == pytest.approx(float(IraeModel().a_ctla4))
    assert len(set(spec.names)) == spec.size
    with pytest.raises(ValueError, match="unknown prior"):
        Prior("gamma", 1.0, 1.0)


@functools.cache
def small_design():
    df = load_incidence()
    keep = df["agents_model"].isin(["ipilimumab", "nivolumab"]) | (df["arm_class"] == "control")
    return build_design(df[keep], patients=8)


def test_design_uses_only_resolvable_rows_and_probabilities_are_valid():
    rows = select_rows(load_incidence())
    assert len(rows) > 150 and set(rows.grade_min) <= {1, 2, 3}
    d = small_design()
    mu = predicted_probability(Params(), d)
    assert np.all((np.asarray(mu) > 0) & (np.asarray(mu) < 1))
    controls = d.obs.arrays().regimen < 0
    assert controls.any()  # placebo/vaccine/chemotherapy rows: background only
    ll = log_likelihood(Params(), d)
    assert np.all(np.isfinite(np.asarray(ll)))


def test_likelihood_solver_matches_full_solver():
    """max_injuries (precomputed PK, flat step list, PD-only RK4) against the full fixed-grid
    solver (day-by-day grid, PK stepped in the loop, rescue bookkeeping) at a non-default
    point: a two-agent regimen, target-mediated clearance (durvalumab) and a weekly one."""
    import pandas as pd

    from pdmodel.irae import IraeProblem, ManagementPolicy

    regimens = ["nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w",
                "durvalumab 1500 mg q4w", "nivolumab 240 mg q2w", "avelumab 10 mg/kg q1w"]
    rows = pd.DataFrame({
        "row_id": [f"r{k}" for k in range(4)], "organ": "any", "organ_model": "any",
        "grade_min": 1, "grade_max": 5, "n": 100, "events_used": 40,
        "endpoint": "treatment_related", "term_level": "group", "regimen": regimens,
        "regimen_parsed": 1, "agents_model": ["nivolumab+ipilimumab", "durvalumab", "nivolumab",
                                              "avelumab"],
        "arm_class": "anti-PD-1", "fit_default": 1})
    d = build_design(rows, patients=6, days=120, steps_per_day=2, refine=2)
    assert len(d.regimens) == 4
    spec = FitSpec.default()
    params = spec.to_params(spec.prior_location() + 0.1)
    ours = np.asarray(max_injuries(params, d))
    assert ours.shape == (4, 6, 6)
    for k, text in enumerate(d.regimens):
        problem = IraeProblem.build(text, days=120, steps_per_day=2, refine=2)
        daily, _ = problem.run(params.model, d.population, ManagementPolicy.none())
        ref = np.asarray(daily.max_injury[:, -1])
        np.testing.assert_allclose(ours[k], ref, rtol=1e-12, err_msg=text)
        assert np.all(ref > 0)


def test_flat_step_edges_are_the_day_grid_without_padding():
    from pdmodel.regimen import Regimen, flat_step_edges, step_edges

    r = Regimen.parse("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 240 mg q2w")
    days = step_edges(r, 60, 2, 2)
    flat = flat_step_edges(r, 60, 2, 2)
    assert np.all(np.diff(flat) > 0) and flat[0] == 0.0 and flat[-1] == 60.0
    steps = {(a, b) for row in days for a, b in zip(row[:-1], row[1:], strict=True) if b > a}
    assert steps == set(zip(flat[:-1], flat[1:], strict=True))
    padded = flat_step_edges(r, 60, 2, 2, n_steps=flat.size + 4)
    assert padded.size == flat.size + 5 and np.all(padded[flat.size:] == 60.0)
    with pytest.raises(ValueError, match="n_steps"):
        flat_step_edges(r, 60, 2, 2, n_steps=10)


def test_log_density_gradient_matches_finite_differences():
    d = small_design()
    spec = FitSpec.default()
    u0 = spec.prior_location()
    f = eqx.filter_jit(log_density)
    g = eqx.filter_jit(jax.grad(log_density))(u0, spec, d)
    for k in (0, 1, 4, spec.size - 1):
        h = 1e-5
        e = jnp.zeros_like(u0).at[k].set(h)
        fd = (f(u0 + e, spec, d) - f(u0 - e, spec, d)) / (2 * h)
        assert float(g[k]) == pytest.approx(float(fd), rel=1e-5, abs=1e-6), spec.names[k]


@pytest.mark.slow  # ~75 s of compilation on 2 cores; .ci/run runs it after the default suite
def test_map_recovers_known_parameters_within_posterior_spread():
    d = small_design()
    base = Params(obs=ObservationParams(concentration=1e5))  # ~binomial
    entries = (
        FittedParameter("model", "a_ctla4", Prior("lognormal", 3.0, 0.7)),
        FittedParameter("model", "g_pd1", Prior("lognormal", 0.04, 0.7)),
        FittedParameter("model", "susceptibility", Prior("lognormal", 0.043, 1.0), (0,)),
    )
    spec = FitSpec(entries=entries, base=base)
    truth = jnp.log(jnp.array([4.5, 0.055, 0.06]))
    mu = predicted_probability(spec.to_params(truth), d)
    n = jnp.full(mu.shape, 3000.0)
    y = jnp.round(mu * n)  # expected counts: the optimum is the truth up to the prior's pull
    obs = d.obs._replace(n=tuple(int(x) for x in n), y=tuple(int(x) for x in y))
    d = dataclasses.replace(d, obs=obs)

    def ld(u):
        return log_density(u, spec, d)

    res = map_fit(ld, spec.prior_location(), jax.random.key(0), starts=1, adam_steps=60,
                  adam_lr=0.05, lbfgs_steps=40)
    lap = laplace_scale(ld, res.u)
    sd, nonconcave = lap.sd, lap.nonconcave
    assert nonconcave == 0
    assert np.all(np.abs(np.asarray(res.u - truth)) < 3 * np.asarray(sd)), (res.u, truth, sd)


def test_backbone_background_enters_only_arms_that_give_the_backbone():
    """Control arms carry their backbone's events and no drug term; an ICI + chemotherapy arm
    is the ICI effect plus the chemotherapy background; arms without a backbone do not move
    when a backbone's hazard does (docs/model.md §5.2)."""
    base = {"organ": "gi", "organ_model": "gi", "grade_min": 1, "grade_max": 5, "n": 100,
            "events_used": 20, "endpoint": "all_cause", "term_level": "group",
            "fit_default": 1}
    arms = [  # (row_id, agents_model, arm_class, backbone, regimen_model)
        ("ici", "nivolumab", "anti-PD-1", "", "nivolumab 240 mg q2w"),
        ("ici+chemo", "nivolumab", "anti-PD-1", "chemotherapy", "nivolumab 240 mg q2w"),
        ("placebo", "", "control", "", ""),
        ("chemo", "", "control", "chemotherapy", ""),
        ("vaccine", "", "control", "vaccine", ""),
    ]
    rows = pd.DataFrame([base | {"row_id": r, "agents_model": a, "arm_class": c,
                                 "backbone": b, "regimen_model": g, "regimen": g or "placebo",
                                 "regimen_parsed": int(bool(g))}
                         for r, a, c, b, g in arms])
    design = build_design(rows, patients=4, days=56)
    assert design.obs.backbone == (-1, 0, -1, 0, 4) and design.obs.regimen == (0, 0, -1, -1, -1)
    p = Params()
    mu = dict(zip(design.obs.row_id, np.asarray(predicted_probability(p, design)), strict=True))
    assert mu["chemo"] > mu["placebo"] and mu["ici+chemo"] > mu["ici"]
    # independent events: 1 − P(ici+chemo) = (1 − P(ici)) · (1 − γ·r_chemo)
    gamma_r = 1 - (1 - mu["chemo"]) / (1 - mu["placebo"])
    assert 1 - mu["ici+chemo"] == pytest.approx((1 - mu["ici"]) * (1 - gamma_r), rel=1e-9)
    more = eqx.tree_at(lambda q: q.obs.backbone_background, p,
                       p.obs.backbone_background.at[0].multiply(10.0))
    mu2 = dict(zip(design.obs.row_id, np.asarray(predicted_probability(more, design)),
                   strict=True))
    for r in ("ici", "placebo", "vaccine"):
        assert mu2[r] == mu[r], r
    assert mu2["chemo"] > mu["chemo"] and mu2["ici+chemo"] > mu["ici+chemo"]
    # the backbone parameters are fitted: the log density has a gradient in them
    spec = FitSpec.default()
    g = eqx.filter_jit(jax.grad(log_density))(spec.prior_location(), spec, design)
    k = spec.names.index("backbone_background[0,1]")  # chemotherapy, gi
    assert float(g[k]) != 0.0
    # at the prior centre the prior's gradient is 0: a backbone no arm gives has none at all
    k = spec.names.index("backbone_background[1,1]")  # trastuzumab+chemotherapy
    assert abs(float(g[k])) < 1e-12  # (compiled: 0 up to rounding)


def test_unmodelled_backbone_is_refused():
    rows = pd.DataFrame({"row_id": ["r"], "organ": "gi", "organ_model": "gi", "grade_min": 1,
                         "grade_max": 5, "n": 10, "events_used": 1, "endpoint": "all_cause",
                         "term_level": "group", "fit_default": 1, "agents_model": "nivolumab",
                         "arm_class": "anti-PD-1", "backbone": "bevacizumab",
                         "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1})
    with pytest.raises(ValueError, match="row r: backbone 'bevacizumab' is not modelled"):
        build_design(rows, patients=2, days=14)


# ------------------------------------------------------------------ each arm as it was run

def _rows(specs):
    base = {"organ": "gi", "organ_model": "gi", "grade_min": 1, "grade_max": 5, "n": 100,
            "events_used": 20, "endpoint": "all_cause", "term_level": "group",
            "fit_default": 1, "agents_model": "nivolumab", "arm_class": "anti-PD-1",
            "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1}
    return pd.DataFrame([base | s for s in specs])


def test_arm_timing_rules_and_shared_solves():
    """Horizon: printed follow-up, else the planned course plus its window, else the default;
    treatment: printed median, capped by the planned course; arms that agree share a solve."""
    from pdmodel.fit import arm_timing
    from pdmodel.fit._design import MEDIAN_TREATMENT_DAYS, REPORTING_WINDOW_DAYS

    t = arm_timing({"followup_weeks": 30.0}, 365)
    assert t["horizon_days"] == 210 and t["horizon_basis"] == "printed follow-up"
    t = arm_timing({"course_weeks": 52.14, "window_weeks": 30 / 7}, 365, 730)
    assert t["horizon_days"] == round(52.14 * 7 + 30) and t["course_days"] == 52.14 * 7
    t = arm_timing({"course_weeks": 52.14}, 365, 730)
    assert t["horizon_days"] == round(52.14 * 7 + REPORTING_WINDOW_DAYS)
    t = arm_timing({"followup_weeks": 500.0, "treatment_weeks": 12.0}, 365)
    assert t["horizon_days"] == 365 and t["median_treatment_days"] == 84.0  # capped at days
    t = arm_timing({}, 365)
    assert t["horizon_days"] == 365 and t["median_treatment_days"] == MEDIAN_TREATMENT_DAYS
    assert t["course_days"] == float("inf") and "assumed" in t["horizon_basis"]

    rows = _rows([{"row_id": "a"}, {"row_id": "b", "organ": "skin", "organ_model": "skin"},
                  {"row_id": "adj", "course_weeks": 4.0},
                  {"row_id": "short", "treatment_weeks": 2.0}])
    design = build_design(rows, patients=6, days=56)
    assert design.obs.regimen == (0, 0, 1, 2) and len(design.units) == 3
    assert design.obs.horizon == (56, 56, 56, 56)  # 28 + 100 days capped at 56
    assert design.units[1].course_days == 28.0
    # the adjuvant arm stops by day 28, the short one earlier than the default: less drug
    conc = np.asarray(design.stacked.concentration)  # [arm, patient, step, 3, agent]
    assert conc[1, :, -1].max() < conc[0, :, -1].max()
    assert conc[2].sum() < conc[0].sum()


def test_length_groups_are_the_cheapest_partition_and_solve_the_same():
    """Regimens solved in groups of similar length, each only to its longest member's steps:
    the groups cover every regimen once, cost the least arm-steps that few groups can, and the
    features (and the log density's gradient) equal one solve of every arm to the longest."""
    from pdmodel.fit._design import LENGTH_GROUP_SLACK, StackedRegimens

    def groups(steps):
        n = len(steps)
        st = StackedRegimens(jnp.zeros((n, max(steps) + 1)), *(jnp.zeros(n),) * 5,
                             steps=tuple(steps))
        return st.length_groups()

    steps = [401, 276, 800, 423, 533, 373, 533, 401]
    got = groups(steps)
    assert sorted(i for m, _ in got for i in m) == list(range(len(steps)))
    assert all(n == max(steps[i] for i in m) for m, n in got)
    cost = sum(len(m) * n for m, n in got)
    # brute force over every way to cut the sorted lengths into at most 3 groups
    s = sorted(steps)
    best = min(sum((j - i) * s[j - 1] for i, j in zip((0, *c), (*c, len(s)), strict=True))
               for k in range(3) for c in itertools.combinations(range(1, len(s)), k))
    assert best <= cost <= LENGTH_GROUP_SLACK * best < len(steps) * max(steps)
    assert groups([300, 310, 320]) == (((0, 1, 2), 320),)  # nothing worth a second solve
    assert groups([200, 210, 400]) == (((0, 1, 2), 400),)  # too little saved (380 steps)
    assert len(groups([20, 30, 400])) == 2  # 740 steps saved

    rows = _rows([{"row_id": "b", "regimen": "pembrolizumab 200 mg q3w"},
                  {"row_id": "a", "course_weeks": 2.0, "window_weeks": 1.0},
                  {"row_id": "c", "regimen": "ipilimumab 3 mg/kg q3w x4"}])
    design = build_design(rows, patients=4, days=730)
    st = design.stacked  # solved in the order 1 | 2, 0: put back by a 3-cycle
    assert [m for m, _ in st.length_groups()] == [(1,), (2, 0)]
    one = dataclasses.replace(design, stacked=dataclasses.replace(st, steps=()))
    assert len(one.stacked.length_groups()) == 1
    spec = FitSpec.default()
    u = spec.prior_location() + 0.1
    grad = eqx.filter_jit(jax.grad(log_density))  # compiled: op by op it is slower
    np.testing.assert_allclose(max_injuries(spec.to_params(u), design),
                               max_injuries(spec.to_params(u), one), rtol=1e-12)
    np.testing.assert_allclose(grad(u, spec, design), grad(u, spec, one), rtol=1e-9, atol=1e-12)


def test_tumour_and_setting_act_on_susceptibility_exactly():
    """Injury is linear in organ susceptibility (natural course), so applying the row's tumour
    and setting factors after the solve equals solving with the scaled susceptibility."""
    rows = _rows([{"row_id": "mel", "tumour_model": "melanoma"},
                  {"row_id": "lung", "tumour_model": "nsclc", "setting_model": "adjuvant"}])
    design = build_design(rows, patients=4, days=42)
    assert design.obs.tumour == (0, 1) and design.obs.setting == (0, 1)
    p = Params()
    model = eqx.tree_at(lambda m: (m.tumour_effect, m.setting_effect), p.model,
                        (p.model.tumour_effect.at[1].set(2.0),
                         p.model.setting_effect.at[1].set(1.5)))
    p = eqx.tree_at(lambda q: q.model, p, model)
    probs = drug_probabilities(p, design)  # [row, patient, organ, g]
    scaled = eqx.tree_at(lambda m: m.susceptibility, model, model.susceptibility * 3.0)
    m3 = max_injuries(eqx.tree_at(lambda q: q.model, p, scaled), design)
    np.testing.assert_allclose(np.asarray(probs[1]),
                               np.asarray(drug_probability(model, m3[0])), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(probs[0]),
                               np.asarray(drug_probability(model, max_injuries(p, design)[0])),
                               rtol=1e-12)
    # the fitted effects are ODE-free: the solve does not depend on them
    assert "tumour_effect" in ODE_FREE_FIELDS and "setting_effect" in ODE_FREE_FIELDS
    np.testing.assert_array_equal(np.asarray(max_injuries(p, design)),
                                  np.asarray(max_injuries(Params(), design)))


def test_trial_effect_integrates_rows_of_one_trial_together():
    """Adaptive Gauss–Hermite quadrature of the shared trial effect against scipy's quad;
    one row per trial gives the pointwise log-likelihood; σ → 0 gives independent rows."""
    from scipy import integrate

    rows = _rows([{"row_id": "a", "study": "S1", "events_used": 30},
                  {"row_id": "b", "study": "S1", "organ": "skin", "organ_model": "skin",
                   "events_used": 5},
                  {"row_id": "c", "study": "S2", "events_used": 12}])
    design = build_design(rows, patients=4, days=28)
    assert design.obs.trial == (0, 0, 1) and design.trials == ("S1", "S2")
    p = eqx.tree_at(lambda q: q.obs.trial_sd, Params(), jnp.asarray(0.8))
    mu = np.asarray(predicted_probability(p, design))
    phi = float(p.obs.concentration)

    def trial_ll(idx):
        def f(z):
            out = 1.0
            for i in idx:
                m = 1 / (1 + np.exp(-(np.log(mu[i] / (1 - mu[i])) + 0.8 * z)))
                out *= stats.betabinom.pmf(design.obs.y[i], design.obs.n[i], m * phi,
                                           (1 - m) * phi)
            return out * stats.norm.pdf(z)
        return np.log(integrate.quad(f, -12, 12, epsabs=1e-14, epsrel=1e-12)[0])

    got = np.asarray(trial_loglik(p, design))
    # 9 nodes: about 2e-4 nats per trial here (15 nodes: < 1e-6), far below the Monte Carlo
    # error of the virtual population; the fit's gradient costs 40% less
    np.testing.assert_allclose(got, [trial_ll([0, 1]), trial_ll([2])], rtol=5e-5, atol=0)
    pointwise = np.asarray(log_likelihood(p, design))
    assert pointwise[2] == pytest.approx(got[1], rel=1e-12)
    tiny = eqx.tree_at(lambda q: q.obs.trial_sd, p, jnp.asarray(1e-9))
    independent = [stats.betabinom.logpmf(y, n, m * phi, (1 - m) * phi)
                   for y, n, m in zip(design.obs.y, design.obs.n, mu, strict=True)]
    np.testing.assert_allclose(np.asarray(trial_loglik(tiny, design)),
                               [independent[0] + independent[1], independent[2]], rtol=1e-7)


def test_trial_effect_of_a_far_off_trial_is_integrated_at_its_mode():
    """A trial far from the model (DETERMINE in a fit: 246/380 on tremelimumab and 91/189 on
    placebo against model means 0.30 and 0.10, trial SD 0.54, φ 36) has its mode well out on
    flat beta-binomials: Newton's method must reach it (five steps overshot to z = 7.1, with
    the curvature at its floor, and the fit's Laplace Hessian broke)."""
    from scipy import integrate

    rows = _rows([{"row_id": "a", "study": "S1", "events_used": 246, "n": 380},
                  {"row_id": "b", "study": "S1", "events_used": 91, "n": 189}])
    design = build_design(rows, patients=4, days=28)
    p = eqx.tree_at(lambda q: (q.obs.trial_sd, q.obs.concentration), Params(),
                    (jnp.asarray(0.5373), jnp.asarray(35.89)))
    mu, phi = np.array([0.30144, 0.10466]), 35.89

    def f(z):
        m = 1 / (1 + np.exp(-(np.log(mu / (1 - mu)) + 0.5373 * z)))
        pmf = stats.betabinom.pmf([246, 91], [380, 189], m * phi, (1 - m) * phi)
        return np.prod(pmf) * stats.norm.pdf(z)

    ref = np.log(integrate.quad(f, -15, 15, points=[2, 3, 4], epsabs=0, epsrel=1e-12,
                                limit=200)[0])
    got = trial_loglik(p, design, jnp.asarray(mu))
    assert float(got[0]) == pytest.approx(ref, abs=1e-4)


def test_lbfgs_stops_when_an_iteration_gains_nothing_and_keeps_the_better_point():
    """At a kinked optimum every line search stalls: the optimiser stops there
    instead of spending its 20 steps in each remaining iteration, and never ends above the
    point where the failing iteration began."""
    calls = []

    def log_density(u):
        jax.debug.callback(lambda: calls.append(1))
        return -jnp.sum(jnp.abs(u - 1.0)) - 0.01 * jnp.sum(u**2)

    res = map_fit(log_density, jnp.zeros(3), jax.random.key(0), starts=1, adam_steps=20,
                  lbfgs_steps=300)
    assert np.isfinite(float(res.log_density))
    # without the stop: up to 300 iterations x 20 line-search steps
    assert len(calls) < 600, len(calls)
    adam_only = map_fit(log_density, jnp.zeros(3), jax.random.key(0), starts=1, adam_steps=20,
                        lbfgs_steps=0)
    assert float(res.log_density) >= float(adam_only.log_density) - 1e-12


def test_laplace_covariance_matches_the_exact_hessian():
    """The forward-difference Hessian against jax.hessian of a skewed log density at its
    mode: the covariance to 1e-3, and a saddle counted as non-concave."""
    a = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]])

    def ld(u):  # mode at 0; cubic and quartic terms make it non-Gaussian
        return -0.5 * u @ a @ u - 0.3 * u[0] ** 3 + 0.1 * u[1] ** 3 - 0.05 * jnp.sum(u**4)

    u0 = jnp.zeros(3)
    lap = laplace_scale(ld, u0)
    exact = jnp.linalg.inv(-jax.hessian(ld)(u0))
    np.testing.assert_allclose(np.asarray(lap.cov), np.asarray(exact), rtol=1e-3, atol=1e-6)
    assert lap.nonconcave == 0
    assert laplace_scale(lambda u: ld(u) + 1.5 * u[2] ** 2, u0).nonconcave == 1


def test_laplace_measures_again_a_direction_made_non_concave_by_a_gradient_kink():
    """A kink of the gradient inside the forward-difference step (a jump of +0.5 at
    u₀ = 5e-4) makes the Hessian's curvature positive; the second difference of the log
    density at ±CURVATURE_STEP finds the concave shape (−100, SD 0.1), a true saddle stays."""
    from pdmodel.fit._map import CURVATURE_STEP

    def ld(u):
        return -50.0 * u[0] ** 2 - 2.0 * u[1] ** 2 + 0.5 * jax.nn.relu(u[0] - 5e-4)

    u0 = jnp.zeros(2)
    lap = laplace_scale(ld, u0)
    assert lap.nonconcave == 0 and lap.remeasured == 1
    # the value's curvature over ±CURVATURE_STEP includes the kink's share 0.5·(h − 5e-4)/h²
    kink = 0.5 * (CURVATURE_STEP - 5e-4) / CURVATURE_STEP**2
    assert float(lap.sd[0]) == pytest.approx((100.0 - kink) ** -0.5, rel=1e-6)
    assert float(lap.sd[1]) == pytest.approx(0.5, rel=1e-3)
    saddle = laplace_scale(lambda u: ld(u) + 60.0 * u[0] ** 2, u0)
    assert saddle.nonconcave == 1 and saddle.remeasured == 0


def test_map_starts_and_laplace_share_one_compiled_likelihood(caplog):
    """Every MAP start, Adam and L-BFGS step and the Laplace Hessian run one compiled
    value-and-gradient program: the log density is traced once (the optimiser compiled as one
    program traced it once per use, and compiling that took four times as long) and compiled
    once (Adam's iterates are committed to a device, L-BFGS's are not: jit compiled the one
    trace twice, 45 s more for the bundled fit)."""
    traced = []

    def ld(centre, u):
        traced.append(1)  # runs when traced, not when the compiled program runs
        return -0.5 * jnp.sum((u - centre) ** 2 * jnp.arange(1.0, 4.0)) - 0.1 * jnp.sum(u**4)

    log_density = jax.tree_util.Partial(ld, jnp.array([0.5, -1.0, 2.0]))
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        res = map_fit(log_density, jnp.zeros(3), jax.random.key(0), starts=2, adam_steps=30,
                      lbfgs_steps=30)
        lap = laplace_scale(log_density, res.u)
        # a point committed to a device (as Adam's iterates were in the bundled fit, outputs
        # of compiled calls) and one not (L-BFGS's, from numpy) share the program too
        for u in (jax.device_put(res.u, jax.devices()[0]), np.asarray(res.u)):
            _value_and_grad(u, log_density)
    assert len(traced) == 1
    compiled = [r for r in caplog.records if "Compiling jit(_value_and_grad" in r.getMessage()]
    assert len(compiled) == 1, [r.getMessage()[:200] for r in compiled]
    assert lap.nonconcave == 0 and float(res.grad_norm.max()) < 1e-3
