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

from collections.abc import Callable

import equinox as eqx
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
    graded_background,
    incidence_from_max,
    patient_pd,
)
from ..irae.solvers import (
    RateConstants,
    managed_course,
    max_injury_course,
    stage_effects,
)
from ..numerics import LOG_FLOOR, PROB_FLOOR, SHAPE_FLOOR
from ..vocab import ENDPOINTS, ORGANS
from ._design import Design, Observations, StackedRegimens
from ._management import (
    ManagedArms,
    course_inputs,
    managed_attenuation,
    row_fractions,
)
from ._onset import ONSET_ENDPOINT, antibody_mixture, onset_loglik
from ._parameters import FitSpec, ObservationParams, Params
from ._subgroups import SUBGROUP_COVARIATES, SUBGROUP_ENDPOINT


def _reference_model(params: Params):
    """The model the ODE sees: tumour type and setting act after the solve
    (:func:`drug_probabilities`), so the solve uses the reference levels only and does not
    depend on the fitted covariate effects."""
    return eqx.tree_at(lambda m: (m.tumour_effect, m.setting_effect), params.model,
                       (jnp.ones_like(params.model.tumour_effect),
                        jnp.ones_like(params.model.setting_effect)))


def _stacked_max_injuries(model, st, population, knots=None, covariates=None):
    """:func:`max_injury_course` of every stacked regimen and patient: ``[regimen, patient,
    organ]``, or with ``knots`` ``[regimen, knot]`` (step indices) ``[regimen, patient, knot,
    organ]``. ``covariates``: one dict of population covariates per regimen
    (:meth:`Population.replace`; default: the population as it is)."""
    n_regimen, n_patient = st.concentration.shape[:2]
    # every constant of the loop given per regimen and patient, so that reverse mode sums
    # their gradients once after the loop instead of at every step
    if covariates is None:
        lanes = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (n_regimen, n_patient) + x.shape[1:]),
            patient_pd(model, population))
    else:
        lanes = jax.tree.map(lambda *x: jnp.stack(x), *(
            patient_pd(model, population.replace(**c)) for c in covariates))
    rates = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_regimen, n_patient) + x.shape),
                         RateConstants.of(model))

    def regimen(edges, conc, ec50, targets, tidx, aidx, pd, rates, knots):
        ec50 = ec50 * model.ec50_scale[tidx]
        weight = jnp.exp(model.agent_effect[aidx])

        def patient(conc, pd, rates):
            return max_injury_course(rates, pd, stage_effects(model, conc, ec50, targets, weight),
                                     edges, knots)

        return jax.vmap(patient)(conc, pd, rates)

    def solve(st, lanes, rates, knots=None):
        return jax.vmap(regimen)(st.edges, st.concentration, st.ec50, st.targets,
                                 st.target_index, st.agent_index, lanes, rates, knots)

    if knots is not None:  # knots index the full grid: every regimen to the longest
        return solve(st, lanes, rates, knots)
    return by_length(st, solve, lanes, rates)


def by_length(st: StackedRegimens, solve: Callable, *per_regimen):
    """``solve(st, *per_regimen)`` (a pytree with a leading ``regimen`` axis, as are the
    ``per_regimen`` inputs), solved group by group of similar length
    (:meth:`StackedRegimens.length_groups`), each only to its longest member's steps, and put
    back in the regimens' order."""
    groups = st.length_groups()
    if len(groups) == 1 and groups[0][1] == st.edges.shape[-1] - 1:
        return solve(st, *per_regimen)
    outs = []
    for members, steps in groups:
        idx = np.asarray(members)
        outs.append(solve(st.take(members, steps),
                          *jax.tree.map(lambda x, idx=idx: x[idx], per_regimen)))
    order = np.argsort(np.concatenate([np.asarray(m) for m, _ in groups]))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[order], *outs)


def max_injuries(params: Params, design: Design) -> Float[Array, "regimen patient organ"]:
    """Running maximum of organ injury at the horizon, natural course
    ``[regimen, patient, organ]`` (the ODE part of the likelihood)."""
    return _stacked_max_injuries(_reference_model(params), design.stacked, design.population)


