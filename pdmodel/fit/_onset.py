"""Published median onset times as observations: the rows, their simulated arms and their
log-likelihood (docs/model.md §5.7).

Every published median onset of a modelled agent and organ in the timing table
(:func:`pdmodel.fit.onset_targets`, in :mod:`pdmodel.fit._checks`) is an observation of the
model's onset distribution for that agent's regimen, organ and grade:
``F(t) = I(t) / I(T)``, the cumulative incidence (immune-related definition, natural course)
over its value at the horizon ``T`` — the distribution of event times among patients who had
the event, as trials report it. ``I`` is computed at the :func:`knot_days` and ``F`` is linear
between them (``F(0) = 0``).

The published median ``M`` of ``k`` event times is taken as log-normal around the model's
median ``m`` (``F(m) = ½``):

    log M ~ Normal(log m, s_k² + τ²),   s_k = 1 / (2 √k · f(m) · m)

``s_k`` is the large-sample SD of the log of a median of ``k`` draws from ``F`` (density
``f``; the sample median is asymptotically normal with variance ``1/(4 k f(m)²)``), and
``τ`` = :data:`ONSET_SPREAD` the between-study spread of medians (populations, regimens,
ascertainment). Where ``k`` is not printed, ``s_k`` is taken as 0 (pooled label analyses:
``k`` in the tens to hundreds, ``s_k`` small beside ``τ``).

Thyroid rows describe one of two phases (``thyroid_phase``, docs/data.md §2): the thyroid's
grade threshold crossed is the onset of thyroiditis, the first thyroid dysfunction (usually
thyrotoxic: hyperthyroidism rows); hypothyroidism follows it by
``IraeModel.hypothyroid_lag`` days, so a hypothyroidism row's onset distribution is
``F(t − lag)`` and its median ``m + lag``.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import lazy_loader as _lazy
import numpy as np
from jax.scipy.special import ndtr
from jaxtyping import Array, Float, Int

from ..irae import THYROID_ANTIBODY_PREVALENCE, THYROID_ANTIBODY_TITRE
from ..vocab import GRADES, ORGAN_CHOICES, ORGANS

pd = _lazy.load("pandas")  # imported when onset rows are built: predict starts fast

ONSET_ENDPOINT = "immune_related"
"""Reporting definition of onset summaries (immune-related events: the timing tables describe
irAEs)."""

ONSET_SPREAD = 0.35
"""``τ``: SD of log published median onset around the model's median beyond the sampling
error of a median (between-study spread: ×/÷1.42). An assumption, not fitted: two sources for
one agent and organ in the bundled table differ by up to a factor 1.8 (nivolumab pneumonitis,
15.2 vs 27.5 weeks, tim-0118 and tim-0217)."""

WEEKLY_KNOTS_UNTIL = 210
"""Knots are weekly up to this day (every published median is below 28 weeks), then every
four weeks to the horizon (:func:`knot_days`)."""


def knot_days(horizon: int) -> tuple[int, ...]:
    """Days at which the onset distribution is computed: weekly to
    :data:`WEEKLY_KNOTS_UNTIL`, then four-weekly, and the horizon."""
    weekly = range(7, min(horizon, WEEKLY_KNOTS_UNTIL) + 1, 7)
    later = range(WEEKLY_KNOTS_UNTIL + 28, horizon + 1, 28)
    return tuple(sorted({*weekly, *later, int(horizon)}))


class OnsetRows(NamedTuple):
    """Published medians used in the likelihood ``[row]`` (tuples: part of the static design)."""

    row_id: tuple[str, ...]
    unit: tuple[int, ...]  # index into OnsetDesign.units
    organ: tuple[int, ...]  # index into ORGAN_CHOICES (0 = any organ)
    grade: tuple[int, ...]  # index into GRADES
    median_days: tuple[float, ...]
    events: tuple[float, ...]  # k, 0 when not printed
    hypothyroid: tuple[bool, ...]  # hypothyroidism: onset = thyroiditis onset + lag


def onset_rows(targets: pd.DataFrame) -> tuple[OnsetRows, tuple[str, ...]]:
    """Published medians (:func:`pdmodel.fit.onset_targets`: ``row_id``, ``regimen``,
    ``organ``, ``grade``, ``published_median_weeks``, ``n_events``) as :class:`OnsetRows` and
    the regimens they simulate (in order of first use)."""
    regimens: list[str] = []
    fields: dict[str, list] = {k: [] for k in OnsetRows._fields}
    for _, r in targets.iterrows():
        text = str(r.regimen)
        if text not in regimens:
            regimens.append(text)
        fields["row_id"].append(str(r.row_id))
        fields["unit"].append(regimens.index(text))
        fields["organ"].append(ORGAN_CHOICES.index(r.organ))
        fields["grade"].append(GRADES.index(r.grade))
        fields["median_days"].append(7.0 * float(r.published_median_weeks))
        fields["events"].append(float(r.n_events) if pd.notna(r.n_events) else 0.0)
        fields["hypothyroid"].append(str(getattr(r, "thyroid_phase", "")) == "hypothyroidism")
    return OnsetRows(**{k: tuple(v) for k, v in fields.items()}), tuple(regimens)


ONSET_PATIENT_FACTOR = 2
"""The onset arms simulate this many times the design's virtual patients (their own
Latin-hypercube population, :attr:`OnsetDesign.population`). A median onset is a ratio of
tail-dominated population means: with the design's 32 patients, a handful of them carried a
thyroid row, and the fit found parameters at which those few had their events early (bundled
fit of 2026-12-06, first run: thyroiditis medians 7.7-9.7 weeks in the fit's 32 patients,
18-27 weeks in 256 other patients at the same parameters; docs/model.md §5.7). Each onset
patient also counts as antibody-negative and -positive (:func:`antibody_mixture`). The onset
part costs about 15% of a likelihood evaluation at 32 patients, 50% with 4 times as many."""


def antibody_mixture(max_injury: Float[Array, "patient knot organ"],
                     a0: Float[Array, " patient"]
                     ) -> tuple[Float[Array, "patient2 knot organ"], Float[Array, " patient2"]]:
    """Every patient twice, antibody-negative then antibody-positive, with the population
    weights of the two (``1 − p``, ``p``, ``p`` = :data:`THYROID_ANTIBODY_PREVALENCE`): the
    running maxima ``[2·patient, knot, organ]`` and weights ``[2·patient]`` for
    ``incidence_from_max(..., weights=)``. Exact in the natural course: the titre ``a0`` only
    multiplies the thyroid's susceptibility and thyroid injury is linear in it (docs/model.md
    §4.2), so the thyroid column is divided by each patient's own ``a0`` and multiplied by
    :data:`THYROID_ANTIBODY_TITRE`. Every patient then carries both strata of a thyroid row
    instead of the fifth that happened to be drawn positive (a conditional Monte Carlo
    average over the antibody status)."""
    th = ORGANS.index("thyroid")
    negative = max_injury.at[..., th].divide(a0[:, None])
    positive = negative.at[..., th].multiply(THYROID_ANTIBODY_TITRE)
    n = a0.shape[0]
    weights = jnp.concatenate([jnp.full(n, 1.0 - THYROID_ANTIBODY_PREVALENCE),
                               jnp.full(n, THYROID_ANTIBODY_PREVALENCE)]).astype(a0.dtype)
    return jnp.concatenate([negative, positive]), weights


class OnsetDesign(eqx.Module):
    """The onset part of a training design: the rows, the arms they simulate (stacked as the
    incidence arms are) for their own virtual population (:data:`ONSET_PATIENT_FACTOR` times
    the design's) and the solver steps at which injury is read (:func:`knot_days`)."""

    rows: OnsetRows = eqx.field(static=True)
    units: tuple = eqx.field(static=True)  # SimulatedArm per stacked regimen
    knot_days: tuple[int, ...] = eqx.field(static=True)
    stacked: eqx.Module  # StackedRegimens
    knot_step: Int[Array, "regimen knot"]  # step after which each knot day is reached
    population: eqx.Module  # Population of the onset arms


def knot_steps(edges: Float[np.ndarray, " step1"], days: tuple[int, ...]) -> np.ndarray:
    """Index of the solver step that ends at each of ``days`` ``[knot]`` (``edges``: step
    boundaries, days)."""
    edges = np.asarray(edges)
    end = np.searchsorted(edges, np.asarray(days, float) - 1e-6)
    if np.any(end >= edges.size) or np.any(np.abs(edges[np.minimum(end, edges.size - 1)]
                                                   - np.asarray(days)) > 1e-6):
        raise ValueError(f"onset knots {days} are not step boundaries of the solver grid")
    return end - 1


MEDIAN_SMOOTHING = 0.02
"""``ε``: width (in ``F``) of the smoothing that makes the median a smooth function of the
parameters (:func:`onset_median`)."""

DENSITY_SMOOTHING = 0.05
"""Width (in ``F``) of the weights that average the slope of ``F`` around the median into the
density ``f(m)`` (wider than :data:`MEDIAN_SMOOTHING`: a weekly segment holds about 0.05 of
``F`` near a typical median)."""


def _integral_phi(x0, x1, length):
    """``∫ Φ(x(t)) dt`` over a segment of ``length`` on which ``x`` is linear from ``x0`` to
    ``x1`` (``G(x) = xΦ(x) + φ(x)`` is an antiderivative of ``Φ``)."""
    def g(x):
        return x * ndtr(x) + jnp.exp(-0.5 * x * x) / jnp.sqrt(2.0 * jnp.pi)

    dx = x1 - x0
    flat = jnp.abs(dx) < 1e-7
    safe = jnp.where(flat, 1.0, dx)
    return length * jnp.where(flat, ndtr(0.5 * (x0 + x1)), (g(x1) - g(x0)) / safe)


def onset_median(incidence: Float[Array, "row knot"], days: Float[Array, " knot"]
                 ) -> tuple[Float[Array, " row"], Float[Array, " row"]]:
    """The median ``m`` of each row's onset distribution (days) and its density ``f(m)``
    (1/day), smooth in the parameters. ``F = I / I[-1]`` is linear between the knots
    (``F(0) = 0``). The median is ``m = ∫_0^T 1{F(t) < ½} dt`` with the step softened,
    ``∫_0^T Φ((½ − F(t))/ε) dt`` (``ε`` = :data:`MEDIAN_SMOOTHING`; exact per segment), and
    the density the slope of ``F`` averaged over the segments with the weights that
    ``Φ((½ − F)/ε_f)`` puts around ``F = ½`` (``ε_f`` = :data:`DENSITY_SMOOTHING`). The plain
    linear-interpolation median has a kink whenever it crosses a knot, which broke a fit's
    Laplace Hessian."""
    f = incidence / jnp.maximum(incidence[:, -1:], 1e-300)
    f = jnp.concatenate([jnp.zeros_like(f[:, :1]), f], axis=1)
    t = jnp.concatenate([jnp.zeros(1, f.dtype), jnp.asarray(days, f.dtype)])
    x = (0.5 - f) / MEDIAN_SMOOTHING  # [row, knot + 1]
    length = jnp.diff(t)  # [segment]
    median = jnp.sum(_integral_phi(x[:, :-1], x[:, 1:], length), axis=1)
    xd = (0.5 - f) / DENSITY_SMOOTHING
    weight = ndtr(xd[:, :-1]) - ndtr(xd[:, 1:])  # [row, segment]: share of F = ½'s neighbourhood
    slope = jnp.diff(f, axis=1) / length
    density = jnp.sum(weight * slope, axis=1) / jnp.maximum(jnp.sum(weight, axis=1), 1e-300)
    return median, jnp.maximum(density, 1e-12)


def onset_loglik(incidence: Float[Array, "row knot"], rows: OnsetRows,
                 days: tuple[int, ...], hypothyroid_lag: Float[Array, ""] = 0.0
                 ) -> Float[Array, " row"]:
    """Log-likelihood of every published median ``[row]`` given each row's cumulative incidence
    at the knots ``[row, knot]`` (module docstring). A hypothyroidism row's median is the
    thyroiditis median plus ``hypothyroid_lag`` (days): its onset distribution is the
    thyroid's shifted by the lag, with the same density."""
    median, density = onset_median(incidence, jnp.asarray(days, incidence.dtype))
    median = median + jnp.asarray(rows.hypothyroid, incidence.dtype) * hypothyroid_lag
    k = jnp.asarray(rows.events, incidence.dtype)
    sampling = jnp.where(k > 0, 1.0 / (2.0 * jnp.sqrt(jnp.maximum(k, 1.0)) * density * median),
                         0.0)
    sd = jnp.sqrt(sampling**2 + ONSET_SPREAD**2)
    z = (jnp.log(jnp.asarray(rows.median_days, incidence.dtype)) - jnp.log(median)) / sd
    return -0.5 * z**2 - jnp.log(sd) - 0.5 * jnp.log(2.0 * jnp.pi)
