"""Observation model and log-likelihood of the training design (:mod:`pdmodel.fit._design`).

The model predicts every row of the design at the arm's horizon (docs/model.md §5):

* per virtual patient i, organ o, grade ≥ g: drug-related probability ``p_iog`` (§4.3, natural
  course) and background probability ``q_og = 1 − exp(−background_og · T)``;
* the arm's backbone b (chemotherapy, ...; none for most arms) adds
  ``r_bog = 1 − exp(−h_bog · T)`` (§5.3);
* counted under endpoint e and term t:
  ``P_iog = 1 − (1 − κ_e·λ_t·p_iog)(1 − β_e·λ_t·q_og)(1 − γ_e·λ_t·r_bog)``
  with ``κ_e`` the fraction of drug events, ``β_e`` of background events and ``γ_e`` of
  backbone events that definition counts, ``λ_t`` the share of the organ's events reported
  under a specific term (1 for organ groups); "any organ" combines organs within each patient;
* bands: ``P(lo ≤ grade ≤ hi) = P(≥lo) − P(≥hi+1)``;
* ``y ~ BetaBinomial(n, μ·φ, (1 − μ)·φ)`` with ``μ`` the population mean of ``P_iog``, ``φ``
  the concentration (between-trial heterogeneity).

The ODE part (:func:`max_injuries`) depends only on the model parameters it lists
(:func:`ode_parameter_index`); its output, as :func:`log_max_injury` features, is what the NUTS
emulator learns, and :func:`features_loglik` is the likelihood given those features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jaxtyping import Array, Float, Int

from ..irae import (
    IraeProblem,
    ManagementPolicy,
    Population,
    drug_probability,
    incidence_from_max,
    patient_pd,
)
from ..irae.solvers import RateConstants, max_injury_course, stage_effects
from ..numerics import LOG_FLOOR, PROB_FLOOR, SHAPE_FLOOR
from ..vocab import ENDPOINTS, ORGANS
from ._design import Design, Observations
from ._parameters import FitSpec, ObservationParams, Params


def max_injuries(params: Params, design: Design) -> Float[Array, "regimen patient organ"]:
    """Running maximum of organ injury at the horizon, natural course
    ``[regimen, patient, organ]`` (the ODE part of the likelihood)."""
    model = params.model
    st = design.stacked
    n_regimen, n_patient = st.concentration.shape[:2]
    # every constant of the loop given per regimen and patient, so that reverse mode sums
    # their gradients once after the loop instead of at every step
    lanes = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_regimen, n_patient) + x.shape[1:]),
                         patient_pd(model, design.population))
    rates = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_regimen, n_patient) + x.shape),
                         RateConstants.of(model))

    def regimen(edges, conc, ec50, targets, tidx, aidx, pd, rates):
        ec50 = ec50 * model.ec50_scale[tidx]
        weight = jnp.exp(model.agent_effect[aidx])

        def patient(conc, pd, rates):
            return max_injury_course(rates, pd, stage_effects(model, conc, ec50, targets, weight),
                                     edges)

        return jax.vmap(patient)(conc, pd, rates)

    return jax.vmap(regimen)(st.edges, st.concentration, st.ec50, st.targets, st.target_index,
                             st.agent_index, lanes, rates)  # [regimen, patient, organ]


ODE_FREE_FIELDS = ("log_gap2", "log_gap3", "background")
"""IraeModel fields that act after the ODE (thresholds, background): ``max_injuries`` does
not depend on them (nor on the observation parameters)."""


def ode_parameter_index(spec: FitSpec) -> tuple[int, ...]:
    """Positions in the unconstrained vector of the parameters ``max_injuries`` depends on."""
    return tuple(k for k, e in enumerate(spec.entries)
                 if e.group == "model" and e.field not in ODE_FREE_FIELDS)


def log_max_injury(params: Params, design: Design) -> Float[Array, " feature"]:
    """``log max_injuries`` flattened ``[regimen·patient·organ]`` (floored at ``LOG_FLOOR``, as
    the grade model does) — the features the NUTS emulator learns."""
    return jnp.log(jnp.maximum(max_injuries(params, design), LOG_FLOOR)).reshape(-1)


def drug_probabilities(
    params: Params, design: Design, log_max: Float[Array, " feature"] | None = None
) -> Float[Array, "regimen patient organ grade"]:
    """Per-patient drug-related probabilities at the horizon ``[regimen, patient, organ, g]``
    (from ``log_max`` = :func:`log_max_injury` when given, else by solving the ODEs)."""
    st = design.stacked
    if log_max is None:
        m = max_injuries(params, design)
    else:
        m = jnp.exp(log_max).reshape(st.ec50.shape[0], design.population.size, len(ORGANS))
    return drug_probability(params.model, m)


def predicted_probability(params: Params, design: Design,
                          p_drug=None) -> Float[Array, " row"]:
    """Model mean ``μ`` of every observation row ``[row]``: the probability a patient of that
    arm has the row's event as its endpoint counts it (docs/model.md §5).

    Parameters
    ----------
    params : Params
        Model and observation parameters (natural scale).
    design : Design
        Training design (:func:`build_design`).
    p_drug : array [regimen, patient, organ, grade], optional
        Precomputed drug-related probabilities at the horizon; ``None`` solves the model.

    Returns
    -------
    jax.Array [row]
        Probabilities in (0, 1), one per row of ``design.obs``.

    Examples
    --------
    >>> import pandas as pd
    >>> import pdmodel as pdm
    >>> rows = pd.DataFrame({  # one arm, two rows (columns as in docs/data.md)
    ...     "row_id": ["r1", "r2"], "organ": ["any", "gi"], "organ_model": ["any", "gi"],
    ...     "grade_min": [1, 3], "grade_max": 5, "n": 100, "events_used": [60, 5],
    ...     "endpoint": "treatment_related", "term_level": "group",
    ...     "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1,
    ...     "agents_model": "nivolumab", "arm_class": "anti-PD-1", "fit_default": 1})
    >>> design = pdm.build_design(rows, patients=4, days=28)
    >>> mu = pdm.predicted_probability(pdm.Params(), design)
    >>> mu.shape, bool(mu[0] > mu[1])  # any irAE is more likely than grade >= 3 colitis
    ((2,), True)
    """
    p_drug = drug_probabilities(params, design) if p_drug is None else p_drug
    o = design.obs.arrays()
    q = -jnp.expm1(-params.model.background * design.horizon)  # [organ, grade]
    r = -jnp.expm1(-params.obs.backbone_hazard() * design.horizon)  # [backbone, organ, grade]
    k, b = _counted_fractions(params.obs, o, p_drug.dtype)
    chosen = _patient_probabilities(p_drug, q, k, b, o)  # [row, patient, g]
    chosen = _with_backbone(chosen, r, _backbone_fractions(params.obs, o, p_drug.dtype), o)
    return _band_probability(jnp.mean(chosen, axis=1), o)


def _backbone_fractions(obsp: ObservationParams, o: Observations,
                        dtype) -> Float[Array, " row"]:
    """Fraction of backbone events each row counts, ``γ_e·λ_t`` (0 without a backbone)."""
    lam = jnp.where(o.term >= 0, obsp.term_fraction[np.maximum(o.term, 0)], 1.0)
    return obsp.endpoint_backbone[o.endpoint] * lam * jnp.asarray(o.backbone >= 0, dtype)


def _with_backbone(chosen: Float[Array, "row patient grade"],
                   r: Float[Array, "backbone organ grade"], g: Float[Array, " row"],
                   o: Observations) -> Float[Array, "row patient grade"]:
    """Add each row's backbone events (independent of the patient's other events):
    ``1 − (1 − P)(1 − γ·r)``, with ``r`` of the row's organ, or of any organ
    (``1 − Π_o(1 − γ·r_o)``)."""
    bb = np.maximum(o.backbone, 0)
    organ = np.maximum(o.organ - 1, 0)
    one = g[:, None] * r[bb, organ]  # [row, g]: one organ
    every = 1.0 - jnp.prod(1.0 - g[:, None, None] * r[bb], axis=1)  # [row, g]: any organ
    extra = jnp.where((o.organ == 0)[:, None], every, one)
    return 1.0 - (1.0 - chosen) * (1.0 - extra[:, None, :])


def _counted_fractions(obsp: ObservationParams, o: Observations, dtype):
    """Fractions of drug events (``κ_e·λ_t``, 0 for control arms) and of background events
    (``β_e·λ_t``) each row's endpoint and term count, ``[row, 1, 1]``."""
    kappa = obsp.endpoint_drug[o.endpoint]  # [row]
    beta = obsp.endpoint_background[o.endpoint]
    lam = jnp.where(o.term >= 0, obsp.term_fraction[np.maximum(o.term, 0)], 1.0)
    # control arms (regimen -1) have no drug: their drug probability is multiplied by 0
    drug = jnp.asarray(o.regimen >= 0, dtype)
    return (kappa * lam * drug)[:, None, None], (beta * lam)[:, None, None]


