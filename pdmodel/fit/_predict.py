"""Posterior incidence curves, fast: every posterior draw × virtual patient in one program.

The PK is fixed at published values, so a regimen's concentrations are computed once per
population (:func:`prepare`); each posterior draw then only steps the PD states (the
likelihood's solver, :func:`pdmodel.irae.solvers.running_max_injury`) and maps the running
maxima to reported incidence, both in float32 (the normal CDF over ``[patient, day, organ,
grade]`` is 10x faster than in float64, the PD steps ~20%; on the reference fit the curves
differ from float64 by at most 2e-7). Step grids are padded to a
multiple of :data:`STEP_BUCKET` steps and agents to :data:`AGENT_SLOTS`, so regimens of
similar length share one compiled program (:func:`natural_curves`). Bands are computed from the
curves of whole draws (:func:`bands`), so they are smooth and monotone in time.
"""

from __future__ import annotations

import difflib
import functools
import math
from concurrent.futures import as_completed

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int
from scipy.special import gammaln

from ..distributed import core_threads
from ..errors import ParameterError, SimulationError
from ..io import stored_call
from ..irae import (
    IraeProblem,
    ManagementPolicy,
    Population,
    incidence_from_max,
    patient_pd,
    reported_probability,
)
from ..irae.solvers import (
    RateConstants,
    managed_running_max,
    running_max_injury,
    stage_concentrations,
    stage_effects,
)
from ..numerics import SHAPE_FLOOR, first_non_finite
from ..regimen import Regimen, flat_step_edges, step_grid
from ..vocab import ENDPOINTS, GRADES, ORGAN_CHOICES, SETTINGS, TUMOURS, setting_level
from ._design import MEDIAN_TREATMENT_DAYS
from ._management import course_inputs, managed_probability
from ._parameters import FitSpec

STEP_BUCKET = 64
"""Flat solver steps are padded (zero-length steps) to a multiple of this, to share programs."""

AGENT_SLOTS = 2
"""Agent columns of every prepared regimen (more for regimens with more agents)."""

TYPICAL_ARM_SIZE = 300
"""Patients in the 'typical trial arm' of predictive intervals (CheckMate 067 arms: 313-315)."""

CHUNK = 50
"""Posterior draws simulated together (one call of the compiled program)."""

ADJUVANT_DAYS = 365.0
"""Adjuvant setting: treatment stops after one year (CheckMate 238, KEYNOTE-054)."""

PREDICT_SETTINGS = ("metastatic", "adjuvant")
"""Settings a prediction accepts (``None``: treatment continues to the horizon)."""

POLICIES = ("natural", "default", "guideline")
"""``natural``: no immunosuppressant rescue (the counterfactual course); ``default``: the
default management policy as the fit's training arms are simulated under it (the smooth
managed course, :func:`managed_curves`: steroids from a grade-2 onset, infliximab for GI
courses still at grade 2; treatment durations as given, no further holds or stops;
docs/model.md §5.9); ``guideline``: the full per-patient solver under ``ManagementPolicy()``
(also holds infusions from grade 2 and stops them at grade ≥ 3): a what-if the fit was not
calibrated under, which with treatment durations drawn from trials counts their stops for
toxicity a second time."""


class Prepared(eqx.Module):
    """A regimen and population prepared for :func:`natural_curves` (no fitted parameters).

    ``edges`` flat step boundaries ``[step + 1]`` (days); ``conc`` serum concentrations at
    every step's start, middle and end ``[patient, step, 3, agent]`` (mg/L); ``ec50`` (mg/L),
    ``target_index``, ``agent_index`` ``[agent]``; ``targets`` ``[agent, target]`` one-hot;
    ``day_end`` the step ending each day of :func:`band_knots` ``[knot]`` and
    those days ``knot_day``.
    """

    edges: Float[Array, " step1"]
    conc: Float[Array, "patient step 3 agent"]
    ec50: Float[Array, " agent"]
    targets: Float[Array, "agent target"]
    target_index: Int[Array, " agent"]
    agent_index: Int[Array, " agent"]
    day_end: Int[Array, " knot"]
    knot_day: Float[Array, " knot"]