def onset_max_injuries(params: Params, design: Design
                       ) -> Float[Array, "regimen patient knot organ"]:
    """Running maximum of organ injury at the onset knots of the onset arms
    ``[onset regimen, onset patient, knot, organ]`` (their own population,
    :attr:`~pdmodel.fit._onset.OnsetDesign.population`; natural course; empty without onset
    rows)."""
    on = design.onset
    if on is None:
        return jnp.zeros((0, design.population.size, 0, len(ORGANS)))
    return _stacked_max_injuries(_reference_model(params), on.stacked, on.population,
                                 on.knot_step)


def subgroup_max_injuries(params: Params, design: Design
                          ) -> Float[Array, "unit patient organ"]:
    """Running maximum of organ injury at the horizon of every subgroup arm ``[unit, patient,
    organ]``: the design's population with the subgroup's covariates (natural course; empty
    without subgroup rows)."""
    sg = design.subgroups
    if sg is None:
        return jnp.zeros((0, design.population.size, len(ORGANS)))
    return _stacked_max_injuries(_reference_model(params), sg.stacked, design.population,
                                 covariates=[SUBGROUP_COVARIATES[g] for g in sg.subgroups])


def managed_arms(params: Params, design: Design) -> ManagedArms:
    """The smooth managed course (:func:`pdmodel.irae.solvers.managed_course`, policy
    :data:`MANAGEMENT_POLICY`) of every management arm and patient ``[unit, patient, ...]``
    (reference tumour and setting)."""
    model = _reference_model(params)
    st = design.management.stacked
    pop = design.population
    n_regimen, n_patient = st.concentration.shape[:2]
    lanes = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_regimen, n_patient) + x.shape[1:]),
                         patient_pd(model, pop))
    rates = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_regimen, n_patient) + x.shape),
                         RateConstants.of(model))
    course = course_inputs(model, pop.z_threshold)

    def regimen(edges, conc, ec50, targets, tidx, aidx, pd, rates):
        ec50 = ec50 * model.ec50_scale[tidx]
        weight = jnp.exp(model.agent_effect[aidx])

        def patient(conc, pd, rates, log_th, weight_kg):
            return managed_course(rates, pd, stage_effects(model, conc, ec50, targets, weight),
                                  edges, course.chain, log_th, model.tau, course.gi_log_theta,
                                  course.gi_spread, weight_kg)

        return jax.vmap(patient)(conc, pd, rates, course.log_theta, pop.weight_kg)

    def solve(st, lanes, rates):
        return jax.vmap(regimen)(st.edges, st.concentration, st.ec50, st.targets,
                                 st.target_index, st.agent_index, lanes, rates)

    return ManagedArms(*by_length(st, solve, lanes, rates))


def management_means(params: Params, design: Design,
                     arms: ManagedArms | None = None) -> Float[Array, " row"]:
    """Model fraction of every management row ``[row]`` (:mod:`pdmodel.fit._management`;
    empty without management rows); ``arms``: :func:`managed_arms` when already solved."""
    if design.management is None or not design.management.rows.row_id:
        return jnp.zeros(0)
    arms = managed_arms(params, design) if arms is None else arms
    return row_fractions(params.model, arms, design.population.z_threshold,
                         design.management.rows)


def arm_attenuation(params: Params, design: Design, arms: ManagedArms | None = None
                    ) -> Float[Array, "regimen patient organ grade"] | None:
    """The managed course's effect on every incidence arm ``[regimen, patient, organ, grade]``
    (:func:`pdmodel.fit._management.managed_attenuation` of the arm's managed unit); None when
    the design's arms run their natural course."""
    man = design.management
    if man is None or man.arm_unit is None:
        return None
    arms = managed_arms(params, design) if arms is None else arms
    return managed_attenuation(params.model, arms)[np.asarray(man.arm_unit)]


def management_log_likelihood(params: Params, design: Design,
                              arms: ManagedArms | None = None) -> Float[Array, " row"]:
    """Log-likelihood of every management row ``[row]``: beta-binomial with the incidence
    rows' concentration ``φ`` (empty without management rows). Solved here, not from the
    :func:`log_max_injury` features: the managed course depends on the grade thresholds."""
    if design.management is None or not design.management.rows.row_id:
        return jnp.zeros(0)
    rows = design.management.rows
    mu = management_means(params, design, arms)
    y, n = (jnp.asarray(np.asarray(x, float), mu.dtype) for x in (rows.y, rows.n))
    return beta_binomial_logpmf(y, n, mu, params.obs.concentration)