def _patient_probabilities(p_drug, q, k, b,
                           o: Observations) -> Float[Array, "row patient grade"]:
    """Probability that each virtual patient of each row's arm has an event the row counts,
    by grade threshold ``[row, patient, g]`` (one organ, or any organ)."""
    reg = np.maximum(o.regimen, 0)
    chosen = jnp.zeros((len(o.n), p_drug.shape[1], 3), p_drug.dtype)  # [row, patient, g]
    # one organ: gather only that organ's probabilities
    single = np.flatnonzero(o.organ > 0)
    if single.size:
        oi = o.organ[single] - 1
        p = p_drug[reg[single], :, oi]  # [row, patient, g]
        per = 1.0 - (1.0 - k[single] * p) * (1.0 - b[single] * q[oi][:, None])
        chosen = chosen.at[single].set(per)
    # any organ: combine organs within each patient, 1 − Π(1 − P_o)
    anyrows = np.flatnonzero(o.organ == 0)
    if anyrows.size:
        p = p_drug[reg[anyrows]]  # [row, patient, organ, g]
        kk, bb = k[anyrows][..., None], b[anyrows][..., None]
        none = (1.0 - kk * p) * (1.0 - bb * q[None, None])
        chosen = chosen.at[anyrows].set(1.0 - jnp.prod(none, axis=2))
    return chosen