def _concentrations(problem: IraeProblem, pop: Population, grid, *, pad: int, mm: bool
                    ) -> Float[Array, "patient step 3 agent"]:
    """Every patient's concentrations on ``grid``, agent columns padded by ``pad``."""
    pk = jax.tree.map(lambda x: jnp.concatenate([x] + [x[:, :1]] * pad, axis=1),
                      problem.patient_pk(pop))
    return jax.vmap(lambda p, w, s: stage_concentrations(p, grid, w, s, michaelis_menten=mm))(
        pk, pop.weight_kg, pop.stop_day)


def prepare(regimen: Regimen, pop: Population, *, days: int, steps_per_day: int, refine: int,
            models=None) -> Prepared:
    """Concentrations of ``pop`` under ``regimen`` over ``days`` on the padded step grid."""
    prob = IraeProblem.build(regimen, days=days, steps_per_day=steps_per_day, refine=refine,
                             models=models)
    n_agent = max(AGENT_SLOTS, len(prob.agents))
    pad = n_agent - len(prob.agents)
    needed = flat_step_edges(regimen, days, steps_per_day, refine).size - 1
    grid = step_grid(regimen, prob.agents + ("",) * pad, days, steps_per_day, refine,
                     STEP_BUCKET * math.ceil(needed / STEP_BUCKET))
    mm = prob.michaelis_menten
    conc = stored_call(f"concentrations_mm{int(mm)}_pad{pad}",
                       functools.partial(_concentrations, pad=pad, mm=mm), prob, pop, grid)
    edges = np.asarray(grid.edges)
    day_end = np.searchsorted(edges, band_knots(days), side="left") - 1
    return Prepared(
        edges=grid.edges, conc=conc, ec50=jnp.concatenate([prob.ec50, jnp.ones(pad)]),
        targets=jnp.concatenate([prob.targets, jnp.zeros((pad, prob.targets.shape[1]))]),
        target_index=jnp.concatenate([prob.target_index, jnp.zeros(pad, int)]),
        agent_index=jnp.concatenate([prob.agent_index, jnp.zeros(pad, int)]),
        day_end=jnp.asarray(day_end), knot_day=jnp.asarray(band_knots(days), float))