ODE_FREE_FIELDS = ("log_gap2", "log_gap3", "background", "tumour_effect", "setting_effect")
"""IraeModel fields that act after the ODE (thresholds, background, covariate effects on
susceptibility): ``max_injuries`` does not depend on them (nor on the observation
parameters)."""


def ode_parameter_index(spec: FitSpec) -> tuple[int, ...]:
    """Positions in the unconstrained vector of the parameters ``max_injuries`` depends on."""
    return tuple(k for k, e in enumerate(spec.entries)
                 if e.group == "model" and e.field not in ODE_FREE_FIELDS)


def log_max_injury(params: Params, design: Design) -> Float[Array, " feature"]:
    """``log max_injuries`` flattened ``[regimen·patient·organ]``, followed by
    ``log onset_max_injuries`` flattened when the design has onset rows (floored at
    ``LOG_FLOOR``, as the grade model does) — the features the NUTS emulator learns."""
    m = max_injuries(params, design).reshape(-1)
    if design.onset is not None:
        m = jnp.concatenate([m, onset_max_injuries(params, design).reshape(-1)])
    if design.subgroups is not None:
        m = jnp.concatenate([m, subgroup_max_injuries(params, design).reshape(-1)])
    return jnp.log(jnp.maximum(m, LOG_FLOOR))


def _feature_shapes(design: Design) -> tuple[tuple[int, ...], ...]:
    """Shapes of the incidence, onset and subgroup parts of :func:`log_max_injury`, in order
    (a part the design lacks has size 0)."""
    n_patient, n_organ = design.population.size, len(ORGANS)
    on, sg = design.onset, design.subgroups
    return ((design.stacked.ec50.shape[0], n_patient, n_organ),
            (0,) if on is None else (len(on.units), on.population.size, len(on.knot_days),
                                     n_organ),
            (0,) if sg is None else (len(sg.units), n_patient, n_organ))


def _feature_part(log_max: Float[Array, " feature"], design: Design, part: int) -> Array:
    """Part ``part`` (0 incidence, 1 onset, 2 subgroups) of the :func:`log_max_injury`
    features, as running maxima in its shape (:func:`_feature_shapes`)."""
    shapes = _feature_shapes(design)
    start = sum(int(np.prod(s)) for s in shapes[:part])
    size = int(np.prod(shapes[part]))
    return jnp.exp(log_max[start:start + size]).reshape(shapes[part])


def _incidence_features(log_max: Float[Array, " feature"], design: Design
                        ) -> Float[Array, "regimen patient organ"]:
    """The incidence arms' part of :func:`log_max_injury` features, as running maxima."""
    return _feature_part(log_max, design, 0)


def onset_incidence(params: Params, design: Design, log_max: Float[Array, " feature"]
                    ) -> Float[Array, "row knot"]:
    """Cumulative incidence at the onset knots of every onset row ``[row, knot]``
    (immune-related definition, natural course, reference tumour and setting) from the
    :func:`log_max_injury` features, each onset patient counted antibody-negative and
    -positive with the population's weights (:func:`~pdmodel.fit._onset.antibody_mixture`)."""
    on = design.onset
    m = _feature_part(log_max, design, 1)
    e = ENDPOINTS.index(ONSET_ENDPOINT)
    none = ManagementPolicy.none()
    days = jnp.asarray(on.knot_days, m.dtype)

    def unit(mu):  # [patient, knot, organ] -> [knot, organ_choice, grade]
        both, weights = antibody_mixture(mu, on.population.a0)
        return incidence_from_max(params.model, both, on.population, none, days=days,
                                  drug_weight=params.obs.endpoint_drug[e],
                                  background_weight=params.obs.endpoint_background[e],
                                  weights=weights)

    inc = jax.vmap(unit)(m)  # [unit, knot, organ_choice, grade]
    r = on.rows
    return inc[np.asarray(r.unit), :, np.asarray(r.organ), np.asarray(r.grade)]


