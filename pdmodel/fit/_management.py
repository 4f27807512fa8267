"""Management rows in the likelihood: systemic steroids, resolution and infliximab under the
default management policy (docs/model.md §5.9).

A management row is a published count ``y`` of ``n`` patients: given systemic corticosteroids
(of all patients, or of those with an organ's irAE), resolved by the horizon (of those with a
grade ≥ g irAE), given infliximab (of those with colitis). Its arm is simulated with the
design's virtual population under :data:`MANAGEMENT_POLICY` by the smooth managed course
(:func:`pdmodel.irae.solvers.managed_course`): each patient's trigger, course and check are
probabilities over the residual threshold noise ``τ``, so the fractions are differentiable in
the steroid effect (``steroid_imax``, ``steroid_ed50``), repair rates and grade thresholds.
With the grade thresholds integrated out as for the incidence rows
(``θ_og = exp(lt_og + η_o)``, ``η_o ~ N(0, σ_o² + τ²)``, one ``η`` for every grade of an organ):

* grade ≥ g by the horizon: :func:`managed_probability`, as for the managed training arms
  (the running maximum ``M_o`` without steroids up to the trigger grade; above it, that
  probability times the course's attenuation, at most 1);
* grade ≥ g and resolved (injury on the course back below grade 1 at the horizon,
  ``D_o(T) < θ_o1``): ``max(0, P(M_o ≥ θ_og) − P(D_o(T) ≥ θ_o1))``; never for the endocrine
  organs (:data:`PERSISTENT_ORGANS`, assumed: their hormone deficits last);
* steroids: any organ at the trigger grade without steroids (of all patients), or the organ's
  events at the trigger grade (of the organ's events);
* infliximab: the course's GI check (:func:`pdmodel.irae.solvers.managed_course`), of the
  patients with a GI event.

A row's fraction is the ratio of the population sums of its numerator and denominator
(drug-related events only, no background); given it the row is beta-binomial with the
incidence rows' concentration ``φ``. Horizon :data:`MANAGEMENT_DAYS` (assumed; the sources
print no follow-up for these rows), the agent's label regimen, reference tumour and setting.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import lazy_loader as _lazy
import numpy as np
from jax.scipy.special import ndtr
from jaxtyping import Array, Float

from ..irae import IraeModel, ManagementPolicy, drug_probability, log_drug_probability
from ..irae.solvers import CourseChain, log_thresholds
from ..numerics import LOG_FLOOR, PROB_FLOOR
from ..vocab import ORGAN_CHOICES, ORGANS

pd = _lazy.load("pandas")  # imported when a design table is built: predict starts fast

MANAGEMENT_POLICY = ManagementPolicy()
"""The management the rows' patients had: the default guideline policy (SITC; steroids from a
grade 2 onset, infliximab for colitis not improving), as the sources' protocols prescribe
(the rows do not print the management each patient had)."""

MANAGEMENT_DAYS = 365
"""Horizon of every management row, days (assumed)."""

GI = ORGANS.index("gi")

PERSISTENT_ORGANS = ("thyroid", "pituitary")
"""Organs whose grade ≥ 2 events are counted as not resolved (assumed): hypothyroidism and
hypophysitis leave a hormone deficit that usually needs lasting replacement even when the
inflammation has settled (man-0110, man-0130: hormone replacement), which the model's injury
state does not represent."""

MEASURES = ("steroids", "resolved", "infliximab")
"""What a management row counts (its numerator)."""


class ManagementRows(NamedTuple):
    """Management counts used in the likelihood ``[row]`` (tuples: part of the static design)."""

    row_id: tuple[str, ...]
    unit: tuple[int, ...]  # index into ManagementDesign.units
    measure: tuple[int, ...]  # index into MEASURES
    organ: tuple[int, ...]  # index into ORGAN_CHOICES (0 = any organ)
    grade: tuple[int, ...]  # grade of the denominator (0: all patients)
    n: tuple[int, ...]
    y: tuple[int, ...]


def management_rows(targets: pd.DataFrame) -> tuple[ManagementRows, tuple[str, ...]]:
    """:func:`management_targets` as :class:`ManagementRows` and the regimens they simulate,
    in order of first use."""
    regimens: list[str] = []
    fields: dict[str, list] = {k: [] for k in ManagementRows._fields}
    for _, r in targets.iterrows():
        where = f"management row {r.row_id}"
        if r.measure not in MEASURES:
            raise ValueError(f"{where}: unknown measure {r.measure!r} (one of {MEASURES})")
        if r.organ not in ORGAN_CHOICES:
            raise ValueError(f"{where}: unknown organ {r.organ!r} (one of {ORGAN_CHOICES})")
        grade = int(r.grade)
        if grade not in (0, 1, 2, 3) or (grade == 0 and r.measure != "steroids"):
            raise ValueError(f"{where}: grade of the denominator must be 1-3 (0 = all patients, "
                             f"steroid rows only), got {r.grade!r}")
        if r.measure == "infliximab" and r.organ != "gi":
            raise ValueError(f"{where}: infliximab rows must be GI rows, got {r.organ!r}")
        if not 0 <= int(r.y) <= int(r.n) or int(r.n) < 1:
            raise ValueError(f"{where}: need 0 <= y <= n and n >= 1, got y={r.y!r}, n={r.n!r}")
        if r.regimen not in regimens:
            regimens.append(str(r.regimen))
        fields["row_id"].append(str(r.row_id))
        fields["unit"].append(regimens.index(str(r.regimen)))
        fields["measure"].append(MEASURES.index(r.measure))
        fields["organ"].append(ORGAN_CHOICES.index(r.organ))
        fields["grade"].append(grade)
        fields["n"].append(int(r.n))
        fields["y"].append(int(r.y))
    return ManagementRows(**{k: tuple(v) for k, v in fields.items()}), tuple(regimens)


def no_management_rows() -> ManagementRows:
    """A :class:`ManagementRows` without rows (managed training arms, no management counts)."""
    return ManagementRows(*(() for _ in ManagementRows._fields))


class ManagementDesign(eqx.Module):
    """The management part of a training design: the rows and the arms they simulate, stacked
    as the incidence arms are; with managed training arms, the managed unit of each incidence
    arm (its agents' label regimen, :data:`MANAGEMENT_DAYS`)."""

    rows: ManagementRows = eqx.field(static=True)
    units: tuple = eqx.field(static=True)  # SimulatedArm per stacked regimen
    stacked: eqx.Module  # StackedRegimens
    arm_unit: tuple[int, ...] | None = eqx.field(static=True, default=None)  # [incidence arm]


class ManagedArms(NamedTuple):
    """The smooth managed course of every management arm ``[unit, patient, ...]``."""

    natural_max: Float[Array, "unit patient organ"]
    treated_max: Float[Array, "unit patient organ"]
    final_injury: Float[Array, "unit patient organ"]
    steroid: Float[Array, "unit patient"]
    infliximab: Float[Array, "unit patient"]


def patient_log_thresholds(model: IraeModel, z_threshold: Float[Array, "patient organ"]
                           ) -> Float[Array, "patient organ grade"]:
    """Each patient's log grade thresholds without the residual: ``lt_og + σ_o z_o``."""
    return log_thresholds(model)[None] + (model.sigma * z_threshold)[..., None]


class CourseInputs(NamedTuple):
    """What :func:`pdmodel.irae.solvers.managed_course` takes besides a patient's PD and drug
    effects, under :data:`MANAGEMENT_POLICY`."""

    chain: CourseChain
    log_theta: Float[Array, "patient organ"]  # each patient's log trigger-grade threshold
    gi_log_theta: Float[Array, ""]  # median log GI threshold of the trigger grade
    gi_spread: Float[Array, ""]  # its SD over patients, sqrt(σ_GI² + τ²)


def course_inputs(model: IraeModel, z_threshold: Float[Array, "patient organ"]
                  ) -> CourseInputs:
    """:class:`CourseInputs` of ``model`` for patients with threshold deviates
    ``z_threshold``."""
    grade = MANAGEMENT_POLICY.trigger_grade - 1
    return CourseInputs(CourseChain.of(model, MANAGEMENT_POLICY),
                        patient_log_thresholds(model, z_threshold)[..., grade],
                        log_thresholds(model)[GI, grade],
                        jnp.sqrt(model.sigma[GI] ** 2 + model.tau**2))


def _log_attenuation(model: IraeModel, natural_max, treated_max):
    """``log A`` of :func:`managed_attenuation` from both running maxima ``[..., organ]``, and
    the natural course's log probability ``[..., organ, grade]``."""
    log_nat = log_drug_probability(model, natural_max)
    log_a = jnp.minimum(log_drug_probability(model, treated_max) - log_nat, 0.0)
    above = np.arange(log_nat.shape[-1]) >= MANAGEMENT_POLICY.trigger_grade
    return jnp.where(above, log_a, 0.0), log_nat


def managed_attenuation(model: IraeModel, arms: ManagedArms
                        ) -> Float[Array, "unit patient organ grade"]:
    """Each patient's probability of grade ≥ g on the managed course over the one without
    steroids ``[unit, patient, organ, grade]`` (thresholds integrated out, as
    :func:`pdmodel.irae.drug_probability`; computed in log space): 1 up to the policy's trigger
    grade, which is reached before any steroid; at most 1 above it (steroids only suppress).
    Multiplies the natural-course probabilities of the training arms (docs/model.md §5.9)."""
    return jnp.exp(_log_attenuation(model, arms.natural_max, arms.treated_max)[0])


def managed_probability(model: IraeModel, natural_max: Float[Array, "*batch organ"],
                        treated_max: Float[Array, "*batch organ"]
                        ) -> Float[Array, "*batch organ grade"]:
    """Drug-related probability of each grade on the managed course ``[..., organ, grade]``
    from the running maxima without steroids and on the course ``[..., organ]``: the natural
    course's times :func:`managed_attenuation`, as the managed training arms are fitted."""
    log_a, log_nat = _log_attenuation(model, natural_max, treated_max)
    return jnp.exp(log_nat + log_a)


def row_fractions(model: IraeModel, arms: ManagedArms, z_threshold: Float[Array, "patient organ"],
                  rows: ManagementRows) -> Float[Array, " row"]:
    """Model fraction of every management row ``[row]`` from the managed arms (population
    sums of numerator over denominator; module docstring)."""
    if not rows.row_id:
        return jnp.zeros(0, arms.steroid.dtype)
    trigger = MANAGEMENT_POLICY.trigger_grade
    # thresholds integrated out (as for the incidence rows): grades up to the trigger grade
    # are reached before any steroid, the others on the course
    natural = drug_probability(model, arms.natural_max)  # [unit, patient, organ, grade]
    reached = managed_probability(model, arms.natural_max, arms.treated_max)  # as the arms
    spread = jnp.sqrt(model.sigma**2 + model.tau**2)  # [organ]
    above_1 = ndtr(jnp.log(jnp.maximum(arms.final_injury, LOG_FLOOR)) / spread)
    heals = np.array([o not in PERSISTENT_ORGANS for o in ORGANS], float)[:, None]  # [organ, 1]
    resolved = jnp.maximum(reached - above_1[..., None], 0.0) * heals
    # any organ at the trigger grade, 1 − Π_o(1 − p_o) without cancellation [unit, patient]
    steroids = -jnp.expm1(jnp.sum(jnp.log1p(-natural[..., trigger - 1]), axis=-1))
    colitis = natural[..., GI, 0]  # [unit, patient]: of the patients with colitis
    out = []
    for unit, measure, organ, grade in zip(rows.unit, rows.measure, rows.organ, rows.grade,
                                           strict=True):
        organs = slice(None) if organ == 0 else slice(organ - 1, organ)
        kind = MEASURES[measure]
        if kind == "infliximab":
            num, base = jnp.sum(arms.infliximab[unit]), jnp.sum(colitis[unit])
        elif grade == 0:  # steroids, of all patients
            num, base = jnp.sum(steroids[unit]), jnp.asarray(steroids.shape[1], steroids.dtype)
        else:
            base = jnp.sum(reached[unit, :, organs, grade - 1])
            num = jnp.sum(reached[unit, :, organs, trigger - 1] if kind == "steroids"
                          else resolved[unit, :, organs, grade - 1])
        out.append(num / jnp.maximum(base, PROB_FLOOR))
    return jnp.clip(jnp.stack(out), PROB_FLOOR, 1.0 - PROB_FLOOR)