def _f32(tree):
    return jax.tree.map(
        lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _draw_inputs(spec: FitSpec, ui: Float[Array, " param"], prep32: Prepared):
    """One draw's parameters, its model in float32, the regimen's scaled EC50s and agent
    weights, and the rate constants: what every patient's solve of the curves takes."""
    params = spec.to_params(ui)
    model = _f32(params.model)
    ec50 = prep32.ec50 * model.ec50_scale[prep32.target_index]
    weight = jnp.exp(model.agent_effect[prep32.agent_index])
    return params, model, ec50, weight, RateConstants.of(model)


def natural_curves(spec: FitSpec, u: Float[Array, "draw param"], prep: Prepared,
                   pop: Population, endpoint: Int[Array, ""]
                   ) -> Float[Array, "draw knot organ_choice grade"]:
    """Reported incidence of every draw ``u`` (unconstrained) at the days of
    :func:`band_knots`, by organ and grade, natural course, as reporting definition
    ``ENDPOINTS[endpoint]`` counts it (float32)."""

    prep32, pop32 = _f32(prep), _f32(pop)

    def one(ui):
        params, model, ec50, weight, rates = _draw_inputs(spec, ui, prep32)

        def patient(conc, pd):
            eff = stage_effects(model, conc, ec50, prep32.targets, weight)
            return running_max_injury(rates, pd, eff, prep32.edges)[prep32.day_end]

        mx = jax.vmap(patient)(prep32.conc, patient_pd(model, pop32))  # [patient, knot, organ]
        return incidence_from_max(
            model, mx, pop32, ManagementPolicy.none(), days=prep32.knot_day,
            drug_weight=params.obs.endpoint_drug[endpoint].astype(jnp.float32),
            background_weight=params.obs.endpoint_background[endpoint].astype(jnp.float32))

    return jax.vmap(one)(u)


def managed_curves(spec: FitSpec, u: Float[Array, "draw param"], prep: Prepared,
                   pop: Population, endpoint: Int[Array, ""]
                   ) -> Float[Array, "draw knot organ_choice grade"]:
    """As :func:`natural_curves` under the default management policy as the likelihood
    simulates it: the smooth managed course (:func:`pdmodel.irae.solvers.managed_running_max`),
    grades up to the trigger grade from the course without steroids, those above it from the
    course on steroids (:func:`pdmodel.fit._management.managed_probability`, what the managed
    training arms are fitted as; float32)."""

    prep32, pop32 = _f32(prep), _f32(pop)

    def one(ui):
        params, model, ec50, weight, rates = _draw_inputs(spec, ui, prep32)
        course = _f32(course_inputs(model, pop32.z_threshold))  # the policy is float64

        def patient(conc, pd, log_theta, weight_kg):
            eff = stage_effects(model, conc, ec50, prep32.targets, weight)
            return managed_running_max(rates, pd, eff, prep32.edges, course.chain, log_theta,
                                       model.tau, course.gi_log_theta, course.gi_spread,
                                       weight_kg)[prep32.day_end]

        mx = jax.vmap(patient)(prep32.conc, patient_pd(model, pop32), course.log_theta,
                               pop32.weight_kg)
        p = managed_probability(model, mx[:, :, 0], mx[:, :, 1])  # [patient, knot, organ, g]
        return jnp.mean(reported_probability(
            model, p, days=prep32.knot_day,
            drug_weight=params.obs.endpoint_drug[endpoint].astype(jnp.float32),
            background_weight=params.obs.endpoint_background[endpoint].astype(jnp.float32)),
            axis=0)

    return jax.vmap(one)(u)


@eqx.filter_jit
def policy_curves(spec: FitSpec, u: Float[Array, "draw param"], problem: IraeProblem,
                  pop: Population, policy: ManagementPolicy, endpoint: Int[Array, ""]
                  ) -> Float[Array, "draw day organ_choice grade"]:
    """As :func:`natural_curves` under the rescue ``policy`` (the full solver; slower)."""

    def one(ui):
        params = spec.to_params(ui)
        daily, _ = problem.run(params.model, pop, policy)
        return incidence_from_max(params.model, daily.max_injury, pop, policy,
                                  drug_weight=params.obs.endpoint_drug[endpoint],
                                  background_weight=params.obs.endpoint_background[endpoint]
                                  ).astype(jnp.float32)

    return jax.vmap(one)(u)


def population(key, n: int, *, max_agents: int, tumour: str = "melanoma",
               setting: str | None = None, **covariates) -> Population:
    """``n`` virtual patients (:meth:`Population.sample` with ``covariates``). ``setting``
    ``metastatic``: the model's metastatic level, treatment stopping as in the fit's trials
    (exponential, median ``MEDIAN_TREATMENT_DAYS``); ``adjuvant``: the early-disease level,
    one year of treatment; ``None``: metastatic level, treatment to the horizon."""
    if setting is not None and setting not in PREDICT_SETTINGS:
        raise ValueError(f"setting must be one of {PREDICT_SETTINGS} (or none), got "
                         f"{setting!r}" + (" (a data setting, not a treatment plan)"
                                           if setting in SETTINGS else ""))
    if tumour not in TUMOURS:
        raise ValueError(f"tumour must be one of {TUMOURS}, got {tumour!r}")
    known = COVARIATES - {"tumour", "setting"}
    for name in covariates:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise ParameterError(f"unknown covariate; expected one of {sorted(COVARIATES)}"
                                 + (f" (did you mean {close[0]!r}?)" if close else ""), name)
    median = MEDIAN_TREATMENT_DAYS if setting == "metastatic" else None
    pop = Population.sample(key, n, max_agents=max_agents, tumour=tumour,
                            setting=setting_level(setting or "metastatic"),
                            median_duration_days=median, stratified=True, **covariates)
    return pop.replace(stop_day=ADJUVANT_DAYS) if setting == "adjuvant" else pop


def curves(spec: FitSpec, draws: Float[np.ndarray, "draw param"], regimen: Regimen,
           pop: Population, *, days: int, steps_per_day: int, refine: int, models=None,
           endpoint: str = "immune_related", policy: str = "natural", at_knots: bool = False,
           progress=None) -> Float[np.ndarray, "draw day organ_choice grade"]:
    """Reported incidence ``[draw, day, organ_choice, grade]`` at every draw (float32),
    :data:`CHUNK` draws per call (``progress(done)`` after each). The natural course is
    computed at :func:`band_knots` (daily for two weeks, then weekly) and interpolated
    linearly in between (benchmarks/predict.py gives the error against every day);
    ``at_knots``: only at those days ``[draw, knot, organ_choice, grade]`` (interpolate with
    :func:`interpolate_days`)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
    e = jnp.asarray(ENDPOINTS.index(endpoint))
    if policy in ("natural", "default"):
        prep = prepare(regimen, pop, days=days, steps_per_day=steps_per_day, refine=refine,
                       models=models)
        name, solve = (("natural_curves", natural_curves) if policy == "natural"
                       else ("managed_curves", managed_curves))

        def run(u):
            inc = np.asarray(stored_call(name, solve, spec, u, prep, pop, e))
            return inc if at_knots else interpolate_days(inc, days)
    else:
        prob = IraeProblem.build(regimen, days=days, steps_per_day=steps_per_day,
                                 refine=refine, models=models)

        def run(u):
            inc = np.asarray(policy_curves(spec, u, prob, pop, ManagementPolicy(), e))
            return inc[:, band_knots(days) - 1] if at_knots else inc

    n = len(draws)
    size = min(CHUNK, n)
    padded = np.concatenate([draws, np.repeat(draws[-1:], -n % size, axis=0)])
    starts = range(0, len(padded), size)
    # chunks on as many threads as cores: one compiled call runs its scan on one core
    with core_threads(len(starts)) as pool:
        pending = {pool.submit(lambda i: np.asarray(run(jnp.asarray(padded[i:i + size]))), i): i
                   for i in starts}
        out, done = {}, 0
        for future in as_completed(pending):
            out[pending[future]] = future.result()
            done += size
            if progress is not None:
                progress(min(done, n))
    result = np.concatenate([out[i] for i in starts])[:n]
    where = first_non_finite(result)
    if where is not None:
        k, d, o, g = where
        raise SimulationError(f"incidence of {str(regimen)!r} is not finite from day {d + 1} "
                              f"(posterior draw {k}, organ {ORGAN_CHOICES[o]}, grade "
                              f"{GRADES[g]}): the solver failed for this draw")
    return result


COVARIATES = frozenset({"weight_kg", "weight_cv", "preexisting_ad", "a0", "a0_positive_fraction",
                        "a0_positive", "tumour", "setting"})
"""Covariates of a prediction (:meth:`Fit.incidence`): keyword arguments of
:meth:`Population.sample` plus ``setting``."""


def observation_draws(spec: FitSpec, u: Float[Array, "draw param"]
                      ) -> tuple[Float[np.ndarray, " draw"], Float[np.ndarray, " draw"]]:
    """Beta-binomial concentration φ and SD of the trial effect (logit scale) of every draw
    ``u`` (one compiled program)."""
    phi, sd = stored_call("observation_draws", _observation_draws, spec, jnp.asarray(u))
    return np.asarray(phi), np.asarray(sd)


def _observation_draws(spec: FitSpec, u: Float[Array, "draw param"]):
    obs = jax.vmap(lambda x: spec.to_params(x).obs)(u)
    return obs.concentration, obs.trial_sd


TRIAL_NODES = 5
"""Gauss–Hermite nodes standing for a new trial's effect in predictive bands (probabilists'
rule). On the reference fit the band is within 0.0014 of a converged (60-node) rule (9
nodes: 0.0002), an order below the Monte Carlo error of the default draws (0.006-0.022,
benchmarks/predict.py), at half the cost of 9 nodes; 9 equally weighted normal quantiles
(the rule before) were up to 0.010 off, too narrow in the tails. At an extreme
heterogeneity (trial SD 0.9, φ ≈ 900) 5 nodes are within 0.015 (9 nodes: 0.007)."""


def with_trial_effect(mu: Float[np.ndarray, "draw day"], sd: Float[np.ndarray, " draw"],
                      nodes: int = TRIAL_NODES
                      ) -> tuple[Float[np.ndarray, "draw_node day"], Float[np.ndarray, " node"]]:
    """Draws of a new trial's expected proportion: every draw's curve moved on the logit scale
    by ``sd·z`` at the ``nodes`` Gauss–Hermite nodes ``z`` of ``N(0, 1)``
    (docs/model.md §5.2), ``[draw × node, day]`` (node fastest), and the nodes' weights (sum
    1). Curves stay monotone in time."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    m = np.clip(np.asarray(mu, np.float64), 1e-12, 1 - 1e-12)
    logit = np.log(m) - np.log1p(-m)
    moved = logit[:, None] + np.asarray(sd, np.float64)[:, None, None] * z[None, :, None]
    return (1.0 / (1.0 + np.exp(-moved))).reshape(-1, mu.shape[-1]), w / w.sum()