def onset_log_likelihood(params: Params, design: Design,
                         log_max: Float[Array, " feature"] | None = None
                         ) -> Float[Array, " row"]:
    """Log-likelihood of every published median onset of the design ``[row]``
    (:func:`pdmodel.fit._onset.onset_loglik`; empty without onset rows)."""
    if design.onset is None:
        return jnp.zeros(0)
    log_max = log_max_injury(params, design) if log_max is None else log_max
    return onset_loglik(onset_incidence(params, design, log_max), design.onset.rows,
                        design.onset.knot_days, params.model.hypothyroid_lag)


def subgroup_incidence(params: Params, design: Design, log_max: Float[Array, " feature"]
                       ) -> Float[Array, " row"]:
    """Mean incidence of every subgroup row at its horizon ``[row]`` (immune-related
    definition, natural course, reference tumour and setting) from the :func:`log_max_injury`
    features."""
    return _subgroup_incidence_of(params, design, _feature_part(log_max, design, 2))


def subgroup_means(params: Params, design: Design) -> Float[Array, " row"]:
    """:func:`subgroup_incidence` from a solve of the subgroup arms alone (posterior checks)."""
    return _subgroup_incidence_of(params, design, subgroup_max_injuries(params, design))


def _subgroup_incidence_of(params: Params, design: Design,
                           m: Float[Array, "unit patient organ"]) -> Float[Array, " row"]:
    """Mean incidence of every subgroup row from the subgroup arms' running maxima ``m``."""
    sg = design.subgroups
    e = ENDPOINTS.index(SUBGROUP_ENDPOINT)
    none = ManagementPolicy.none()
    horizon = jnp.asarray([u.days for u in sg.units], m.dtype)

    def unit(mu, days):  # [patient, organ] -> [organ_choice, grade]
        return incidence_from_max(params.model, mu[:, None, :], design.population, none,
                                  days=days[None], drug_weight=params.obs.endpoint_drug[e],
                                  background_weight=params.obs.endpoint_background[e])[0]

    inc = jax.vmap(unit)(m, horizon)  # [unit, organ_choice, grade]
    r = sg.rows
    mean = inc[np.asarray(r.unit), np.asarray(r.organ), np.asarray(r.grade)]
    return jnp.clip(mean, PROB_FLOOR, 1.0 - PROB_FLOOR)


def subgroup_log_likelihood(params: Params, design: Design,
                            log_max: Float[Array, " feature"] | None = None
                            ) -> Float[Array, " row"]:
    """Log-likelihood of every subgroup row of the design ``[row]``: beta-binomial with the
    incidence rows' concentration ``φ`` (:mod:`pdmodel.fit._subgroups`; empty without
    subgroup rows)."""
    if design.subgroups is None:
        return jnp.zeros(0)
    log_max = log_max_injury(params, design) if log_max is None else log_max
    rows = design.subgroups.rows
    mu = subgroup_incidence(params, design, log_max)
    y, n = (jnp.asarray(np.asarray(x, float), mu.dtype) for x in (rows.y, rows.n))
    return beta_binomial_logpmf(y, n, mu, params.obs.concentration)


