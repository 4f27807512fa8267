"""Posterior checks: the model's median time to onset next to each published median, and each
fitted subgroup incidence next to its predictive interval (:func:`subgroup_check`), and the
same for every management outcome (:func:`management_check`).

The published medians are in the likelihood (:mod:`pdmodel.fit._onset`, on the design's
virtual population at the knot days); this check recomputes them daily on a larger population
with the posterior draws. For every published median onset of a modelled agent and organ in the
timing table, the model's median onset is the first day on which the cumulative incidence
(immune-related definition, natural course, the agent's label regimen) reaches half its value at
the horizon: the median time to onset among patients who had the event, as trials report it.
A hypothyroidism row's median is the thyroiditis median plus each draw's
``IraeModel.hypothyroid_lag``.

Each row gives the posterior median of the model's median and its 90% credible interval, the
ratio published / model (the criterion is ×/÷1.5), and, where the source prints the number of
events ``k``, the 90% predictive interval of the median of ``k`` event times (the sampling
distribution of the sample median: its CDF at ``t`` is ``I_F(t)(j, k − j + 1)``, ``j = ⌈k/2⌉``,
``F`` the model's onset distribution, mixed over the draws). Where the same source prints the
minimum and maximum, ``within_range`` says if the model's median lies between them.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Float
from scipy.special import betainc

from ..data import ASSUMED_REGIMENS, load_timing
from ..distributed import chunk_map
from ..irae import IraeProblem, Population
from ..regimen import Regimen
from ..vocab import GRADES, ORGAN_CHOICES
from ._design import MEDIAN_TREATMENT_DAYS, Design
from ._likelihood import (
    management_means,
    predictive_counts,
    reported_incidence,
    subgroup_means,
)
from ._management import MEASURES
from ._onset import ONSET_ENDPOINT
from ._parameters import FitSpec

ONSET_TOLERANCE = 1.5
"""A model median within ×/÷ this factor of the published median passes (issue 14's target)."""


def _lax_map(f):
    """``f`` over the leading axis, one draw after another in one compiled call."""
    return jax.jit(lambda us: jax.lax.map(f, us))


def _per_core(draws) -> int:
    """Draws per chunk: one chunk per core (:func:`pdmodel.distributed.chunk_map`)."""
    return math.ceil(len(draws) / (os.cpu_count() or 1))


def onset_targets(timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per published median onset (weeks) of a modelled agent and organ, with the
    regimen its agent is simulated with (:func:`onset_regimen`): ``thyroid_phase``
    (``hypothyroidism``, ``thyroiditis`` or empty: docs/data.md §2), ``n_events``
    (``k``; NaN when not printed) and the minimum–maximum printed by the same source for the
    same agent, organ, phase and grade (``range_low_weeks``/``range_high_weeks``; NaN when
    not)."""
    t = load_timing() if timing is None else timing
    t = t[(t.fit_default == 1) & (t.quantity == "onset")
          & t.statistic.isin(["median", "min", "max"]) & (t.grade_min <= 3)]
    known = {agents for agents, backbone in ASSUMED_REGIMENS if backbone is None}
    t = t[t.agents_model.astype(str).isin(known) & (t.organ_model.fillna("") != "")]
    phase = (t["thyroid_phase"] if "thyroid_phase" in t else pd.Series("", index=t.index))
    t = t.assign(thyroid_phase=phase.fillna("").astype(str))
    out = []
    for (study, agent, organ, gmin, phase), g in t.groupby(
            ["study", "agents_model", "organ_model", "grade_min", "thyroid_phase"], sort=False):
        stats = dict(zip(g.statistic, g.value_weeks, strict=False))
        lo, hi = stats.get("min", np.nan), stats.get("max", np.nan)
        for _, m in g[g.statistic == "median"].iterrows():
            out.append({"row_id": m.row_id, "study": study, "agent": agent, "organ": organ,
                        "thyroid_phase": phase,
                        "grade": "any" if gmin <= 1 else ("2+" if gmin == 2 else "3+"),
                        "regimen": onset_regimen(agent),
                        "n_events": float(m.n_events) if pd.notna(m.n_events) else np.nan,
                        "published_median_weeks": float(m.value_weeks),
                        "range_low_weeks": float(lo), "range_high_weeks": float(hi)})
    return pd.DataFrame(out, columns=["row_id", "study", "agent", "regimen", "organ",
                                      "thyroid_phase", "grade", "n_events",
                                      "published_median_weeks", "range_low_weeks",
                                      "range_high_weeks"])


def onset_regimen(agent: str) -> str:
    """The regimen an agent's onset rows are simulated with: its label regimen
    (:data:`pdmodel.data.ASSUMED_REGIMENS`, no backbone), as in the onset check."""
    return ASSUMED_REGIMENS[agent, None]


def sample_median_quantiles(inc: Float[np.ndarray, "draw day"], k: int,
                            q: tuple[float, ...] = (0.05, 0.95)) -> np.ndarray:
    """Quantiles (days, 1-based) of the median of ``k`` event times drawn from the onset
    distribution ``F = inc / inc[:, -1]`` of each draw, mixed over the draws."""
    final = np.maximum(inc[:, -1:], 1e-300)
    f = np.clip(inc / final, 0.0, 1.0)
    j = math.ceil(k / 2)
    cdf = betainc(j, k - j + 1, f).mean(axis=0)  # P(sample median <= day)
    return np.array([1 + int(np.argmax(cdf >= p)) if (cdf >= p).any() else len(cdf)
                     for p in q], dtype=float)


def delayed(inc: Float[np.ndarray, "draw day"], lag: Float[np.ndarray, " draw"]
            ) -> np.ndarray:
    """Each draw's cumulative incidence (day ``t`` = 1, 2, ...) delayed by its ``lag`` days
    (rounded; 0 before it), over the days ``inc`` covers plus the longest lag: the onset
    course of hypothyroidism from that of thyroiditis."""
    shift = np.rint(np.asarray(lag)).astype(int)
    days = np.arange(1, inc.shape[1] + shift.max(initial=0) + 1)
    src = days[None, :] - shift[:, None]  # day of the thyroiditis course, 1-based
    out = np.take_along_axis(inc, np.clip(src - 1, 0, inc.shape[1] - 1), axis=1)
    return np.where(src >= 1, out, 0.0)


def onset_check(spec: FitSpec, draws: Float[np.ndarray, "draw param"], *, days: int = 730,
                patients: int = 128, seed: int = 0, steps_per_day: int = 1, refine: int = 1,
                tumour: str = "melanoma", timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """The model's median onset (weeks: posterior median and 5–95%) next to every published
    median of :func:`onset_targets`, with ``ratio`` (published / model), ``within_1_5``
    (``ratio`` within ×/÷1.5), the predictive 5–95% of the median of ``n_events`` event times
    and ``in_predictive`` (published median inside it), and ``within_range`` (model median
    inside the source's printed minimum–maximum; NaN without one)."""
    targets = onset_targets(timing)
    if targets.empty:
        return targets
    lag = np.asarray(jax.vmap(lambda u: spec.to_params(u).model.hypothyroid_lag)(
        jnp.asarray(draws)))  # [draw], days
    rows = {}
    for agent, group in targets.groupby("agent", sort=False):
        reg = Regimen.parse(onset_regimen(agent))
        problem = IraeProblem.build(reg, days=days, steps_per_day=steps_per_day, refine=refine)
        pop = Population.sample(jax.random.key(seed), patients, tumour=tumour,
                                max_agents=len(reg.agents), stratified=True,
                                median_duration_days=MEDIAN_TREATMENT_DAYS)

        def curve(u, problem=problem, pop=pop):
            return reported_incidence(spec.to_params(u), problem, pop, ONSET_ENDPOINT)

        inc = chunk_map(_lax_map(curve), draws, size=_per_core(draws))  # [draw, day, o, g]
        first = np.argmax(inc >= 0.5 * inc[:, -1:], axis=1) + 1  # day of half the final
        for _, r in group.iterrows():
            oi, gi = ORGAN_CHOICES.index(r.organ), GRADES.index(r.grade)
            shift = lag if r.thyroid_phase == "hypothyroidism" else np.zeros_like(lag)
            q05, q50, q95 = np.quantile((first[:, oi, gi] + shift) / 7.0, [0.05, 0.5, 0.95])
            pred = (sample_median_quantiles(delayed(inc[:, :, oi, gi], shift),
                                            int(r.n_events)) / 7.0
                    if r.n_events >= 1 else (np.nan, np.nan))
            rows[r.row_id] = (q50, q05, q95, *pred)
    q = np.array([rows[r] for r in targets.row_id], dtype=float)
    out = targets.assign(model_median_weeks=q[:, 0], model_q05_weeks=q[:, 1],
                         model_q95_weeks=q[:, 2], predictive_q05_weeks=q[:, 3],
                         predictive_q95_weeks=q[:, 4])
    out["ratio"] = out.published_median_weeks / out.model_median_weeks
    out["within_1_5"] = (out.ratio >= 1 / ONSET_TOLERANCE) & (out.ratio <= ONSET_TOLERANCE)
    pred = out.predictive_q05_weeks.notna()
    out["in_predictive"] = np.where(
        pred, (out.published_median_weeks >= out.predictive_q05_weeks)
        & (out.published_median_weeks <= out.predictive_q95_weeks), np.nan)
    printed = out.range_low_weeks.notna() & out.range_high_weeks.notna()
    out["within_range"] = np.where(
        printed, (out.model_median_weeks >= out.range_low_weeks)
        & (out.model_median_weeks <= out.range_high_weeks), np.nan)
    return out


def onset_summary(onset: pd.DataFrame) -> dict:
    """Counts for ``diagnostics.json``: medians within ×/÷1.5, inside the predictive interval
    of a median of k events, inside the printed range (all, and thyroid, skin and GI)."""
    if onset is None or onset.empty:
        return {"onset_within_1_5": None, "onset_in_predictive": None,
                "onset_within_range": None, "onset_within_range_thyroid_skin_gi": None}

    def frac(col, sel=slice(None)):
        x = onset.loc[sel, col].dropna().astype(bool)
        return f"{int(x.sum())}/{len(x)}" if len(x) else None

    key = onset.organ.isin(["thyroid", "skin", "gi"])
    return {"onset_within_1_5": frac("within_1_5"), "onset_in_predictive": frac("in_predictive"),
            "onset_within_range": frac("within_range"),
            "onset_within_range_thyroid_skin_gi": frac("within_range", key)}


def subgroup_check(spec: FitSpec, design: Design, draws: Float[np.ndarray, "draw param"], *,
                   seed: int = 0, replicates: int = 200) -> pd.DataFrame:
    """Every subgroup row of the design (:mod:`pdmodel.fit._subgroups`) next to the model:
    ``observed`` (y/n), the posterior mean and 5–95% of the subgroup's mean incidence
    (``model_mean``, ``model_q05``, ``model_q95``), the 90% predictive interval of the
    proportion an arm of ``n`` such patients would report (``predictive_q05``/``q95``:
    beta-binomial with each draw's concentration, ``replicates`` arms per draw) and
    ``in_predictive``. Empty without subgroup rows."""
    sg = design.subgroups
    if sg is None:
        return pd.DataFrame()

    rows = {"row_id": sg.rows.row_id,
            "subgroup": [sg.subgroups[u] for u in sg.rows.unit],
            "regimen": [sg.units[u].regimen for u in sg.rows.unit],
            "organ": [ORGAN_CHOICES[o] for o in sg.rows.organ],
            "grade": [GRADES[g] for g in sg.rows.grade]}
    return _against_predictive(rows, spec, design, draws, subgroup_means, sg.rows.n, sg.rows.y,
                               seed=seed, replicates=replicates)


def _against_predictive(rows: dict, spec: FitSpec, design: Design,
                        draws: Float[np.ndarray, "draw param"], means, n, y, *, seed: int,
                        replicates: int) -> pd.DataFrame:
    """The columns ``rows`` of a table of published counts ``y`` of ``n`` with the model's
    mean (``means(params, design)`` ``[row]`` at every draw) and the 90% predictive interval
    of the proportion an arm of ``n`` would report (beta-binomial with each draw's
    concentration, ``replicates`` arms per draw)."""

    def one(u):
        p = spec.to_params(u)
        return means(p, design), p.obs.concentration

    def both(u):
        mu, phi = one(u)
        return jnp.concatenate([mu, phi[None]])

    out = chunk_map(_lax_map(both), draws, size=_per_core(draws))
    mu, phi = out[:, :-1], out[:, -1]  # [draw, row], [draw]
    n = np.asarray(n)
    rng = np.random.default_rng(seed)
    reps = predictive_counts(rng, np.repeat(mu, replicates, axis=0),
                             np.repeat(phi, replicates), n) / n  # [draw·replicate, row]
    observed = np.asarray(y) / n
    q05, q95 = np.quantile(reps, [0.05, 0.95], axis=0)
    out = pd.DataFrame(rows | {
        "n": n, "y": y, "observed": observed,
        "model_mean": mu.mean(axis=0), "model_q05": np.quantile(mu, 0.05, axis=0),
        "model_q95": np.quantile(mu, 0.95, axis=0),
        "predictive_q05": q05, "predictive_q95": q95})
    out["in_predictive"] = (observed >= q05) & (observed <= q95)
    return out


def subgroup_summary(table: pd.DataFrame) -> dict:
    """Counts for ``diagnostics.json``: subgroup rows fitted and inside their 90% predictive
    interval."""
    if table is None or table.empty:
        return {"subgroup_rows_fitted": 0, "subgroups_in_predictive": None}
    return {"subgroup_rows_fitted": len(table),
            "subgroups_in_predictive": f"{int(table.in_predictive.sum())}/{len(table)}"}


def management_check(spec: FitSpec, design: Design, draws: Float[np.ndarray, "draw param"], *,
                     seed: int = 0, replicates: int = 200) -> pd.DataFrame:
    """Every management row of the design (:mod:`pdmodel.fit._management`) next to the model,
    as :func:`subgroup_check` does for subgroups: ``observed`` (y/n), the posterior mean and
    5–95% of the row's fraction under the default management policy, the 90% predictive
    interval for the row's ``n`` and ``in_predictive``. Empty without management rows."""
    mg = design.management
    if mg is None:
        return pd.DataFrame()

    rows = {"row_id": mg.rows.row_id,
            "measure": [MEASURES[m] for m in mg.rows.measure],
            "regimen": [mg.units[u].regimen for u in mg.rows.unit],
            "organ": [ORGAN_CHOICES[o] for o in mg.rows.organ],
            "of_grade": mg.rows.grade}
    return _against_predictive(rows, spec, design, draws, management_means, mg.rows.n,
                               mg.rows.y, seed=seed, replicates=replicates)


def management_summary(table: pd.DataFrame) -> dict:
    """Counts for ``diagnostics.json``: management rows fitted and inside their 90% predictive
    interval."""
    if table is None or table.empty:
        return {"management_rows_fitted": 0, "management_in_predictive": None}
    return {"management_rows_fitted": len(table),
            "management_in_predictive": f"{int(table.in_predictive.sum())}/{len(table)}"}