def _log_pmf0(a: Float[np.ndarray, "comp knot"], b: Float[np.ndarray, "comp knot"],
              n: int) -> Float[np.ndarray, "comp knot"]:
    """``log P(k = 0)`` of ``BetaBinomial(n, a, b)``."""
    return gammaln(n + b) + gammaln(a + b) - gammaln(b) - gammaln(n + a + b)


KNOT_GROUP = 16
"""Knots whose predictive CDFs are computed together, up to one count (:func:`_mixture_cdf`)."""


def _mixture_cdf(mu: Float[np.ndarray, "comp knot"], phi: Float[np.ndarray, " comp"],
                 n: int, top: float, weight: Float[np.ndarray, " comp"]
                 ) -> Float[np.ndarray, "knot k"]:
    """CDF of the count of an arm of ``n`` patients at ``k = 0..K`` by knot, mixed over the
    components with ``weight`` (sum 1): ``BetaBinomial(n, μφ, (1−μ)φ)`` by the float32
    recurrence in ``k``
    (numpy, whose cumulative sums are linear-time on the CPU). Counts stop at a ``K ≤ n``
    (per :data:`KNOT_GROUP` knots) where the CDF has reached ``top`` at every knot, so
    quantiles up to ``top`` are exact (later counts are 1)."""
    a = np.clip(mu * phi[:, None], SHAPE_FLOOR, None)
    b = np.clip((1 - mu) * phi[:, None], SHAPE_FLOOR, None)
    log0 = _log_pmf0(a, b, n).astype(np.float32)
    # a count the mixture rarely exceeds: mean + 6 SD of the widest component that can matter
    # (the lightest components, together under a tenth of 1 - top, cannot move the quantile;
    # checked below)
    sd = np.sqrt(n * mu * (1 - mu) * (n + phi[:, None]) / (1 + phi[:, None]))
    light = np.cumsum(np.sort(weight)) <= (1 - top) / 10
    major = weight > (np.sort(weight)[light].max() if light.any() else -1.0)
    reach = np.ceil(n * mu[major] + 6 * sd[major]).max(axis=0) + 8
    out = np.ones((mu.shape[1], n + 1), np.float32)

    def group(g):
        knots = slice(g, g + KNOT_GROUP)
        for top_k in (int(min(n, reach[knots].max())), n):
            cdf = _group_cdf(a[:, knots], b[:, knots], log0[:, knots], weight, n, top_k)
            if top_k == n or cdf[:, -1].min() >= top + 1e-5:
                break
        out[knots, :top_k + 1] = cdf

    groups = range(0, mu.shape[1], KNOT_GROUP)
    with core_threads(len(groups)) as pool:
        list(pool.map(group, groups))  # numpy releases the GIL: one group per core
    return out


