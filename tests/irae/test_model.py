"""The irAE model: baseline, biology-driven monotonicity, onset order, rescue, accuracy,
gradients and determinism."""

import functools
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdmodel as pdm
from pdmodel.irae import (
    IraeModel,
    IraeProblem,
    ManagementPolicy,
    Population,
    incidence,
    incidence_array,
    simulate,
)
from pdmodel.vocab import ORGANS
from tests.scipy_reference import lsoda_irae

MODEL = IraeModel()
POP = Population.sample(jax.random.key(7), 400, max_agents=2)
POP_AD = POP.replace(preexisting_ad=1.0)
NIVO_IPI = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"


def final(regimen, grade="3+", organ="any", pop=POP, days=180, **kw):
    inc = incidence(MODEL, regimen, pop, days=days, organ=organ, grade=grade, **kw)
    return float(inc.isel(day=-1))


def test_no_drug_gives_background_only_and_baseline_states():
    reg = "nivolumab 240 mg q2w from day 400"  # first dose after the horizon
    ds = simulate(MODEL, reg, Population.sample(jax.random.key(1), 20), days=100)
    np.testing.assert_allclose(ds.effector, 1.0, atol=1e-12)
    np.testing.assert_allclose(ds.injury, 0.0, atol=1e-12)
    inc = incidence(MODEL, reg, POP, days=100, organ=list(ORGANS), grade=["any", "3+"])
    days = inc.day.values[:, None, None]
    bg = 1 - np.exp(-np.asarray(MODEL.background)[:, [0, 2]][None] * days)
    np.testing.assert_allclose(inc.values, bg, rtol=1e-10)
    assert float(incidence(MODEL, reg, POP, days=100, background=False).max()) == 0.0


def test_more_ctla4_exposure_more_severe_events():
    g3 = [final(f"ipilimumab {d} mg/kg q3w x4") for d in (0.3, 3, 10)]
    assert g3[0] < g3[1] < g3[2]


def test_pd1_exposure_safety_is_flat():
    low, high = final("pembrolizumab 2 mg/kg q3w"), final("pembrolizumab 10 mg/kg q3w")
    assert abs(high - low) < 0.1 * low


def test_combination_exceeds_each_agent():
    combo = final(NIVO_IPI)
    assert combo > final("nivolumab 3 mg/kg q2w") and combo > final("ipilimumab 3 mg/kg q3w x4")


def test_preexisting_autoimmunity_raises_risk():
    for grade in ("any", "3+"):
        assert final("nivolumab 240 mg q2w", grade, pop=POP_AD) > \
            final("nivolumab 240 mg q2w", grade)


@pytest.mark.parametrize("a0", [1.0, 5.0])
def test_preexisting_autoimmunity_never_lowers_an_organs_risk(a0):
    """Natural course, every organ and grade, antibody-negative and positive patients, with
    the default model and a draw of the reference fit (with the expansion capacity in
    absolute folds, autoimmune disease lowered thyroid risk under the fit)."""
    fit = pdm.load_fit(Path(__file__).parents[2] / "fits" / "reference")
    fitted = fit.spec.to_params(jnp.asarray(fit.draws[0])).model
    pop = Population.sample(jax.random.key(3), 200, max_agents=1).replace(a0=a0)
    for model in (MODEL, fitted):
        inc = [np.asarray(incidence(model, "nivolumab 240 mg q2w", p, days=182,
                                    organ=list(ORGANS), grade=["any", "3+"]))
               for p in (pop, pop.replace(preexisting_ad=1.0))]
        assert (inc[1] >= inc[0] - 1e-12).all()
        assert (inc[1][-1] > inc[0][-1] + 1e-6).any()


def test_baseline_autoantibodies_raise_thyroid_risk():
    pos, neg = POP.replace(a0=5.0), POP.replace(a0=1.0)
    assert final("pembrolizumab 200 mg q3w", "any", "thyroid", pop=pos) > \
        1.5 * final("pembrolizumab 200 mg q3w", "any", "thyroid", pop=neg)


def test_pd1_blockade_acts_on_the_thyroid_from_the_first_dose():
    """The thyroid's local PD-1/PD-L1 route (``w_pd[thyroid]``, docs/model.md §4.2): under
    PD-1 blockade thyroid events come earlier than through the T-cell pool alone, and
    ipilimumab alone (no PD-1/PD-L1 occupancy) is untouched by it."""
    thyroid = ORGANS.index("thyroid")
    without = eqx.tree_at(lambda m: m.w_pd, MODEL, MODEL.w_pd.at[thyroid].set(0.0))
    pop = POP.replace(a0=5.0)

    def curve(model, regimen):
        return incidence(model, regimen, pop, days=182, organ="thyroid", grade="any",
                         background=False).values

    route, slow = curve(MODEL, "nivolumab 240 mg q2w"), curve(without, "nivolumab 240 mg q2w")
    assert route[42] > 2 * slow[42]  # six weeks
    early = [c[42] / c[-1] for c in (route, slow)]  # share of 26-week events by week 6
    assert early[0] > 1.5 * early[1]
    np.testing.assert_allclose(curve(MODEL, "ipilimumab 3 mg/kg q3w x4"),
                               curve(without, "ipilimumab 3 mg/kg q3w x4"), rtol=1e-12)


