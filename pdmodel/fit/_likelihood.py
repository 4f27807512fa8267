"""Observation model: training arms from the incidence data, and the log-likelihood.

Each data row is the number of patients ``y`` of ``n`` in one trial arm with an irAE of one
organ (or any organ) in one grade band, under one reporting definition (endpoint). The model
predicts it at the arm's horizon (docs/model.md §5):

* per virtual patient i, organ o, grade ≥ g: drug-related probability ``p_iog`` (§4.3, natural
  course) and background probability ``q_og = 1 − exp(−background_og · T)``;
* counted under endpoint e and term t: ``P_iog = 1 − (1 − κ_e·λ_t·p_iog)(1 − β_e·λ_t·q_og)``
  with ``κ_e`` the fraction of drug events and ``β_e`` of background events that definition
  counts, ``λ_t`` the share of the organ's events reported under a specific term (1 for organ
  groups); "any organ" combines organs within each patient;
* bands: ``P(lo ≤ grade ≤ hi) = P(≥lo) − P(≥hi+1)`` (grade 4/5 are not resolved, so ``3-4``
  and ``3-5`` both use ``P(≥3)``; single grades 3, 4, 5 are not used);
* ``y ~ BetaBinomial(n, μ·φ, (1 − μ)·φ)`` with ``μ`` the population mean of ``P_iog``, ``φ``
  the concentration (between-trial heterogeneity).

Regimens whose doses the source does not print are simulated at the label regimen of their
agents (``REPRESENTATIVE_REGIMEN``); control arms need no simulation (background only).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import gammaln

from ..data import load_incidence
from ..irae import (
    IraeProblem,
    ManagementPolicy,
    Population,
    drug_probability,
    incidence_from_max,
    patient_pd,
)
from ..irae.solvers import (
    RateConstants,
    max_injury_course,
    stage_concentrations,
    stage_effects,
)
from ..regimen import Regimen, flat_step_edges, step_grid
from ..vocab import ENDPOINTS, ORGANS, TERMS
from ._parameters import FitSpec, Params

REPRESENTATIVE_REGIMEN: dict[str, str] = {
    "nivolumab": "nivolumab 3 mg/kg q2w",
    "pembrolizumab": "pembrolizumab 200 mg q3w",
    "ipilimumab": "ipilimumab 3 mg/kg q3w x4",
    "nivolumab;ipilimumab": "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then "
                            "nivolumab 3 mg/kg q2w",
    "atezolizumab": "atezolizumab 1200 mg q3w",
    "tremelimumab": "tremelimumab 10 mg/kg q4w x7, then tremelimumab 10 mg/kg q12w",
}
"""Label regimen used for arms whose source does not print the doses (assumption)."""

HORIZON_DAYS = 365
"""Assumed reporting horizon of every arm (the curated data give no usable follow-up)."""

MEDIAN_TREATMENT_DAYS = 125.0
"""Assumed median treatment duration (exponential stop times): 4.1 months, Brahmer 2024
pooled pembrolizumab safety (man-0043); the atezolizumab label pool (36% > 6 months, man-0035)
implies 4.1 months as well."""


class Observations(NamedTuple):
    """Training rows ``[row]``, stored as tuples (hashable: part of the static design)."""

    row_id: tuple[str, ...]
    regimen: tuple[int, ...]  # index into Design.regimens, -1 for control arms
    organ: tuple[int, ...]  # 0 = any, 1.. = ORGANS
    lo: tuple[int, ...]  # lowest grade of the band, 1..3
    upper: tuple[int, ...]  # grade whose P(>=) is subtracted: 3 for band 1-2, else 0 (none)
    endpoint: tuple[int, ...]  # index into ENDPOINTS
    term: tuple[int, ...]  # index into TERMS, -1 for an organ group
    n: tuple[int, ...]
    y: tuple[int, ...]

    def arrays(self) -> Observations:
        """The same rows with numpy arrays (for indexing)."""
        return Observations(self.row_id, *(np.asarray(x) for x in self[1:]))


class StackedRegimens(eqx.Module):
    """Several regimens padded to common shapes (agents, steps) and stacked on a leading
    ``regimen`` axis, so one ``vmap`` simulates them all and the fit compiles once.

    The PK does not depend on fitted parameters, so every patient's concentrations at the
    solver's stage times are computed here, once (:mod:`pdmodel.irae.solvers._likelihood`).
    """

    edges: jnp.ndarray  # [regimen, step + 1] flat step boundaries, days
    concentration: jnp.ndarray  # [regimen, patient, step, 3, agent] start/mid/end, mg/L
    ec50: jnp.ndarray  # [regimen, agent] serum EC50, mg/L
    targets: jnp.ndarray  # [regimen, agent, target]
    target_index: jnp.ndarray  # [regimen, agent]
    agent_index: jnp.ndarray  # [regimen, agent]


class Design(eqx.Module):
    """Everything fixed during a fit: regimens, their stacked problem, population, data.

    Built by :func:`build_design`; a pytree (arrays are leaves, the rest static), so it can be
    passed to jitted log-densities.

    Attributes
    ----------
    regimens : tuple of str
        Canonical text of every simulated regimen.
    stacked : StackedRegimens
        The regimens padded and stacked on a leading ``regimen`` axis, with precomputed PK.
    population : Population
        The virtual patients every regimen is simulated for (common random numbers).
    obs : Observations
        The training rows: regimen index, organ, grade band, endpoint, term, ``n``, ``y``.
    horizon : int
        Reporting horizon of every arm, days.

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
    >>> design.regimens, design.horizon, design.obs.y
    (('nivolumab 240 mg q2w',), 28, (60, 5))
    """

    regimens: tuple[str, ...] = eqx.field(static=True)
    stacked: StackedRegimens
    population: Population
    obs: Observations = eqx.field(static=True)
    horizon: int = eqx.field(static=True)


@partial(jax.jit, static_argnames="michaelis_menten")
def _population_concentrations(pk, grid, weight_kg, stop_day, *, michaelis_menten: bool):
    """:func:`stage_concentrations` of every patient ``[patient, step, 3, agent]``; the grid is
    an argument, so regimens padded to one shape share one compiled program."""
    return jax.vmap(partial(stage_concentrations, michaelis_menten=michaelis_menten),
                    in_axes=(0, None, 0, 0))(pk, grid, weight_kg, stop_day)


def stack_regimens(regimens: tuple[str, ...], pop: Population, *, days: int,
                   steps_per_day: int, refine: int, models=None) -> StackedRegimens:
    """Prepare ``regimens`` for one batched simulation of ``pop``: flat step grids padded to
    one length, and every patient's concentrations on them."""
    parsed = [Regimen.parse(t) for t in regimens]
    n_agent = max(len(r.agents) for r in parsed)
    n_steps = max(flat_step_edges(r, days, steps_per_day, refine).size - 1 for r in parsed)
    edges, conc, ec50, targets, tidx, aidx = [], [], [], [], [], []
    for r in parsed:
        prob = IraeProblem.build(r, days=days, steps_per_day=steps_per_day, refine=refine,
                                 models=models)
        pad = n_agent - len(r.agents)
        agents = r.agents + ("",) * pad
        grid = step_grid(r, agents, days, steps_per_day, refine, n_steps)
        pk = jax.tree.map(lambda x, pad=pad: jnp.concatenate([x] + [x[:, :1]] * pad, axis=1),
                          prob.patient_pk(pop))  # [patient, agent]
        conc.append(_population_concentrations(pk, grid, pop.weight_kg, pop.stop_day,
                                               michaelis_menten=prob.michaelis_menten))
        edges.append(grid.edges)
        ec50.append(jnp.concatenate([prob.ec50, jnp.ones(pad)]))
        targets.append(jnp.concatenate([prob.targets, jnp.zeros((pad, 3))]))
        tidx.append(jnp.concatenate([prob.target_index, jnp.zeros(pad, int)]))
        aidx.append(jnp.concatenate([prob.agent_index, jnp.zeros(pad, int)]))
    return StackedRegimens(
        edges=jnp.stack(edges), concentration=jnp.stack(conc), ec50=jnp.stack(ec50),
        targets=jnp.stack(targets), target_index=jnp.stack(tidx), agent_index=jnp.stack(aidx))