def _group_cdf(a, b, log0, weight, n: int, top_k: int) -> Float[np.ndarray, "knot k"]:
    """:func:`_mixture_cdf` for some knots at ``k = 0..top_k``."""
    k = np.arange(top_k, dtype=np.float32)
    logpmf = np.empty(a.shape + (top_k + 1,), np.float32)
    logpmf[..., 0] = log0
    step = logpmf[..., 1:]  # log pmf(k+1)/pmf(k), in place
    np.add(a.astype(np.float32)[..., None], k, out=step)
    np.divide(step, b.astype(np.float32)[..., None] + (n - 1 - k), out=step)
    np.multiply(step, (n - k) / (k + 1), out=step)
    np.log(step, out=step)
    np.cumsum(logpmf, axis=-1, out=logpmf)
    np.exp(logpmf, out=logpmf)
    return np.cumsum(np.einsum("c,ckn->kn", weight.astype(np.float32), logpmf), axis=-1)


def _cdf_quantile(cdf: Float[np.ndarray, "day k"], q: float) -> Float[np.ndarray, " day"]:
    """Continuous quantile of a count with CDF ``cdf`` (each count spread evenly over
    ``[k − ½, k + ½]``); monotone in the day when the CDFs are."""
    cdf = np.minimum(np.maximum.accumulate(cdf, axis=1), 1.0)
    k = np.minimum((cdf < q).sum(axis=1), cdf.shape[1] - 1)
    rows = np.arange(cdf.shape[0])
    below = np.where(k > 0, cdf[rows, np.maximum(k - 1, 0)], 0.0)
    mass = np.maximum(cdf[rows, k] - below, 1e-12)
    return np.clip(k - 0.5 + np.clip((q - below) / mass, 0.0, 1.0), 0.0, cdf.shape[1] - 1)