def test_anti_thyroid_antibodies_act_on_the_thyroid_only():
    """The baseline titre is of anti-thyroid antibodies (TgAb/TPOAb): every other organ's
    injury is the same for positive and negative patients (docs/model.md §4.2)."""
    problem = IraeProblem.build("pembrolizumab 200 mg q3w", days=120)
    none = ManagementPolicy.none()
    pop = POP.take(slice(0, 40))
    runs = [np.asarray(problem.run(MODEL, pop.replace(a0=a0), none)[0].max_injury)
            for a0 in (1.0, 5.0)]
    thyroid = ORGANS.index("thyroid")
    others = [o for o in range(len(ORGANS)) if o != thyroid]
    np.testing.assert_array_equal(runs[0][..., others], runs[1][..., others])
    assert (runs[1][:, -1, thyroid] > runs[0][:, -1, thyroid]).all()


def test_pd_l1_blockade_less_toxic_than_pd1():
    assert final("atezolizumab 1200 mg q3w", "any") < final("nivolumab 240 mg q2w", "any")


def test_median_onset_order():
    """Default parameters: skin < GI < liver < lung and endocrine (Weber 2017 pattern)."""
    inc = incidence(MODEL, "nivolumab 240 mg q2w", POP, days=365, organ=list(ORGANS),
                    background=False)
    c = inc.values
    median = {o: int(np.argmax(c[:, i] >= 0.5 * c[-1, i])) for i, o in enumerate(ORGANS)}
    assert median["skin"] < median["gi"] < median["liver"] < median["lung"]
    assert median["liver"] < median["thyroid"] and median["liver"] < median["pituitary"]


def rescue_summary(policy, days=240):
    ds = simulate(MODEL, "ipilimumab 3 mg/kg q3w x4", POP, days=days, policy=policy)
    g3 = final("ipilimumab 3 mg/kg q3w x4", days=days, policy=policy, background=False)
    onset = ds.onset.sel(grade="2+").values
    res = ds.resolution.values
    had = np.isfinite(onset)
    ttr = np.where(np.isfinite(res), res - onset, days - onset)[had]  # censored at the horizon
    return g3, float(np.median(ttr)), ds


def test_rescue_lowers_grade3_and_speeds_resolution_delay_does_opposite():
    none_g3, none_ttr, _ = rescue_summary(ManagementPolicy.none())
    fast_g3, fast_ttr, ds = rescue_summary(ManagementPolicy(delay_days=1.0))
    slow_g3, slow_ttr, _ = rescue_summary(ManagementPolicy(delay_days=14.0))
    assert fast_g3 < slow_g3 < none_g3
    assert fast_ttr < slow_ttr < none_ttr
    summary = pdm.resolution_summary(ds)
    assert summary.sel(organ="gi").resolved > 0.5
    assert summary.sel(organ="gi").median_days_to_resolution < fast_ttr + 30
    treated = np.isfinite(ds.steroid_start.values)
    assert treated.any() and float(ds.steroid.max()) == pytest.approx(1.0)
    first_onset = np.nanmin(ds.onset.sel(grade="2+").values[treated], axis=1)
    assert np.all(ds.steroid_start.values[treated] >= first_onset + 1.0 - 1e-9)


def test_infliximab_escalation_for_refractory_gi():
    policy = ManagementPolicy(steroid_dose=0.3, escalate_after_days=3.0)
    ds = simulate(MODEL, NIVO_IPI, POP, days=120, policy=policy)
    doses = ds.infliximab_doses.values
    assert doses.max() >= 1 and doses.max() <= policy.max_infliximab_doses
    assert float(ds.infliximab.max()) > 10.0  # 5 mg/kg gives ~100 ug/mL peaks