def _band_probability(mean: Float[Array, "row grade"], o: Observations) -> Float[Array, " row"]:
    """Each row's grade band ``P(≥lo) − P(≥upper)`` from the population means ``[row, g]``,
    kept inside ``[PROB_FLOOR, 1 − PROB_FLOOR]``."""
    rows = np.arange(len(o.n))
    p_lo = mean[rows, o.lo - 1]
    p_up = jnp.where(o.upper > 0, mean[rows, np.maximum(o.upper, 1) - 1], 0.0)
    return jnp.clip(p_lo - p_up, PROB_FLOOR, 1.0 - PROB_FLOOR)


def _betaln(a, b):
    # jax.scipy.special.betaln loses ~1e-7 relative accuracy here; the gammaln form does not
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def beta_binomial_logpmf(y, n, mu, phi):
    """log BetaBinomial(y | n, μφ, (1 − μ)φ)."""
    a, b = mu * phi, (1.0 - mu) * phi
    log_choose = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    return log_choose + _betaln(y + a, n - y + b) - _betaln(a, b)


def predictive_counts(rng: np.random.Generator, mu, phi, n) -> Int[np.ndarray, "draw ..."]:
    """Event counts trial arms of ``n`` patients would report: ``p ~ Beta(μφ, (1−μ)φ)`` (shapes
    floored at ``SHAPE_FLOOR``), then ``Binomial(n, p)``.

    ``mu`` is ``[draw, ...]``, ``phi`` ``[draw]`` and ``n`` broadcasts against ``mu``. Draws
    ``rng.beta`` once, then ``rng.binomial`` once (the fit's posterior predictive and
    :meth:`Fit.incidence` rely on this order for reproducible streams).
    """
    mu = np.asarray(mu)
    phi = np.asarray(phi).reshape((-1,) + (1,) * (mu.ndim - 1))
    p = rng.beta(np.clip(mu * phi, SHAPE_FLOOR, None),
                 np.clip((1 - mu) * phi, SHAPE_FLOOR, None))
    return rng.binomial(n, p)


def reported_incidence(params: Params, problem: IraeProblem, pop: Population,
                       endpoint: str) -> Float[Array, "day organ_choice grade"]:
    """Incidence ``[day, organ_choice, grade]`` as ``endpoint`` reports it (κ_e, β_e of §5.2),
    natural course."""
    e = ENDPOINTS.index(endpoint)
    none = ManagementPolicy.none()
    daily, _ = problem.run(params.model, pop, none)
    return incidence_from_max(params.model, daily.max_injury, pop, none,
                              drug_weight=params.obs.endpoint_drug[e],
                              background_weight=params.obs.endpoint_background[e])