def _arm_cells(o: Observations) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (simulated arm, tumour, setting) cells of the rows ``[cell, 3]`` and the
    cell of every row ``[row]`` (static: rows of one arm share its drug probabilities)."""
    key = np.stack([np.maximum(o.regimen, 0), o.tumour, o.setting], axis=1)
    cells, cell_of_row = np.unique(key, axis=0, return_inverse=True)
    return cells, cell_of_row.reshape(-1)


def _cell_drug_probabilities(
    params: Params, design: Design, log_max: Float[Array, " feature"] | None = None,
    arms: ManagedArms | None = None,
) -> tuple[Float[Array, "cell patient organ grade"], np.ndarray]:
    """:func:`drug_probabilities` once per (arm, tumour, setting) cell, and the cell of every
    row (the likelihood computes each cell once, not once per row); ``arms``:
    :func:`managed_arms` when already solved."""
    model = params.model
    m = max_injuries(params, design) if log_max is None else _incidence_features(log_max, design)
    cells, cell_of_row = _arm_cells(design.obs.arrays())
    factor = model.tumour_effect[cells[:, 1]] * model.setting_effect[cells[:, 2]]  # [cell, o]
    p = drug_probability(model, m[cells[:, 0]] * factor[:, None, :])
    managed = arm_attenuation(params, design, arms)
    if managed is not None:
        p = p * managed[cells[:, 0]]
    return p, cell_of_row


def drug_probabilities(
    params: Params, design: Design, log_max: Float[Array, " feature"] | None = None
) -> Float[Array, "row patient organ grade"]:
    """Per-patient drug-related probabilities of every row's arm at its horizon
    ``[row, patient, organ, g]`` (from ``log_max`` = :func:`log_max_injury` when given, else by
    solving the ODEs). The row's tumour type and setting multiply organ susceptibility, hence
    the running maximum of injury (linear in it, natural course), after the solve:
    ``M · tumour_effect[t, o] · setting_effect[s, o]`` (melanoma and metastatic are the
    reference levels, fixed at 1; docs/model.md §5.2). With managed arms
    (``build_design(managed_arms=True)``) the grades above the management policy's trigger
    grade are then multiplied by :func:`arm_attenuation` (docs/model.md §5.9). Control-arm rows
    get the first arm's values (multiplied by 0 later)."""
    cells, cell_of_row = _cell_drug_probabilities(params, design, log_max)
    return cells[cell_of_row]


def predicted_probability(params: Params, design: Design,
                          p_drug=None) -> Float[Array, " row"]:
    """Model mean ``μ`` of every observation row ``[row]``: the probability a patient of that
    arm has the row's event as its endpoint counts it (docs/model.md §5), before the trial
    effect (:func:`trial_loglik`).

    Parameters
    ----------
    params : Params
        Model and observation parameters (natural scale).
    design : Design
        Training design (:func:`build_design`).
    p_drug : array [row, patient, organ, grade], optional
        Precomputed drug-related probabilities (:func:`drug_probabilities`); ``None`` solves
        the model.

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
    o = design.obs.arrays()
    if p_drug is None:
        p_drug, cell_of_row = _cell_drug_probabilities(params, design)
    else:
        cell_of_row = np.arange(len(o.n))
    return _predicted_from_cells(params, o, p_drug, cell_of_row)


def _predicted_from_cells(params: Params, o: Observations,
                          p_drug: Float[Array, "cell patient organ grade"],
                          cell_of_row: np.ndarray) -> Float[Array, " row"]:
    """:func:`predicted_probability` from the drug probabilities of each row's cell."""
    horizon = jnp.asarray(o.horizon, p_drug.dtype)[:, None, None]  # [row, 1, 1] days
    q = -jnp.expm1(-graded_background(params.model.background)[None]
                   * horizon)  # [row, organ, grade]
    r = -jnp.expm1(-params.obs.backbone_hazard()[np.maximum(o.backbone, 0)]
                   * horizon)  # [row, organ, grade]
    k, b = _counted_fractions(params.obs, o, p_drug.dtype)
    chosen = _patient_probabilities(p_drug, cell_of_row, q, k, b, o)  # [row, patient, g]
    chosen = _with_backbone(chosen, r, _backbone_fractions(params.obs, o, p_drug.dtype), o)
    return _band_probability(jnp.mean(chosen, axis=1), o)


def _backbone_fractions(obsp: ObservationParams, o: Observations,
                        dtype) -> Float[Array, " row"]:
    """Fraction of backbone events each row counts, ``γ_e·λ_t`` (0 without a backbone)."""
    lam = jnp.where(o.term >= 0, obsp.term_fraction[np.maximum(o.term, 0)], 1.0)
    return obsp.endpoint_backbone[o.endpoint] * lam * jnp.asarray(o.backbone >= 0, dtype)


