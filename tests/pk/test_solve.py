"""PK solvers against closed forms, matrix exponentials, scipy LSODA and conservation laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

from pdmodel.pk import (
    DEFAULT_MODELS,
    PAD_START,
    InfusionTable,
    SolverOptions,
    amounts_ode,
    concentrations_analytic,
    concentrations_ode,
    pk_model,
)
from tests.scipy_reference import lsoda_concentrations

TIGHT = SolverOptions(rtol=1e-12, atol=1e-12)


def table(infusions, pad=2):
    """InfusionTable from (start, duration, mg) with ``pad`` padding slots."""
    rows = list(infusions) + [(PAD_START, 1.0, 0.0)] * pad
    s, d, a = (jnp.array(x, dtype=float) for x in zip(*rows, strict=True))
    return InfusionTable(start=s, duration=d, dose_mg=a, dose_mg_per_kg=jnp.zeros_like(a))


def q2w(n, amount, minutes=30.0, every=14.0):
    return [(i * every, minutes / 1440.0, amount) for i in range(n)]


def expm_reference(p, infusions, ts):
    """Exact piecewise propagation of the linear 2-cpt system with scipy's expm."""
    k10, k12, k21 = p["CL"] / p["VC"], p["Q"] / p["VC"], p["Q"] / p["VP"]
    a = np.array([[-(k10 + k12), k21], [k12, -k21]])
    edges = sorted({0.0} | {s for s, _, _ in infusions} | {s + d for s, d, _ in infusions}
                   | {float(t) for t in ts})
    y, t_prev, out = np.zeros(2), 0.0, {}
    for t in edges[1:]:
        mid = 0.5 * (t_prev + t)
        rate = sum(m / d for s, d, m in infusions if s <= mid < s + d)
        aug = np.zeros((3, 3))
        aug[:2, :2] = a
        aug[0, 2] = rate
        y = (expm(aug * (t - t_prev)) @ np.append(y, 1.0))[:2]
        out[t] = y[0] / p["VC"]
        t_prev = t
    return np.array([out.get(float(t), 0.0) for t in ts])


LINEAR = pk_model("pembrolizumab")  # Ahamadi 2017: constant linear clearance


def linear_pk():
    return LINEAR.individual()


def test_analytic_equals_matrix_exponential():
    inf = q2w(6, 200.0, every=21.0)
    ts = jnp.linspace(0.0, 150.0, 301)
    got = concentrations_analytic(linear_pk(), table(inf), jnp.array([m for *_, m in inf] + [0, 0]),
                                  ts)
    ref = expm_reference(LINEAR.parameters(), inf, np.asarray(ts))
    np.testing.assert_allclose(got[1:], ref[1:], rtol=1e-10)
    assert got[0] == 0.0


def test_ode_equals_closed_form_for_constant_clearance():
    inf = q2w(8, 240.0)
    ts = jnp.linspace(0.5, 140.0, 280)
    tab = table(inf)
    exact = concentrations_analytic(linear_pk(), tab, tab.dose_mg, ts)
    ode = concentrations_ode(linear_pk(), tab, tab.dose_mg, ts, TIGHT)
    np.testing.assert_allclose(ode, exact, rtol=1e-8)


def test_single_bolus_like_infusion_matches_biexponential():
    """A one-minute infusion converges to the textbook bi-exponential after the infusion."""
    pk = linear_pk()
    p = LINEAR.parameters()
    k10, k12, k21 = p["CL"] / p["VC"], p["Q"] / p["VC"], p["Q"] / p["VP"]
    s = k10 + k12 + k21
    alpha = (s + np.sqrt(s * s - 4 * k10 * k21)) / 2
    beta = (s - np.sqrt(s * s - 4 * k10 * k21)) / 2
    dose, dur = 100.0, 1e-6
    ts = jnp.linspace(1.0, 100.0, 50)
    got = concentrations_analytic(pk, table([(0.0, dur, dose)]), jnp.array([dose, 0, 0]), ts)
    bolus = dose / p["VC"] * ((alpha - k21) * np.exp(-alpha * ts)
                              + (k21 - beta) * np.exp(-beta * ts)) / (alpha - beta)
    np.testing.assert_allclose(got, bolus, rtol=1e-5)  # O(duration) difference from a bolus


@pytest.mark.parametrize("agent", sorted(DEFAULT_MODELS))
def test_full_models_agree_with_lsoda(agent):
    spec = pk_model(agent)
    with_agents = {"ipilimumab": ("nivolumab",), "tremelimumab": ("durvalumab",)}.get(agent, ())
    p = spec.parameters(with_agents)
    pk = spec.individual(with_agents=with_agents)
    inf = q2w(10, 3.0 * spec.wt_ref, minutes=60.0, every=21.0)
    ts = jnp.array([0.02, 0.5, 3.0, 10.0, 20.9, 21.1, 60.0, 100.0, 180.0, 250.0])
    tab = table(inf)
    got = concentrations_ode(pk, tab, tab.dose_mg, ts, TIGHT)
    ref = lsoda_concentrations(p, inf, np.asarray(ts))
    np.testing.assert_allclose(got, ref, rtol=1e-6)