def bands(mu: Float[np.ndarray, "draw day"], phi: Float[np.ndarray, " draw"], *,
          interval: float, arm_size: int,
          trial_sd: Float[np.ndarray, " draw"] | None = None, trial_nodes: int = TRIAL_NODES
          ) -> dict[str, Float[np.ndarray, " day"]]:
    """Posterior mean, central ``interval`` credible band of the population incidence
    (``ci_lower``, ``ci_upper``: quantiles of the draws' curves) and of the proportion an arm of
    ``arm_size`` patients reports (``lower``, ``median``, ``upper``: quantiles of the
    beta-binomial predictive mixed over draws, computed exactly at :func:`band_knots` and
    interpolated linearly between them).

    Every draw's curve rises with time and the predictive is stochastically increasing in
    it, so all bands are monotone in time; none carries sampling noise from the arm. With
    ``trial_sd`` the arm is a new trial: its effect is mixed in (:func:`with_trial_effect`).
    """
    a = (1 - interval) / 2
    mu = np.asarray(mu, np.float64)
    ci_lo, ci_hi = np.quantile(mu, [a, 1 - a], axis=0)
    days = np.arange(1, mu.shape[1] + 1)
    knots = band_knots(mu.shape[1]) - 1
    phi = np.asarray(phi, np.float64)
    arm = mu[:, knots]
    if trial_sd is not None:
        arm, node_w = with_trial_effect(arm, trial_sd, trial_nodes)
        phi, weight = np.repeat(phi, trial_nodes), np.tile(node_w, len(phi))
    else:
        weight = np.ones(len(arm))
    cdf = _mixture_cdf(arm, phi, int(arm_size), 1 - a, weight / weight.sum())
    lo, med, hi = (np.interp(days, knots + 1, _cdf_quantile(cdf, q) / arm_size)
                   for q in (a, 0.5, 1 - a))
    return {"mean": mu.mean(0), "median": med, "lower": lo, "upper": hi, "ci_lower": ci_lo,
            "ci_upper": ci_hi}


def interpolate_days(at_knots: Float[np.ndarray, "draw knot *rest"], days: int
                     ) -> Float[np.ndarray, "draw day *rest"]:
    """Curves at :func:`band_knots` interpolated linearly to days ``1..days``."""
    return np.einsum("dk...,tk->dt...", at_knots, _interpolation(days))


@functools.cache
def _interpolation(days: int) -> Float[np.ndarray, "day knot"]:
    """Weights of linear interpolation from :func:`band_knots` to days ``1..days``."""
    return np.stack([np.interp(np.arange(1, days + 1), band_knots(days), row)
                     for row in np.eye(len(band_knots(days)))], axis=1).astype(np.float32)


def band_knots(days: int) -> Int[np.ndarray, " knot"]:
    """Days at which curves and predictive quantiles are computed: daily for two weeks, then
    weekly, and the last day (linear in between keeps them monotone; the curves bend on a
    scale of weeks)."""
    return np.unique(np.concatenate([np.arange(1, min(days, 14) + 1),
                                     np.arange(14, days + 1, 7), [days]]))
