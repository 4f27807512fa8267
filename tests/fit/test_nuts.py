"""NUTS, the likelihood emulator, PSIS checks, the posterior DataTree layout, and recovery of
known parameters from simulated data (MAP recovers them, the NUTS posterior covers them)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from pdmodel.data import load_incidence
from pdmodel.fit import (
    FitSpec,
    Whitening,
    build_design,
    features_loglik,
    fit_emulator,
    laplace_scale,
    log_density,
    log_max_injury,
    map_fit,
    ode_parameter_index,
    posterior_variables,
    predicted_probability,
    psis_check,
    run_nuts,
    select_rows,
    trial_loglik,
    unconstrained_draws,
)


def test_psis_check_separates_good_and_heavy_tailed_weights():
    rng = np.random.default_rng(0)
    k_good, ess_good = psis_check(0.1 * rng.normal(size=2000))
    assert k_good < 0.5 and ess_good > 0.95
    k_bad, ess_bad = psis_check(3.0 * rng.standard_t(1.5, size=2000))
    assert k_bad > 0.7 and ess_bad < 0.2
    assert np.isnan(psis_check(np.zeros(5))[0])  # too few draws to tell


def test_nuts_samples_a_known_correlated_gaussian():
    cov = jnp.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]]) * 4.0
    mean = jnp.array([1.0, -2.0, 0.5])
    prec = jnp.linalg.inv(cov)

    def ld(u):
        d = u - mean
        return -0.5 * d @ prec @ d

    # a deliberately poor "Laplace" whitening: the sampler's adaptation must fix it
    res = run_nuts(ld, Whitening.from_laplace(jnp.zeros(3), jnp.eye(3)), jax.random.key(0),
                   chains=2, warmup=300, draws=600, progress=False)
    u = res.u.reshape(-1, 3)
    assert res.u.shape == (2, 600, 3) and not res.diverging.any()
    # tolerances from the Monte Carlo error (ESS ~ several hundred per dimension)
    se = np.sqrt(np.diag(cov) / 300)
    assert np.all(np.abs(u.mean(0) - mean) < 4 * se)
    assert np.allclose(np.cov(u.T), cov, atol=0.25 * 4.0)


def test_emulator_learns_a_smooth_nonlinear_map_better_than_its_linear_part():
    target = jnp.array([0.5, -0.2, 1.0, 0.3])

    def features(u):
        return jnp.stack([jnp.sin(u[0]) + 0.3 * u[1] ** 2, jnp.exp(0.4 * u[2]),
                          u[0] * u[2], jnp.tanh(u[1])])

    def loglik(u, f):
        return -0.5 * jnp.sum((f - target) ** 2) / 0.1**2

    whitening = Whitening.from_laplace(jnp.zeros(4), 0.5 * jnp.eye(4))
    emu, report, design = fit_emulator(features, loglik, whitening, (0, 1, 2),
                                       jax.random.key(1), design_points=256, width=32,
                                       steps=1500)
    assert report.inputs == 3 and report.features == 4
    assert report.loglik_rmse < 0.3 * report.loglik_rmse_linear
    assert design["u"].shape == (256 + 7, 4)
    u = jnp.array([0.3, -0.4, 0.2, 9.0])  # the 4th parameter does not enter the features
    assert np.allclose(emu(u), features(u), atol=0.05)
    assert np.allclose(emu(jnp.zeros(4)), features(jnp.zeros(4)), atol=0.05)


def test_posterior_variables_round_trip_exactly():
    spec = FitSpec.default()
    u = np.asarray(spec.prior_location()) + np.random.default_rng(2).normal(
        size=(2, 3, spec.size))
    variables, dims, coords = posterior_variables(spec, u)
    assert "g_pd1" in variables and dims["background"] == ["background_dim"]
    ds = xr.Dataset({k: (("chain", "draw", *dims.get(k, [])), v) for k, v in variables.items()},
                    coords=coords)
    assert "skin" in ds["susceptibility_dim"].values
    assert "pembrolizumab" in ds["agent_effect_dim"].values
    back = unconstrained_draws(spec, ds)
    assert back.shape == u.shape
    np.testing.assert_allclose(back, u, rtol=1e-10, atol=1e-10)


FITTED = ("a_ctla4", "g_pd1", "k_e", "concentration")


@pytest.mark.slow  # ~3 min on 2 cores; the sampler itself: the Gaussian tests above
def test_simulated_data_map_recovers_and_nuts_covers_known_parameters():
    """Data simulated from known parameters (4 fitted, the rest fixed): the MAP lies within
    3 Laplace SDs of the truth and the NUTS (emulator) 99% intervals cover every truth."""
    fields = {e.field for e in FitSpec.default().entries}
    spec = FitSpec.default(fixed=tuple(sorted(fields - set(FITTED))))
    assert spec.names == FITTED
    rows = select_rows(load_incidence())
    rows = rows[rows.agents_model.isin(["nivolumab", "ipilimumab", "nivolumab;ipilimumab"])
                & (rows.arm_class != "control")].copy()
    rows["n"] = rows["n"] * 4  # bigger arms: the data must inform the parameters
    design = build_design(rows, patients=8, seed=3)
    u_true = spec.prior_location() + 0.5 * spec.prior_scale() * jnp.array([1.0, -1.0, 0.5, 0.0])
    mu = predicted_probability(spec.to_params(u_true), design)
    phi = float(spec.to_params(u_true).obs.concentration)
    rng = np.random.default_rng(4)
    n = np.asarray(design.obs.n)
    y = rng.binomial(n, rng.beta(np.asarray(mu) * phi, (1 - np.asarray(mu)) * phi))
    design = dataclasses.replace(design, obs=design.obs._replace(y=tuple(int(v) for v in y)))

    def ld(u):
        return log_density(u, spec, design)

    res = map_fit(ld, spec.prior_location(), jax.random.key(5), scale=spec.prior_scale(),
                  starts=1, adam_steps=80, lbfgs_steps=20)
    lap = laplace_scale(ld, res.u)
    assert np.all(np.abs(np.asarray(res.u - u_true)) < 3 * np.asarray(lap.sd)), (res.u, u_true)
    whitening = Whitening.from_laplace(res.u, lap.cov)
    loglik = features_loglik(spec, design)
    emu, report, _ = fit_emulator(lambda u: log_max_injury(spec.to_params(u), design), loglik,
                                  whitening, ode_parameter_index(spec), jax.random.key(6),
                                  design_points=48, width=32, steps=1000)

    def target(u):
        return spec.log_prior(u) + loglik(u, emu(u))

    post = run_nuts(target, whitening, jax.random.key(7), chains=2, warmup=200, draws=300,
                    progress=False).u.reshape(-1, spec.size)
    lo, hi = np.quantile(post, [0.005, 0.995], axis=0)
    truth = np.asarray(u_true)
    assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)
    # the data inform the PD-1 effect: posterior narrower than the prior
    assert post[:, 1].std() < 0.7 * float(spec.prior_scale()[1])
    # the emulated likelihood agrees with the exact one at posterior draws
    flat = jnp.asarray(post[:: max(1, len(post) // 40)])
    exact = jax.vmap(lambda u: jnp.sum(trial_loglik(spec.to_params(u), design)))(flat)
    emulated = jax.vmap(lambda u: loglik(u, emu(u)))(flat)
    assert float(jnp.std(exact - emulated)) < 0.5


def test_what_parallel_chains_close_over_is_committed_to_no_device():
    """Parallel chains (a pmap over devices) close over the log density's arrays, which are
    committed to one device (outputs of compiled solves); a pmap loaded from the compilation
    cache refuses those (the two-process fit of tests/test_distributed.py failed so), so they
    are copied uncommitted. PRNG keys and non-array leaves pass unchanged."""
    from pdmodel.fit._nuts import _uncommitted

    committed = jax.device_put(jnp.arange(3.0), jax.devices()[0])
    key = jax.random.key(0)
    tree = {"x": committed, "key": key, "n": 3, "host": np.ones(2)}
    assert committed.committed
    out = _uncommitted(tree)
    assert isinstance(out["x"], jax.Array) and not out["x"].committed
    np.testing.assert_array_equal(out["x"], committed)
    assert out["key"] is key and out["n"] == 3 and out["host"] is tree["host"]