@pytest.mark.parametrize("agent,model", [("durvalumab", None),
                                          ("pembrolizumab", "elassaiss-schaap2017")])
def test_michaelis_menten_low_dose_agrees_with_lsoda(agent, model):
    """At 0.1 mg/kg target-mediated elimination dominates; still matches the reference."""
    spec = pk_model(agent, model)
    inf = q2w(3, 0.1 * spec.wt_ref, every=21.0)
    ts = jnp.array([1.0, 5.0, 15.0, 30.0, 50.0, 70.0])
    tab = table(inf)
    got = concentrations_ode(spec.individual(), tab, tab.dose_mg, ts, TIGHT)
    ref = lsoda_concentrations(spec.parameters(), inf, np.asarray(ts))
    np.testing.assert_allclose(got, ref, rtol=1e-6)


@pytest.mark.parametrize("agent", ["nivolumab", "durvalumab", "avelumab", "cemiplimab"])
def test_mass_balance(agent):
    """Body amount + integral of elimination (CL(t)·C + MM) equals the dose infused."""
    spec = pk_model(agent)
    inf = q2w(5, 240.0, every=14.0)
    ts = jnp.array([0.01, 0.02, 14.01, 30.0, 70.0, 400.0, 2000.0])
    tab = table(inf)
    ys, result = amounts_ode(spec.individual(), tab, tab.dose_mg, ts, TIGHT)
    assert int(result) == 0
    starts, durs = np.array([s for s, *_ in inf]), np.array([d for _, d, _ in inf])
    infused = np.array([np.sum(240.0 * np.clip((t - starts) / durs, 0, 1)) for t in ts])
    np.testing.assert_allclose(np.sum(ys, axis=1), infused, rtol=1e-6)
    assert ys[-1, 2] == pytest.approx(5 * 240.0, rel=1e-6)  # all eliminated after 5 years


def test_linear_dose_proportional_and_superposition():
    ts = jnp.linspace(0.0, 120.0, 121)
    pk = linear_pk()
    a = table(q2w(4, 100.0, every=21.0))
    b = table([(7.0, 1 / 48, 50.0), (40.0, 1 / 48, 80.0)])
    ca = concentrations_analytic(pk, a, a.dose_mg, ts)
    np.testing.assert_allclose(concentrations_analytic(pk, a, 3 * a.dose_mg, ts), 3 * ca,
                               rtol=1e-12)
    both = table(q2w(4, 100.0, every=21.0) + [(7.0, 1 / 48, 50.0), (40.0, 1 / 48, 80.0)])
    for fn in (concentrations_analytic, lambda *x: concentrations_ode(*x, TIGHT)):
        cb = fn(pk, b, b.dose_mg, ts)
        np.testing.assert_allclose(fn(pk, both, both.dose_mg, ts), fn(pk, a, a.dose_mg, ts) + cb,
                                   rtol=1e-7, atol=1e-9)


def test_target_mediated_clearance_is_not_dose_proportional():
    spec = pk_model("durvalumab")
    ts = jnp.array([21.0])
    low, high = table(q2w(1, 7.0)), table(q2w(1, 700.0))
    c_low = concentrations_ode(spec.individual(), low, low.dose_mg, ts)
    c_high = concentrations_ode(spec.individual(), high, high.dose_mg, ts)
    assert float(c_high[0] / c_low[0]) > 100 * 1.2  # more than proportional: saturable clearance


def test_vmap_over_patients_matches_loop():
    spec = pk_model("nivolumab")
    weights = jnp.array([50.0, 80.0, 120.0])
    tab = table(q2w(3, 240.0))
    ts = jnp.array([1.0, 30.0, 60.0])

    def one(w):
        return concentrations_ode(spec.individual(w), tab, tab.dose_mg, ts)

    batched = jax.vmap(one)(weights)
    for i, w in enumerate(weights):
        np.testing.assert_allclose(batched[i], one(w), rtol=1e-10)
    assert float(batched[0, 0]) > float(batched[2, 0])  # heavier patients: larger volume


def test_gradient_matches_finite_differences():
    spec = pk_model("nivolumab")
    tab = table(q2w(3, 240.0))
    ts = jnp.array([10.0, 40.0])

    def auc_like(log_cl):
        pk = spec.individual()
        pk = type(pk)(**{**pk.__dict__, "cl": jnp.exp(log_cl)})
        return jnp.sum(concentrations_ode(pk, tab, tab.dose_mg, ts, TIGHT))

    x0 = jnp.log(spec.parameters()["CL"])
    g = jax.grad(auc_like)(x0)
    h = 1e-5
    fd = (auc_like(x0 + h) - auc_like(x0 - h)) / (2 * h)
    assert float(g) == pytest.approx(float(fd), rel=1e-5)