def test_steroid_refractory_colitis_keeps_the_gi_drive_and_gets_infliximab():
    """A refractory patient's GI drive keeps its steroid share (the systemic suppression of E
    acts as in everyone), so the colitis is still at grade 2 at the check: infliximab."""
    policy = ManagementPolicy(hold_at_grade2=False, discontinue_grade=0)
    n = POP.size
    responders, refractory = (POP.replace(z_steroid=jnp.full(n, z)) for z in (8.0, -8.0))
    runs = [simulate(MODEL, NIVO_IPI, p, days=120, policy=policy)
            for p in (responders, refractory)]
    gi = ORGANS.index("gi")
    treated = np.isfinite(runs[0].steroid_start.values)
    np.testing.assert_array_equal(treated, np.isfinite(runs[1].steroid_start.values))
    # nobody on steroids: the same course; on steroids, more GI injury and more infliximab
    np.testing.assert_allclose(runs[1].injury.values[~treated], runs[0].injury.values[~treated],
                               rtol=1e-12)
    # GI injury two days into the course, before any infliximab check (which can then take
    # a refractory course below a responder's)
    day = np.minimum(np.ceil(runs[0].steroid_start.values[treated]).astype(int) + 2, 119)
    inj = [r.injury.values[treated, :, gi][np.arange(len(day)), day] for r in runs]
    assert (inj[1] >= inj[0] * (1 - 1e-9)).all() and (inj[1] > 1.05 * inj[0]).any()
    given = [int((r.infliximab_doses.values > 0).sum()) for r in runs]
    assert given[1] > 2 * given[0] and given[1] >= 5
    # the systemic suppression acts in refractory patients too: their effectors fall below
    # the course without rescue
    natural = simulate(MODEL, NIVO_IPI, refractory, days=120)
    below = runs[1].effector.values[treated] < 0.9 * natural.effector.values[treated]
    assert below.any(axis=1).all()
    # who is refractory: Phi(z_steroid) < steroid_refractory_gi
    none = eqx.tree_at(lambda m: m.steroid_refractory_gi, MODEL, 0.0)
    ds = simulate(none, NIVO_IPI, refractory, days=120, policy=policy)
    np.testing.assert_allclose(ds.injury.values, runs[0].injury.values, rtol=1e-12)


def test_incidence_is_a_probability_and_non_decreasing():
    inc = incidence(MODEL, NIVO_IPI, POP, days=200, organ=["any", *ORGANS],
                    grade=["any", "2+", "3+"])
    v = inc.values
    assert np.all((v >= 0) & (v <= 1))
    assert np.all(np.diff(v, axis=0) >= -1e-12)
    # grades nest, and "any organ" is at least each organ
    assert np.all(v[..., 0] >= v[..., 1] - 1e-12) and np.all(v[..., 1] >= v[..., 2] - 1e-12)
    assert np.all(v[:, :1] >= v[:, 1:] - 1e-12)


def test_any_irae_is_not_the_independence_product():
    inc = incidence(MODEL, NIVO_IPI, POP, days=200, organ=["any", *ORGANS], background=False)
    last = inc.isel(day=-1).values
    independent = 1 - np.prod(1 - last[1:])
    assert last[0] < independent - 0.01  # organs share the patient's immune activation


def test_determinism_with_common_random_numbers():
    a = Population.sample(jax.random.key(3), 50)
    b = Population.sample(jax.random.key(3), 50)
    ia = incidence(MODEL, "nivolumab 240 mg q2w", a, days=60)
    ib = incidence(MODEL, "nivolumab 240 mg q2w", b, days=60)
    np.testing.assert_array_equal(ia.values, ib.values)


SMALL = Population.sample(jax.random.key(11), 6, max_agents=2)
SMALL_PROBLEM = IraeProblem.build(NIVO_IPI, days=60)


@eqx.filter_jit
def small_loss(model):
    inc = incidence_array(model, SMALL_PROBLEM, SMALL, ManagementPolicy.none())
    return jnp.sum(inc[-1] * jnp.array([1.0, 0.5, 0.25]))


@functools.cache
def small_grad():
    return eqx.filter_jit(eqx.filter_grad(small_loss))(MODEL)


def test_gradients_finite_for_every_parameter():
    grads = small_grad()
    for name in MODEL.__dataclass_fields__:
        leaf = getattr(grads, name)
        assert bool(jnp.all(jnp.isfinite(leaf))), name


@pytest.mark.parametrize("name,index", [("g_pd1", None), ("a_ctla4", None), ("k_e", None),
                                        ("susceptibility", 1), ("log_gap3", 2), ("sigma", 0),
                                        ("background", (1, 2)), ("ec50_scale", 2),
                                        ("w_pd", 3), ("e_max", None)])
def test_gradient_matches_finite_differences(name, index):
    leaf = getattr(MODEL, name)
    x0 = float(leaf if index is None else leaf[index])
    g = getattr(small_grad(), name)
    g = float(g if index is None else g[index])

    def f(x):
        new = jnp.asarray(x, float) if index is None else leaf.at[index].set(x)
        return float(small_loss(eqx.tree_at(lambda m: getattr(m, name), MODEL, new)))

    h = 1e-6 * max(1.0, abs(x0))
    fd = (f(x0 + h) - f(x0 - h)) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-5, abs=1e-10)


