"""Published median onsets in the likelihood (pdmodel/fit/_onset.py): the onset distribution's
median against an analytic one, the sampling SD of a median against simulation, the knot solve
against the daily solver, and the gradient against finite differences."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from pdmodel.data import load_incidence
from pdmodel.fit import (
    FitSpec,
    Params,
    build_design,
    log_density,
    log_max_injury,
    onset_log_likelihood,
    onset_targets,
    total_loglik,
    trial_loglik,
)
from pdmodel.fit._likelihood import onset_incidence, onset_max_injuries
from pdmodel.fit._onset import (
    ONSET_PATIENT_FACTOR,
    ONSET_SPREAD,
    antibody_mixture,
    knot_days,
    onset_loglik,
    onset_median,
)
from pdmodel.irae import (
    THYROID_ANTIBODY_PREVALENCE,
    THYROID_ANTIBODY_TITRE,
    IraeProblem,
    ManagementPolicy,
)


def _targets(agents=("nivolumab", "ipilimumab")):
    t = onset_targets()
    return t[t.agent.isin(agents)].reset_index(drop=True)


@functools.cache
def onset_design(days=140):
    df = load_incidence()
    keep = df["agents_model"].isin(["ipilimumab", "nivolumab"])
    return build_design(df[keep], patients=4, days=days, onset=_targets())


def test_onset_targets_are_the_bundled_medians_of_modelled_agents():
    t = onset_targets()
    assert len(t) >= 20 and (t.published_median_weeks > 0).all()
    assert set(t.agent) <= {"nivolumab", "pembrolizumab", "ipilimumab", "nivolumab;ipilimumab",
                            "avelumab", "atezolizumab", "durvalumab", "cemiplimab"}
    assert {"thyroid", "skin", "gi"} <= set(t.organ)


def test_knots_are_weekly_then_four_weekly_and_end_at_the_horizon():
    k = knot_days(730)
    assert k[:3] == (7, 14, 21) and k[-1] == 730 and 210 in k and 238 in k and 217 not in k
    assert knot_days(100)[-1] == 100 and np.all(np.diff(knot_days(100)) > 0)


def test_median_of_the_onset_distribution_matches_the_analytic_one():
    """I(t) = 1 − exp(−λt) at weekly knots: F = I/I(T), m = −log(1 − ½ I(T))/λ."""
    days = np.asarray(knot_days(365), float)
    lam = np.array([0.002, 0.01, 0.05])
    inc = 1.0 - np.exp(-lam[:, None] * days[None])
    m, f = onset_median(jnp.asarray(inc), jnp.asarray(days))
    final = 1.0 - np.exp(-lam * 365)
    exact = -np.log(1.0 - 0.5 * final) / lam
    np.testing.assert_allclose(np.asarray(m), exact, rtol=0.02)
    density = lam * np.exp(-lam * exact) / final  # f(m) = I'(m) / I(T)
    # the slope of F over the knot's week: within 10% while the median is beyond ~5 weeks
    np.testing.assert_allclose(np.asarray(f)[:2], density[:2], rtol=0.1)


def test_median_and_density_are_smooth_where_the_median_crosses_a_knot():
    """Their gradients do not jump as the median passes weekly knots (the linear-interpolation
    median's did, and broke a fit's Laplace Hessian)."""
    days = jnp.asarray(knot_days(365), float)

    def median_and_density(lam):
        inc = 1.0 - jnp.exp(-lam * days)
        m, f = onset_median(inc[None], days)
        return m[0], f[0]

    lams = np.linspace(0.008, 0.012, 201)  # medians from about 80 to 57 days: 3 knots
    grads = np.array([[float(g) for g in jax.jacobian(median_and_density)(lam)]
                      for lam in lams])
    for g in grads.T:
        jumps = np.abs(np.diff(g, 2))
        assert jumps.max() < 0.05 * np.abs(np.diff(g)).max() + 1e-9 * np.abs(g).max()


def test_sampling_sd_of_a_median_matches_simulation():
    """The likelihood's s_k (log scale) against the spread of medians of k simulated event
    times from the same F."""
    days = np.asarray(knot_days(365), float)
    lam, k = 0.01, 40
    inc = 1.0 - np.exp(-lam * days)
    final = inc[-1]
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(20_000, k)) * final  # inverse CDF of F, truncated at T
    times = -np.log1p(-u) / lam
    sd_sim = np.std(np.log(np.median(times, axis=1)))
    m, f = onset_median(jnp.asarray(inc[None]), jnp.asarray(days))
    s_k = 1.0 / (2.0 * np.sqrt(k) * float(f[0]) * float(m[0]))
    assert s_k == pytest.approx(sd_sim, rel=0.1)


def test_onset_loglik_peaks_at_the_model_median_and_widens_with_few_events():
    days = knot_days(365)
    inc = jnp.asarray(1.0 - np.exp(-0.01 * np.asarray(days, float)))[None]
    m = float(onset_median(inc, jnp.asarray(days, float))[0][0])
    from pdmodel.fit._onset import OnsetRows

    def ll(median, k):
        rows = OnsetRows(("r",), (0,), (0,), (0,), (median,), (k,), (False,))
        return float(onset_loglik(inc, rows, days)[0])

    assert ll(m, 50) > ll(1.3 * m, 50) and ll(m, 50) > ll(m / 1.3, 50)
    # no printed k: only the between-study spread
    assert ll(m, 0) == pytest.approx(-np.log(ONSET_SPREAD) - 0.5 * np.log(2 * np.pi))
    # few events: wider, so a far median costs less
    assert ll(2 * m, 5) > ll(2 * m, 500)


def test_a_hypothyroidism_median_is_the_thyroiditis_median_plus_the_lag():
    """A hypothyroidism row's likelihood peaks at the thyroiditis median + lag; the lag moves
    nothing else."""
    from pdmodel.fit._onset import OnsetRows

    days = knot_days(365)
    inc = jnp.asarray(1.0 - np.exp(-0.01 * np.asarray(days, float)))[None]
    m = float(onset_median(inc, jnp.asarray(days, float))[0][0])

    def ll(median, hypo, lag):
        rows = OnsetRows(("r",), (0,), (0,), (0,), (median,), (40.0,), (hypo,))
        return float(onset_loglik(inc, rows, days, jnp.asarray(lag))[0])

    lag = 60.0
    peak = ll(m + lag, True, lag)
    assert peak > ll(1.2 * (m + lag), True, lag) and peak > ll((m + lag) / 1.2, True, lag)
    assert peak > ll(m, True, lag) + 1.0  # the thyroiditis median is now far off
    assert ll(m, False, lag) == pytest.approx(ll(m, False, 0.0))  # other rows: no lag


def test_delayed_course_shifts_each_draws_median_by_its_lag():
    from pdmodel.fit._checks import delayed

    t = np.arange(1, 366, dtype=float)
    inc = np.stack([1 - np.exp(-0.01 * t), 1 - np.exp(-0.02 * t)])
    lag = np.array([30.0, 70.4])
    out = delayed(inc, lag)
    assert out.shape == (2, 365 + 70)
    for d in range(2):
        half = lambda c: int(np.argmax(c >= 0.5 * c[-1])) + 1  # noqa: E731
        assert half(out[d]) == half(inc[d]) + round(lag[d])
        assert out[d, round(lag[d]) - 1] == 0.0 and out[d, -1] == inc[d, -1]


def test_thyroid_rows_are_split_into_thyroiditis_and_hypothyroidism():
    """Hyperthyroidism rows time thyroiditis; hypothyroidism rows (the term, or the OPDIVO
    pool's 171-event thyroid row) its sequel; each keeps its own printed range."""
    t = onset_targets().set_index("row_id")
    assert t.loc["tim-0090", "thyroid_phase"] == "hypothyroidism"  # KEYTRUDA hypothyroidism
    assert t.loc["tim-0087", "thyroid_phase"] == "thyroiditis"  # KEYTRUDA hyperthyroidism
    assert t.loc["tim-0133", "thyroid_phase"] == "hypothyroidism"
    assert t.loc["tim-0136", "thyroid_phase"] == "thyroiditis"
    assert t.loc["tim-0133", "range_high_weeks"] == pytest.approx(72.127)  # tim-0135
    assert t.loc["tim-0136", "range_high_weeks"] == pytest.approx(61.699)  # tim-0138
    assert (t[t.organ != "thyroid"].thyroid_phase == "").all()


def test_knot_solve_matches_the_daily_solver():
    d = onset_design()
    on = d.onset
    assert on is not None and len(on.rows.row_id) == len(_targets())
    spec = FitSpec.default()
    params = spec.to_params(spec.prior_location() + 0.1)
    ours = np.asarray(onset_max_injuries(params, d))  # [unit, patient, knot, organ]
    for k, unit in enumerate(on.units):
        problem = IraeProblem.build(unit.regimen, days=unit.days, steps_per_day=1, refine=1)
        # median treatment 125 days, no planned course: the population's own stop days
        daily, _ = problem.run(params.model, on.population, ManagementPolicy.none())
        ref = np.asarray(daily.max_injury)[:, np.asarray(on.knot_days) - 1]
        np.testing.assert_allclose(ours[k], ref, rtol=1e-10, err_msg=unit.regimen)


def test_onset_arms_have_their_own_larger_latin_hypercube_population():
    d = onset_design()
    on = d.onset
    assert on.population.size == ONSET_PATIENT_FACTOR * d.population.size
    # another stream of the seed: not the incidence arms' patients repeated
    assert not np.allclose(np.asarray(on.population.z_pd[:d.population.size]),
                           np.asarray(d.population.z_pd))


def test_antibody_mixture_is_the_weighted_negative_and_positive_populations():
    """Counting each patient antibody-negative and -positive from one solve equals solving
    the population twice with the titre set, weighted by the prevalence (natural course)."""
    d = onset_design()
    on = d.onset
    spec = FitSpec.default()
    params = spec.to_params(spec.prior_location() + 0.1)
    problem = IraeProblem.build(on.units[0].regimen, days=84, steps_per_day=1, refine=1)
    pop = on.population
    assert 0 < float(jnp.sum(pop.a0 > 1)) < pop.size  # both statuses drawn

    def run(p):
        return problem.run(params.model, p, ManagementPolicy.none())[0].max_injury

    both, weights = antibody_mixture(run(pop), pop.a0)
    ones = jnp.ones_like(pop.a0)
    np.testing.assert_allclose(both[:pop.size], run(pop.replace(a0=ones)), rtol=1e-9)
    np.testing.assert_allclose(both[pop.size:],
                               run(pop.replace(a0=THYROID_ANTIBODY_TITRE * ones)), rtol=1e-9)
    assert float(jnp.sum(weights)) == pytest.approx(pop.size)
    assert float(weights[-1]) == pytest.approx(THYROID_ANTIBODY_PREVALENCE)


def test_total_loglik_is_incidence_plus_onset_and_its_gradient_is_exact():
    d = onset_design()
    spec = FitSpec.default()
    u0 = spec.prior_location()
    # one compiled program each (compiling is most of this test's cost); the forward one is
    # called again below at the same kind of argument (FitSpec.to_params), so not compiled again
    forward = eqx.filter_jit(lambda p, d: (
        total_loglik(p, d), jnp.sum(trial_loglik(p, d)), jnp.sum(onset_log_likelihood(p, d)),
        onset_incidence(p, d, log_max_injury(p, d))))
    total, trial, onset, inc = forward(spec.to_params(u0), d)
    assert float(total) == pytest.approx(float(trial) + float(onset), rel=1e-10)
    inc = np.asarray(inc)
    assert np.all(np.diff(inc, axis=1) >= -1e-12) and np.all(inc[:, -1] > 0)

    value_and_grad = eqx.filter_jit(jax.value_and_grad(log_density))
    g = value_and_grad(u0, spec, d)[1]
    onset_moves = []
    for k in (0, 1, 4, 10):
        h = 1e-5
        e = jnp.zeros_like(u0).at[k].set(h)
        fd = (value_and_grad(u0 + e, spec, d)[0] - value_and_grad(u0 - e, spec, d)[0]) / (2 * h)
        assert float(g[k]) == pytest.approx(float(fd), rel=1e-5, abs=1e-6), spec.names[k]
        onset_moves.append((float(forward(spec.to_params(u0 + e), d)[2])
                            - float(forward(spec.to_params(u0 - e), d)[2])) / (2 * h))
    # the onset term moves these gradients (else this test could not fail on it)
    assert max(map(abs, onset_moves)) > 1e-3, onset_moves


def test_design_without_timing_has_no_onset_rows():
    df = load_incidence()
    keep = df["agents_model"].isin(["nivolumab"])
    d = build_design(df[keep], patients=2, days=60, onset=pd.DataFrame())
    assert d.onset is None and float(jnp.sum(onset_log_likelihood(Params(), d))) == 0.0