def _with_backbone(chosen: Float[Array, "row patient grade"],
                   r: Float[Array, "row organ grade"], g: Float[Array, " row"],
                   o: Observations) -> Float[Array, "row patient grade"]:
    """Add each row's backbone events (independent of the patient's other events):
    ``1 − (1 − P)(1 − γ·r)``, with ``r`` of the row's organ, or of any organ
    (``1 − Π_o(1 − γ·r_o)``)."""
    rows = np.arange(len(o.n))
    organ = np.maximum(o.organ - 1, 0)
    one = g[:, None] * r[rows, organ]  # [row, g]: one organ
    every = 1.0 - jnp.prod(1.0 - g[:, None, None] * r, axis=1)  # [row, g]: any organ
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


def _patient_probabilities(p_drug, cell_of_row: np.ndarray, q, k, b,
                           o: Observations) -> Float[Array, "row patient grade"]:
    """Probability that each virtual patient of each row's arm has an event the row counts,
    by grade threshold ``[row, patient, g]`` (one organ, or any organ); ``p_drug`` is
    ``[cell, patient, organ, g]`` (row r's cell: ``cell_of_row[r]``) and ``q``
    ``[row, organ, g]``."""
    rows = np.arange(len(o.n))
    organ = np.maximum(o.organ - 1, 0)
    # one organ: that organ's probabilities
    p = p_drug[cell_of_row, :, organ]  # [row, patient, g]
    out = 1.0 - (1.0 - k * p) * (1.0 - b * q[rows, organ][:, None, :])
    # any organ (those rows only): combine organs within each patient, 1 − Π(1 − P_o)
    any_rows = np.flatnonzero(o.organ == 0)
    if any_rows.size:
        kk, bb = k[any_rows, ..., None], b[any_rows, ..., None]
        none = (1.0 - kk * p_drug[cell_of_row[any_rows]]) * (1.0 - bb * q[any_rows][:, None])
        out = out.at[any_rows].set(1.0 - jnp.prod(none, axis=2))
    return out


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


def predictive_counts(rng: np.random.Generator, mu, phi, n,
                      trial_sd=None) -> Int[np.ndarray, "draw ..."]:
    """Event counts trial arms of ``n`` patients would report: with ``trial_sd`` (``[draw]``)
    a new trial's effect first, ``logit μ' = logit μ + σ_trial·z``, ``z ~ N(0, 1)`` one per
    draw and element; then ``p ~ Beta(μφ, (1−μ)φ)`` (shapes floored at ``SHAPE_FLOOR``), then
    ``Binomial(n, p)``.

    ``mu`` is ``[draw, ...]``, ``phi`` ``[draw]`` and ``n`` broadcasts against ``mu``. Draws
    ``rng.normal`` once (with ``trial_sd``), ``rng.beta`` once, then ``rng.binomial`` once
    (the fit's posterior predictive and :meth:`Fit.incidence` rely on this order for
    reproducible streams).
    """
    mu = np.asarray(mu)
    phi = np.asarray(phi).reshape((-1,) + (1,) * (mu.ndim - 1))
    if trial_sd is not None:
        sd = np.asarray(trial_sd).reshape((-1,) + (1,) * (mu.ndim - 1))
        m = np.clip(mu, PROB_FLOOR, 1 - PROB_FLOOR)
        mu = 1.0 / (1.0 + np.exp(-(np.log(m / (1 - m)) + sd * rng.normal(size=mu.shape))))
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


TRIAL_NODES = 9
"""Gauss–Hermite nodes of the adaptive quadrature over each trial's random effect."""

NEWTON_STEPS = 12
"""Newton steps locating each trial's posterior mode of its effect (the quadrature's centre);
each step moves at most :data:`NEWTON_MAX_STEP`. Five unguarded steps overshot to z = 7 for a
trial far from the model (DETERMINE, 2.6 SDs out on flat beta-binomials), which broke a fit's
Laplace Hessian."""

NEWTON_MAX_STEP = 2.0
"""Largest change of a trial's centre in one Newton step (SDs of the trial effect)."""


def _trial_nodes(dtype):
    x, w = np.polynomial.hermite_e.hermegauss(TRIAL_NODES)  # weight exp(-x²/2)
    return jnp.asarray(x, dtype), jnp.asarray(np.log(w / w.sum()), dtype)