def patient_args(problem, model, pop, i):
    inputs = problem.patient_inputs(model, pop)
    p = jax.tree.map(lambda x: x[i], inputs)
    return p


@pytest.mark.parametrize("i", [0, 1, 2])
def test_reference_solution_agrees_with_lsoda(i):
    problem = IraeProblem.build(NIVO_IPI, days=120)
    p = patient_args(problem, MODEL, SMALL, i)
    ts = jnp.array([1.0, 10.0, 21.5, 42.0, 63.0, 90.0, 120.0])
    _, ref = problem.reference(MODEL, p, ts)
    reg = pdm.Regimen.parse(NIVO_IPI)
    w = float(p.weight_kg)
    infusions = [[(x.start, x.duration, x.amount) for x in reg.infusions(days=120, weight_kg=w)
                  if x.agent == a] for a in problem.agents]
    pk_list = []
    for j in range(len(problem.agents)):
        pk = jax.tree.map(lambda x, j=j: float(x[j]), p.pk)
        pk_list.append({"CL": pk.cl, "VC": pk.vc, "Q": pk.q, "VP": pk.vp, "TV_EMAX": pk.tv_emax,
                        "TV_IMAX": pk.tv_imax, "TV_T50": pk.tv_t50, "TV_HILL": pk.tv_hill,
                        "VMAX": pk.vmax, "KM": pk.km, "T_FIRST": infusions[j][0][0]})
    theta = {k: np.asarray(getattr(MODEL, k), float) for k in
             ("k_e", "e_max", "k_p", "k_a", "rho_pdl1", "w_pd", "w_ab", "w_ctla4", "k_rep")}
    pd = {"e0": float(p.pd.e0), "a_ctla4": float(p.pd.a_ctla4),
          "g_pd1": float(p.pd.g_pd1), "s": np.asarray(p.pd.susceptibility)}
    ec50 = [float(x) for x in problem.ec50 * MODEL.ec50_scale[problem.target_index]]
    targets = [pdm.get_agent(a).target for a in problem.agents]
    lsoda = lsoda_irae(pk_list, infusions, ec50, targets, pd, theta, np.asarray(ts))
    np.testing.assert_allclose(np.asarray(ref), lsoda, rtol=1e-6, atol=1e-9)


def test_fast_solver_converges_to_reference():
    ts = jnp.arange(1.0, 181.0)
    errors = []
    for spd, refine in ((1, 1), (4, 4)):
        problem = IraeProblem.build(NIVO_IPI, days=180, steps_per_day=spd, refine=refine)
        daily, _ = problem.run(MODEL, SMALL, ManagementPolicy.none())
        err = 0.0
        for i in range(3):
            _, ref = problem.reference(MODEL, patient_args(problem, MODEL, SMALL, i), ts)
            err = max(err, float(jnp.max(jnp.abs(daily.state[i] - ref) / (jnp.abs(ref) + 1e-2))))
        errors.append(err)
    assert errors[1] < 1e-4 and errors[1] < errors[0] / 10


@pytest.mark.parametrize("kwargs,match", [
    ({"organ": "heart"}, "heart"), ({"grade": "4"}, "'4'"), ({"days": 0}, "days"),
    ({"days": 10.5}, "days"), ({"steps_per_day": 0}, "steps_per_day"),
    ({"policy": ManagementPolicy(steroid_dose=-1.0)}, "steroid_dose"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        incidence(MODEL, "nivolumab 240 mg q2w", POP, **{"days": 30, **kwargs})


def test_population_and_model_validation():
    with pytest.raises(ValueError, match="max_agents=2"):
        incidence(MODEL, NIVO_IPI, Population.sample(jax.random.key(0), 5, max_agents=1),
                  days=10)
    with pytest.raises(ValueError, match="preexisting_ad"):
        Population.sample(jax.random.key(0), 5, preexisting_ad=1.5)
    with pytest.raises(ValueError, match="susceptibility"):
        IraeModel(susceptibility=(1.0, 2.0))
    with pytest.raises(ValueError, match="trigger_grade"):
        ManagementPolicy(trigger_grade=1)


def test_agent_effect_is_agent_specific():
    i = list(pdm.AGENTS).index("nivolumab")
    raised = IraeModel(agent_effect=np.eye(8)[i] * 0.5)
    pop = Population.sample(jax.random.key(5), 200)

    def g3(model, regimen):
        return float(incidence(model, regimen, pop, days=120, grade="3+").isel(day=-1))

    assert g3(raised, "nivolumab 240 mg q2w") > 1.2 * g3(MODEL, "nivolumab 240 mg q2w")
    assert g3(raised, "pembrolizumab 200 mg q3w") == g3(MODEL, "pembrolizumab 200 mg q3w")