def _band(gmin: int, gmax: int) -> tuple[int, int] | None:
    if gmin in (1, 2, 3) and gmax == 5:
        return gmin, 0
    if (gmin, gmax) == (3, 4):
        return 3, 0
    if (gmin, gmax) == (1, 2):
        return 1, 3
    return None


def _sim_regimen(row) -> str | None:
    if row["arm_class"] == "control" or not isinstance(row["agents_model"], str):
        return None
    if row["regimen_parsed"] == 1:
        return row["regimen"]
    text = str(row["regimen"]).split(" + gp100")[0]
    try:
        return str(Regimen.parse(text))
    except ValueError:
        return REPRESENTATIVE_REGIMEN[row["agents_model"]]


def select_rows(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows used for fitting: ``fit_default == 1`` with a grade band the model resolves."""
    df = load_incidence() if df is None else df
    df = df[df["fit_default"] == 1].copy()
    keep = [_band(int(a), int(b)) is not None for a, b in zip(df.grade_min, df.grade_max,
                                                              strict=True)]
    return df[keep]


def build_design(
    df: pd.DataFrame | None = None,
    *,
    patients: int = 64,
    days: int = HORIZON_DAYS,
    seed: int = 0,
    steps_per_day: int = 1,
    refine: int = 1,
    tumour: str = "melanoma",
    models=None,
) -> Design:
    """Training design from incidence rows (default: the bundled data).

    Keeps the rows with ``fit_default == 1`` and a grade band the model resolves, simulates
    each distinct regimen (label regimen where the source prints no doses) and samples one
    virtual population for all of them.

    Parameters
    ----------
    df : pandas.DataFrame, optional
        Incidence rows in the bundled format (docs/data.md); ``None`` for the bundled data.
    patients : int
        Virtual patients per regimen.
    days : int
        Simulated days = reporting horizon of every arm.
    seed : int
        Seed of the population's random numbers.
    steps_per_day, refine : int
        Fixed-grid resolution (PD steps a day, geometric sub-steps in each infusion).
    tumour : str
        Tumour type of the population (one of :data:`TUMOURS`).
    models : dict of str to str, optional
        PK model id per agent (default :data:`DEFAULT_MODELS`).

    Returns
    -------
    Design
        Regimens, population and observation rows, ready for :func:`log_density`.

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
    >>> len(design.obs.n), design.population.size
    (2, 4)
    """
    rows = select_rows(df)
    regimens: list[str] = []
    fields = {k: [] for k in Observations._fields}
    for _, r in rows.iterrows():
        text = _sim_regimen(r)
        if text is not None and text not in regimens:
            regimens.append(text)
        lo, upper = _band(int(r.grade_min), int(r.grade_max))
        organ = r.organ_model
        fields["row_id"].append(r.row_id)
        fields["regimen"].append(-1 if text is None else regimens.index(text))
        fields["organ"].append(0 if organ == "any" else 1 + ORGANS.index(organ))
        fields["lo"].append(lo)
        fields["upper"].append(upper)
        fields["endpoint"].append(ENDPOINTS.index(r.endpoint))
        fields["term"].append(TERMS.index(r.organ) if r.term_level == "specific" else -1)
        fields["n"].append(int(r.n))
        fields["y"].append(int(r.events_used))
    obs = Observations(row_id=tuple(fields.pop("row_id")),
                       **{k: tuple(int(x) for x in v) for k, v in fields.items()})
    max_agents = max(len(Regimen.parse(t).agents) for t in regimens)
    pop = Population.sample(jax.random.key(seed), patients, tumour=tumour,
                            median_duration_days=MEDIAN_TREATMENT_DAYS, max_agents=max_agents)
    stacked = stack_regimens(tuple(regimens), pop, days=days, steps_per_day=steps_per_day,
                             refine=refine, models=models)
    return Design(regimens=tuple(regimens), stacked=stacked, population=pop, obs=obs,
                  horizon=days)


def max_injuries(params: Params, design: Design) -> jnp.ndarray:
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


def log_max_injury(params: Params, design: Design) -> jnp.ndarray:
    """``log max_injuries`` flattened ``[regimen·patient·organ]`` (floored at 1e-12, as the
    grade model does) — the features the NUTS emulator learns."""
    return jnp.log(jnp.maximum(max_injuries(params, design), 1e-12)).reshape(-1)


def drug_probabilities(params: Params, design: Design,
                       log_max: jnp.ndarray | None = None) -> jnp.ndarray:
    """Per-patient drug-related probabilities at the horizon ``[regimen, patient, organ, g]``
    (from ``log_max`` = :func:`log_max_injury` when given, else by solving the ODEs)."""
    st = design.stacked
    if log_max is None:
        m = max_injuries(params, design)
    else:
        m = jnp.exp(log_max).reshape(st.ec50.shape[0], design.population.size, len(ORGANS))
    return drug_probability(params.model, m)


def predicted_probability(params: Params, design: Design, p_drug=None) -> jnp.ndarray:
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
    model, obsp = params.model, params.obs
    q = -jnp.expm1(-model.background * design.horizon)  # [organ, grade]
    kappa = obsp.endpoint_drug[o.endpoint]  # [row]
    beta = obsp.endpoint_background[o.endpoint]
    lam = jnp.where(o.term >= 0, obsp.term_fraction[np.maximum(o.term, 0)], 1.0)
    # control arms (regimen -1) have no drug: their drug probability is multiplied by 0
    drug = jnp.asarray(o.regimen >= 0, p_drug.dtype)
    reg = np.maximum(o.regimen, 0)
    k = (kappa * lam * drug)[:, None, None]  # [row, 1, 1]
    b = (beta * lam)[:, None, None]
    rows = np.arange(len(o.n))
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
    mean = jnp.mean(chosen, axis=1)  # [row, g]
    p_lo = mean[rows, o.lo - 1]
    p_up = jnp.where(o.upper > 0, mean[rows, np.maximum(o.upper, 1) - 1], 0.0)
    return jnp.clip(p_lo - p_up, 1e-9, 1.0 - 1e-9)


def _betaln(a, b):
    # jax.scipy.special.betaln loses ~1e-7 relative accuracy here; the gammaln form does not
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def beta_binomial_logpmf(y, n, mu, phi):
    """log BetaBinomial(y | n, μφ, (1 − μ)φ)."""
    a, b = mu * phi, (1.0 - mu) * phi
    log_choose = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    return log_choose + _betaln(y + a, n - y + b) - _betaln(a, b)


def predictive_proportions(rng: np.random.Generator, mu, phi, n: int | np.ndarray):
    """Proportions trial arms of ``n`` patients would report: ``Beta(μφ, (1−μ)φ)`` then
    binomial (``mu`` [draw, ...], ``phi`` [draw])."""
    mu = np.asarray(mu)
    phi = np.asarray(phi).reshape((-1,) + (1,) * (mu.ndim - 1))
    p = rng.beta(np.clip(mu * phi, 1e-9, None), np.clip((1 - mu) * phi, 1e-9, None))
    return rng.binomial(n, p) / n


def reported_incidence(params: Params, problem: IraeProblem, pop: Population,
                       endpoint: str) -> jnp.ndarray:
    """Incidence ``[day, organ_choice, grade]`` as ``endpoint`` reports it (κ_e, β_e of §5.2),
    natural course."""
    e = ENDPOINTS.index(endpoint)
    none = ManagementPolicy.none()
    daily, _ = problem.run(params.model, pop, none)
    return incidence_from_max(params.model, daily.max_injury, pop, none,
                              drug_weight=params.obs.endpoint_drug[e],
                              background_weight=params.obs.endpoint_background[e])


def log_likelihood(params: Params, design: Design) -> jnp.ndarray:
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


def log_density(u: jnp.ndarray, spec: FitSpec, design: Design) -> jnp.ndarray:
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