def _row_loglik_at(params: Params, design: Design, mu, z):
    """log BetaBinomial of every row with its trial effect at ``z`` (``z`` [row, ...]):
    ``logit μ_row + σ_trial·z``."""
    o = design.obs.arrays()
    logit = jnp.log(mu) - jnp.log1p(-mu)
    shape = (-1,) + (1,) * (z.ndim - 1)
    m = jnp.clip(jax.nn.sigmoid(logit.reshape(shape) + params.obs.trial_sd * z),
                 PROB_FLOOR, 1.0 - PROB_FLOOR)
    y = jnp.asarray(o.y, mu.dtype).reshape(shape)
    n = jnp.asarray(o.n, mu.dtype).reshape(shape)
    return beta_binomial_logpmf(y, n, m, params.obs.concentration)


def _adaptive_nodes(params: Params, design: Design, mu, groups, n_groups: int, weight):
    """Centre ``ẑ`` and scale ``s`` of the quadrature for every group of rows (a trial, or a
    single row): the mode of ``Σ_rows ℓ_r(z) − z²/2`` by Newton's method, and
    ``1/sqrt(−curvature)`` there. Held fixed under differentiation (the integral does not
    depend on them)."""

    def total(z_rows):
        return jnp.sum(weight * _row_loglik_at(params, design, mu, z_rows))

    d1 = jax.grad(total)

    def d2(z_rows):  # rows are independent: the Hessian is diagonal
        return jax.jvp(d1, (z_rows,), (jnp.ones_like(z_rows),))[1]

    def newton(z, _):
        z_rows = z[groups]
        g = jax.ops.segment_sum(d1(z_rows), groups, n_groups) - z
        h = jnp.minimum(jax.ops.segment_sum(d2(z_rows), groups, n_groups) - 1.0, -1.0)
        return jnp.clip(z - jnp.clip(g / h, -NEWTON_MAX_STEP, NEWTON_MAX_STEP), -8.0, 8.0), h

    mu = jax.lax.stop_gradient(mu)
    params = jax.lax.stop_gradient(params)
    z, hs = jax.lax.scan(newton, jnp.zeros(n_groups, mu.dtype), None, length=NEWTON_STEPS)
    return z, 1.0 / jnp.sqrt(-hs[-1])


def _grouped_loglik(params: Params, design: Design, mu, groups, n_groups: int, weight=None):
    """``log ∫ Π_{rows of g} BetaBinomial(y_r | n_r, μ_r(z))^w_r N(z; 0, 1) dz`` for every group
    g of rows ``[group]`` (``w_r`` = ``weight``, default 1; 0 leaves a row out), by
    Gauss–Hermite quadrature centred at the mode (adaptive)."""
    x, logw = _trial_nodes(mu.dtype)
    weight = jnp.ones_like(mu) if weight is None else jnp.asarray(weight, mu.dtype)
    centre, scale = _adaptive_nodes(params, design, mu, groups, n_groups, weight)
    z = centre[:, None] + scale[:, None] * x[None, :]  # [group, node]
    ll = weight[:, None] * _row_loglik_at(params, design, mu, z[groups])  # [row, node]
    per = jax.ops.segment_sum(ll, groups, n_groups)  # [group, node]
    log_normal = -0.5 * (z**2 - x[None, :] ** 2) + jnp.log(scale)[:, None]  # φ(z)·s / φ(x)
    return jax.scipy.special.logsumexp(per + log_normal + logw[None, :], axis=1)


def trial_loglik(params: Params, design: Design, mu=None,
                 weight=None) -> Float[Array, " trial"]:
    """Log-likelihood of each trial's rows together ``[trial]``: the rows of one study share
    a random effect ``z ~ N(0, 1)`` on the logit of their means, ``logit μ + σ_trial·z``
    (``σ_trial`` = ``params.obs.trial_sd``), integrated out by adaptive Gauss–Hermite
    quadrature (:data:`TRIAL_NODES` nodes centred at each trial's mode); given ``z`` the rows
    are independent beta-binomials (docs/model.md §5.2). ``weight`` ``[row]`` (default 1)
    weights each row's term; a row of weight 0 is left out (cross-validation folds)."""
    mu = predicted_probability(params, design) if mu is None else mu
    trials = jnp.asarray(design.obs.trial)
    return _grouped_loglik(params, design, mu, trials, len(design.trials), weight)


