"""Fast posterior predictions (pdmodel.fit._predict, Fit.incidence, pdmodel predict): the fast
path against the full solver, both bands, no recompilation, covariates, the CLI contract."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app
from pdmodel.fit import _predict, fit_spec, load_config
from pdmodel.fit._likelihood import predictive_counts, reported_incidence
from pdmodel.fit._management import (
    ManagedArms,
    course_inputs,
    managed_attenuation,
    managed_probability,
)
from pdmodel.irae.solvers import RateConstants, managed_course, stage_effects
from tests.test_scale import CompileCounter

REGIMEN = "nivolumab 240 mg q2w"


def _prior_fit(patients=4, draws=6) -> pdm.Fit:
    """A Fit whose 'posterior' is a cloud around the prior centre (no run folder needed)."""
    cfg = load_config("fits/default.toml")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, patients=patients))
    spec = fit_spec(cfg)
    u = np.asarray(spec.prior_location()) + 0.1 * np.random.default_rng(0).standard_normal(
        (draws, spec.size))
    return pdm.Fit(path=Path("prior"), config=cfg, spec=spec, draws=u, method="prior")


def test_fast_curves_match_the_full_solver():
    """At the computed days the fast path equals reported_incidence (full solver, natural
    course) to float32 rounding; in between it interpolates linearly."""
    fit = _prior_fit()
    m, days = fit.config.model, 60
    reg = pdm.Regimen.parse(REGIMEN)
    pop = _predict.population(jax.random.key(0), 4, max_agents=2, tumour=m.tumour)
    prob = pdm.IraeProblem.build(reg, days=days, steps_per_day=m.steps_per_day, refine=m.refine)
    fast = _predict.curves(fit.spec, fit.draws[:2], reg, pop, days=days,
                           steps_per_day=m.steps_per_day, refine=m.refine)
    exact = np.stack([np.asarray(reported_incidence(fit.spec.to_params(u), prob, pop,
                                                    "immune_related")) for u in fit.draws[:2]])
    knots = _predict.band_knots(days) - 1
    assert fast.shape == exact.shape == (2, days, 7, 3)
    np.testing.assert_allclose(fast[:, knots], exact[:, knots], rtol=1e-4, atol=1e-6)  # float32
    assert np.abs(fast - exact).max() < 0.02


def test_bands_are_monotone_and_nested():
    rng = np.random.default_rng(1)
    mu = np.sort(rng.uniform(0, 0.4, (50, 120)), axis=1)  # rising curves [draw, day]
    b = _predict.bands(mu, np.full(50, 60.0), interval=0.9, arm_size=300)
    for k, v in b.items():
        assert v.shape == (120,) and np.all(np.diff(v) >= -1e-12), k
        assert np.all((v >= 0) & (v <= 1)), k
    assert np.all(b["lower"] <= b["median"]) and np.all(b["median"] <= b["upper"])
    assert np.all(b["ci_lower"] <= b["mean"]) and np.all(b["mean"] <= b["ci_upper"])
    # the arm of 300 adds heterogeneity and binomial noise: wider than the credible band
    assert np.all(b["upper"] - b["lower"] >= b["ci_upper"] - b["ci_lower"] - 1e-9)


def test_predictive_band_is_the_beta_binomial_mixture():
    """The exact mixture quantiles agree with sampled arms (predictive_counts) at one day."""
    rng = np.random.default_rng(2)
    mu = np.sort(rng.uniform(0.05, 0.3, (40, 15)), axis=1)
    phi = rng.uniform(20, 200, 40)
    b = _predict.bands(mu, phi, interval=0.9, arm_size=300)
    counts = predictive_counts(np.random.default_rng(3), np.repeat(mu[:, -1], 5000),
                               np.repeat(phi, 5000), 300) / 300
    lo, hi = np.quantile(counts, [0.05, 0.95])
    assert abs(b["lower"][-1] - lo) < 0.01 and abs(b["upper"][-1] - hi) < 0.01


def test_new_trial_effect_is_integrated_by_gauss_hermite():
    """With a new trial's effect (logit-normal, SD trial_sd) the band's quantiles agree with
    sampled arms, and the default 5-node rule with 30 nodes; equally weighted quantiles of
    the normal (the earlier rule) are too narrow in the tails."""
    rng = np.random.default_rng(4)
    mu = np.sort(rng.uniform(0.1, 0.4, (30, 15)), axis=1)
    phi, sd = rng.uniform(30, 200, 30), rng.uniform(0.3, 0.7, 30)
    b = _predict.bands(mu, phi, interval=0.9, arm_size=300, trial_sd=sd)
    fine = _predict.bands(mu, phi, interval=0.9, arm_size=300, trial_sd=sd, trial_nodes=60)
    # 5 nodes: 0.0045 off here (9 nodes: 0.0015); 9 equally weighted quantiles: 0.009 off
    for k in ("lower", "median", "upper"):
        assert np.abs(b[k] - fine[k]).max() < 0.005, k
    reps = 20_000
    logit = np.log(mu[:, -1] / (1 - mu[:, -1]))
    moved = np.repeat(logit, reps) + np.repeat(sd, reps) * rng.standard_normal(30 * reps)
    counts = predictive_counts(np.random.default_rng(5), 1 / (1 + np.exp(-moved)),
                               np.repeat(phi, reps), 300) / 300
    lo, hi = np.quantile(counts, [0.05, 0.95])
    assert abs(b["lower"][-1] - lo) < 0.007 and abs(b["upper"][-1] - hi) < 0.007  # counts/300


def test_curves_in_chunks_on_threads_are_in_draw_order():
    """Draws simulated in chunks on several threads come back in their order; curves kept at
    the knots and interpolated afterwards equal the daily curves (one compiled program)."""
    fit = _prior_fit(patients=2, draws=2 * _predict.CHUNK)
    m, days = fit.config.model, 30
    reg = pdm.Regimen.parse(REGIMEN)
    pop = _predict.population(jax.random.key(0), 2, max_agents=2, tumour=m.tumour)
    kw = dict(days=days, steps_per_day=m.steps_per_day, refine=m.refine)
    done = []
    both = _predict.curves(fit.spec, fit.draws, reg, pop, progress=done.append, **kw)
    assert done[-1] == len(fit.draws) and len(done) == 2
    second = _predict.curves(fit.spec, fit.draws[_predict.CHUNK:], reg, pop, **kw)
    np.testing.assert_array_equal(both[_predict.CHUNK:], second)
    assert not np.array_equal(both[:_predict.CHUNK], second)
    at_knots = _predict.curves(fit.spec, fit.draws[_predict.CHUNK:], reg, pop, at_knots=True,
                               **kw)
    assert at_knots.shape[1] == len(_predict.band_knots(days))
    np.testing.assert_allclose(_predict.interpolate_days(at_knots, days), second,
                               rtol=1e-6, atol=1e-8)


def test_second_call_recomputes_without_recompiling():
    """Another organ or grade reuses the curves; another covariate or a regimen of the same
    shape reuses the compiled programs (no XLA compilation)."""
    fit = _prior_fit()
    first = fit.incidence(REGIMEN, days=56, grade="3+")
    assert list(first.data_vars) == ["mean", "median", "lower", "upper", "ci_lower",
                                     "ci_upper"]
    with CompileCounter() as c:
        fit.incidence(REGIMEN, days=56, organ="gi", grade="any")
        ad = fit.incidence(REGIMEN, days=56, grade="3+", covariates={"preexisting_ad": 1.0})
        fit.incidence("nivolumab 3 mg/kg q2w", days=56, grade="3+",
                      covariates={"weight_kg": 60.0, "tumour": "nsclc"})
    assert c.count == 0
    assert float(ad["mean"][-1]) > float(first["mean"][-1])  # pre-existing AD raises risk


def test_curve_is_the_dataset_as_arrays():
    """Fit.curve (numpy, what the command line writes) and Fit.incidence (xarray) agree."""
    fit = _prior_fit()
    cur = fit.curve(REGIMEN, days=28, organ="skin", grade="2+")
    ds = fit.incidence(REGIMEN, days=28, organ="skin", grade="2+")
    assert isinstance(cur, pdm.fit.IncidenceCurve) and list(cur.bands) == list(ds.data_vars)
    np.testing.assert_array_equal(cur.day, ds.day.values)
    for k, v in cur.bands.items():
        np.testing.assert_array_equal(v, ds[k].values)
    assert cur.attrs == ds.attrs and cur.attrs["organ"] == "skin"


def test_covariates_policy_and_errors():
    fit = _prior_fit()
    nat = fit.incidence(REGIMEN, days=21, grade="2+", covariates={"setting": "adjuvant"})
    res = fit.incidence(REGIMEN, days=21, grade="2+", policy="default")
    assert nat.attrs["policy"] == "natural" and res.attrs["policy"] == "default"
    adj = _predict.population(jax.random.key(0), 4, max_agents=2, setting="adjuvant")
    met = _predict.population(jax.random.key(0), 4, max_agents=2, setting="metastatic")
    assert np.all(adj.setting == pdm.vocab.SETTING_LEVELS.index("early"))
    assert np.all(adj.stop_day == 365.0) and np.all(np.isfinite(met.stop_day))
    assert np.all(met.setting == pdm.vocab.SETTING_LEVELS.index("metastatic"))
    assert np.all((res["mean"] >= 0) & (res["mean"] <= 1))
    for kw, match in (({"policy": "steroids"}, "policy"), ({"arm_size": 0}, "arm_size"),
                      ({"covariates": {"setting": "pooled"}}, "setting"),
                      ({"covariates": {"tumour": "glioma"}}, "tumour"),
                      ({"draws": 0}, "draws")):
        with pytest.raises(ValueError, match=match):
            fit.incidence(REGIMEN, days=7, **kw)


@pytest.fixture
def prior_fit_cli(monkeypatch):
    fit = _prior_fit()
    monkeypatch.setattr(pdm.fit, "load_fit", lambda path: fit)
    return fit


def test_predict_cli_contract(prior_fit_cli, tmp_path):
    """JSON keeps the README's keys and adds ci_lower, ci_upper, arm_size, draws, policy,
    endpoint; CSV keeps day,mean,lower,upper first; several regimens and --plot."""
    base = ["predict", "--regimen", REGIMEN, "--weeks", "2", "--no-progress"]
    res = CliRunner().invoke(app, base + ["--format", "json", "--arm-size", "100",
                                          "--preexisting-ad", "0.5", "--setting", "metastatic"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert list(doc)[:9] == ["regimen", "organ", "grade", "days", "mean", "lower", "upper",
                             "interval", "fit"]
    assert set(doc) - {"regimen", "organ", "grade", "days", "mean", "lower", "upper",
                       "interval", "fit"} == {"ci_lower", "ci_upper", "arm_size", "draws",
                                               "policy", "endpoint"}
    assert doc["arm_size"] == 100 and len(doc["ci_lower"]) == len(doc["days"]) == 14
    assert all(a <= b for a, b in zip(doc["mean"], doc["mean"][1:], strict=False))
    csv = CliRunner().invoke(app, base)
    assert csv.stdout.splitlines()[0] == "day,mean,lower,upper,ci_lower,ci_upper"
    png = tmp_path / "curves.png"
    two = CliRunner().invoke(app, base + ["--regimen", "pembrolizumab 200 mg q3w", "--plot",
                                          str(png), "--format", "json"])
    assert two.exit_code == 0, two.output
    assert [c["regimen"] for c in json.loads(two.stdout)["curves"]] == [
        REGIMEN, "pembrolizumab 200 mg q3w"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    two_csv = CliRunner().invoke(app, base + ["--regimen", "pembrolizumab 200 mg q3w"])
    assert two_csv.stdout.splitlines()[0].startswith("regimen,day,mean,lower,upper")


@pytest.mark.parametrize("args, option", [
    (["--weight", "-3"], "--weight"), (["--setting", "palliative"], "--setting"),
    (["--tumour", "glioma"], "--tumour"), (["--preexisting-ad", "2"], "--preexisting-ad"),
    (["--antibody-positive", "-0.1"], "--antibody-positive"), (["--arm-size", "0"],
                                                                "--arm-size"),
    (["--policy", "steroids"], "--policy"), (["--plot", "x.pdf"], "--plot"),
])
def test_predict_cli_rejects_bad_values_naming_the_option(args, option):
    res = CliRunner().invoke(app, ["predict", "--regimen", REGIMEN, *args])
    assert res.exit_code == 2 and option in res.output, res.output


def test_default_curves_are_the_fitted_managed_course():
    """policy="default" is the likelihood's smooth managed course (docs/model.md §5.9): at the
    horizon it equals the float64 course of pdmodel.irae.solvers.managed_course (the one the
    managed training arms are fitted with) to float32 rounding; grades up to 2 are the natural
    course's (reached before any steroid; the running maxima differ by the parabola at each
    peak only); grade >= 3 is lower, most for the combination; the guideline policy is another
    form (per-patient solver)."""
    fit = _prior_fit(patients=6, draws=2)
    m, days = fit.config.model, 112
    reg = pdm.Regimen.parse("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4")
    pop = _predict.population(jax.random.key(0), 6, max_agents=2, tumour=m.tumour)
    kw = dict(days=days, steps_per_day=m.steps_per_day, refine=m.refine, at_knots=True)
    managed = _predict.curves(fit.spec, fit.draws, reg, pop, policy="default", **kw)
    natural = _predict.curves(fit.spec, fit.draws, reg, pop, policy="natural", **kw)
    prep = _predict.prepare(reg, pop, days=days, steps_per_day=m.steps_per_day, refine=m.refine)
    e = pdm.vocab.ENDPOINTS.index("immune_related")
    for k, u in enumerate(fit.draws):
        params = fit.spec.to_params(u)
        model = params.model
        course = course_inputs(model, pop.z_threshold)
        ec50 = prep.ec50 * model.ec50_scale[prep.target_index]
        weight = np.exp(model.agent_effect[prep.agent_index])
        out = jax.vmap(lambda conc, pd, lt, kg, model=model, course=course, ec50=ec50,
                       w=weight:
                       managed_course(RateConstants.of(model), pd,
                                      stage_effects(model, conc, ec50, prep.targets, w),
                                      prep.edges, course.chain, lt, model.tau,
                                      course.gi_log_theta, course.gi_spread, kg))(
            prep.conc, pdm.irae.patient_pd(model, pop), course.log_theta, pop.weight_kg)
        p = managed_probability(model, out.natural_max, out.treated_max)
        # the same as the training arms: the natural course times the attenuation
        arms = ManagedArms(out.natural_max[None], out.treated_max[None], out.final_injury[None],
                           out.steroid[None], out.infliximab[None])
        np.testing.assert_allclose(
            p, pdm.irae.drug_probability(model, out.natural_max) * managed_attenuation(model,
                                                                                      arms)[0],
            rtol=1e-12, atol=1e-300)
        reported = pdm.irae.reported_probability(
            model, p[:, None], days=np.array([float(days)]),
            drug_weight=params.obs.endpoint_drug[e],
            background_weight=params.obs.endpoint_background[e]).mean(0)[0]
        np.testing.assert_allclose(managed[k, -1], reported, rtol=2e-3, atol=1e-6)
    grades_1_2 = (slice(None), slice(None), slice(None), slice(0, 2))
    np.testing.assert_allclose(managed[grades_1_2], natural[grades_1_2], atol=2e-3)
    assert np.all(managed[..., 2] <= natural[..., 2] + 1e-6)
    assert managed[:, -1, 0, 2].mean() < 0.9 * natural[:, -1, 0, 2].mean()