def log_likelihood(params: Params, design: Design) -> Float[Array, " row"]:
    """Pointwise log-likelihood of every observation row ``[row]`` (for LOO as well).

    ``y ~ BetaBinomial(n, μφ, (1 − μ)φ)`` with ``μ`` from :func:`predicted_probability` and
    ``φ`` = ``params.obs.concentration``.

    Parameters
    ----------
    params : Params
        Model and observation parameters (natural scale).
    design : Design
        Training design (:func:`build_design`).

    Returns
    -------
    jax.Array [row]
        Log probability of each row's count ``y`` of ``n`` patients.

    Examples
    --------
    >>> import pandas as pd
    >>> import pdmodel as pdm
    >>> rows = pd.DataFrame({  # one arm, two rows (columns as in docs/data.md)
    ...     "row_id": ["r1", "r2"], "organ": ["any", "gi"], "organ_model": ["any", "gi"],
    ...     "grade_min": [1, 3], "grade_max": 5, "n": 100, "events_used": [60, 5],
    ...     "endpoint": "treatment_related", "term_level": "group",
    ...     "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1,
    ...     "agents_model": "nivolumab", "arm_class": "anti-PD-1", "fit_default": 1})
    >>> design = pdm.build_design(rows, patients=4, days=28)
    >>> ll = pdm.log_likelihood(pdm.Params(), design)
    >>> ll.shape, bool((ll < 0).all())
    ((2,), True)
    """
    mu = predicted_probability(params, design)
    o = design.obs.arrays()
    return beta_binomial_logpmf(jnp.asarray(o.y, float), jnp.asarray(o.n, float), mu,
                                params.obs.concentration)


def log_density(u: Float[Array, " param"], spec: FitSpec, design: Design) -> Float[Array, ""]:
    """Unnormalised log posterior of the unconstrained vector ``u`` — used by every fitter.

    Log prior of ``u`` (including the change of variables) plus the summed log-likelihood of
    ``spec.to_params(u)``; differentiable, jit- and grad-friendly.

    Parameters
    ----------
    u : jax.Array [parameter]
        Unconstrained parameter vector, laid out as ``spec.names``.
    spec : FitSpec
        Fitted parameters and priors.
    design : Design
        Training design (:func:`build_design`).

    Returns
    -------
    jax.Array
        Scalar log density.

    Examples
    --------
    >>> import jax
    >>> import pandas as pd
    >>> import pdmodel as pdm
    >>> rows = pd.DataFrame({  # one arm, two rows (columns as in docs/data.md)
    ...     "row_id": ["r1", "r2"], "organ": ["any", "gi"], "organ_model": ["any", "gi"],
    ...     "grade_min": [1, 3], "grade_max": 5, "n": 100, "events_used": [60, 5],
    ...     "endpoint": "treatment_related", "term_level": "group",
    ...     "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1,
    ...     "agents_model": "nivolumab", "arm_class": "anti-PD-1", "fit_default": 1})
    >>> design = pdm.build_design(rows, patients=4, days=28)
    >>> spec = pdm.FitSpec.default()
    >>> value = jax.jit(pdm.log_density)(spec.prior_location(), spec, design)
    >>> value.shape, bool(jax.numpy.isfinite(value))  # use jax.grad(pdm.log_density) to fit
    ((), True)
    """
    return spec.log_prior(u) + jnp.sum(log_likelihood(spec.to_params(u), design))


# The fit's functions of the unconstrained vector. The spec and design come first, so that
# ``jax.tree_util.Partial(f, spec, design)`` is a function of ``u`` whose design arrays are
# inputs of the compiled programs rather than constants folded into them: designs of one shape
# (another seed, another population) then reuse one compiled program.


def log_density_of(spec: FitSpec, design: Design,
                   u: Float[Array, " param"]) -> Float[Array, ""]:
    """:func:`log_density` ``(u, spec, design)`` with ``u`` last, for
    ``jax.tree_util.Partial(log_density_of, spec, design)`` (the fit's log posterior)."""
    return log_density(u, spec, design)


def log_max_injury_of(spec: FitSpec, design: Design,
                      u: Float[Array, " param"]) -> Float[Array, " feature"]:
    """The exact ODE features at ``u``: :func:`log_max_injury` of ``spec.to_params(u)``, with
    ``u`` last, for ``jax.tree_util.Partial(log_max_injury_of, spec, design)``."""
    return log_max_injury(spec.to_params(u), design)


def _probability_given_features(params: Params, design: Design,
                                f: Float[Array, " feature"]) -> Float[Array, " row"]:
    return predicted_probability(params, design, drug_probabilities(params, design, f))


def features_probability(spec: FitSpec, design: Design):
    """``mu(u, f)``: :func:`predicted_probability` of every row ``[row]`` given the ODE
    features ``f`` (:func:`log_max_injury`) at the unconstrained vector ``u``."""

    def mu(u, f):
        return _probability_given_features(spec.to_params(u), design, f)

    return mu


def features_loglik(spec: FitSpec, design: Design):
    """``loglik(u, f)``: total log-likelihood given the ODE features ``f`` (log max injury)."""
    o = design.obs.arrays()
    y, n = jnp.asarray(o.y, float), jnp.asarray(o.n, float)

    def loglik(u, f):
        p = spec.to_params(u)
        mu = _probability_given_features(p, design, f)
        return jnp.sum(beta_binomial_logpmf(y, n, mu, p.obs.concentration))

    return loglik