def log_likelihood(params: Params, design: Design) -> Float[Array, " row"]:
    """Pointwise log-likelihood of every observation row ``[row]`` (for LOO and checks):
    each row alone, its trial effect integrated out.

    ``y ~ BetaBinomial(n, μ'φ, (1 − μ')φ)`` with ``logit μ' = logit μ + σ_trial·z``, ``μ``
    from :func:`predicted_probability`, ``φ`` = ``params.obs.concentration``. The fit's
    log density uses :func:`trial_loglik` instead (rows of a trial share ``z``), so the sum
    of these is not the total log-likelihood when a trial has several rows.

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
    return row_loglik(params, design, predicted_probability(params, design))


def row_loglik(params: Params, design: Design, mu) -> Float[Array, " row"]:
    """:func:`log_likelihood` given the rows' means ``mu`` ``[row]``: each row alone, its trial
    effect integrated out."""
    rows = jnp.arange(len(design.obs.n))
    return _grouped_loglik(params, design, mu, rows, len(design.obs.n))


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
    return spec.log_prior(u) + total_loglik(spec.to_params(u), design)


def total_loglik(params: Params, design: Design, weight=None,
                 log_max: Float[Array, " feature"] | None = None) -> Float[Array, ""]:
    """Summed log-likelihood of the design: every trial's incidence rows
    (:func:`trial_loglik`, rows weighted by ``weight``, default 1) plus every published median
    onset (:func:`onset_log_likelihood`), subgroup incidence
    (:func:`subgroup_log_likelihood`), from one solve (or the features ``log_max``), and
    management outcome (:func:`management_log_likelihood`, always solved)."""
    return loglik_and_means(params, design, weight, log_max)[0]


def loglik_and_means(params: Params, design: Design, weight=None,
                     log_max: Float[Array, " feature"] | None = None
                     ) -> tuple[Float[Array, ""], Float[Array, " row"]]:
    """:func:`total_loglik` and the rows' model means ``mu`` ``[row]``
    (:func:`predicted_probability`) it computed on the way: one solve of the managed arms
    serves both."""
    log_max = log_max_injury(params, design) if log_max is None else log_max
    arms = None if design.management is None else managed_arms(params, design)
    mu = _probability_given_features(params, design, log_max, arms)
    total = jnp.sum(trial_loglik(params, design, mu, weight))
    if design.onset is not None:
        total = total + jnp.sum(onset_log_likelihood(params, design, log_max))
    if design.subgroups is not None:
        total = total + jnp.sum(subgroup_log_likelihood(params, design, log_max))
    if design.management is not None:
        total = total + jnp.sum(management_log_likelihood(params, design, arms))
    return total, mu


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


def _probability_given_features(params: Params, design: Design, f: Float[Array, " feature"],
                                arms: ManagedArms | None = None) -> Float[Array, " row"]:
    p_drug, cell_of_row = _cell_drug_probabilities(params, design, f, arms)
    return _predicted_from_cells(params, design.obs.arrays(), p_drug, cell_of_row)


def features_probability(spec: FitSpec, design: Design):
    """``mu(u, f)``: :func:`predicted_probability` of every row ``[row]`` given the ODE
    features ``f`` (:func:`log_max_injury`) at the unconstrained vector ``u``."""

    def mu(u, f):
        return _probability_given_features(spec.to_params(u), design, f)

    return mu


def features_loglik(spec: FitSpec, design: Design):
    """``loglik(u, f)``: total log-likelihood given the ODE features ``f`` (log max injury)."""

    def loglik(u, f):
        return total_loglik(spec.to_params(u), design, log_max=f)

    return loglik


def features_loglik_and_means(spec: FitSpec, design: Design):
    """``both(u, f)``: :func:`loglik_and_means` given the ODE features ``f`` (log max injury),
    as one vector ``[1 + row]``: the total log-likelihood, then the rows' means."""

    def both(u, f):
        total, mu = loglik_and_means(spec.to_params(u), design, log_max=f)
        return jnp.concatenate([total[None], mu])

    return both
