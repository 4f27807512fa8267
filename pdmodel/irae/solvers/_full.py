"""The fast fixed-grid solver of the full model, one patient at a time (``vmap`` for many).

Per step (default 0.5 day, shorter where the grid is split at infusions): the PK of every
agent advances exactly in two half steps, occupancy is evaluated at the start, middle and end
of the step, and the PD state takes one classical Runge-Kutta-4 step with those inputs (the
step shared with the likelihood's solver, :mod:`pdmodel.irae.solvers._step`). Steroid exposure is
a known function of time; infliximab PK is linear and propagated exactly. The running maximum
of each organ's injury, the per-patient grade crossings (with the patient's own threshold draw)
and the rescue policy are updated after every step. Accuracy is checked against the adaptive
reference solver (``pdmodel.irae.solvers._reference``) in the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ...numerics import ALIGN_EPS, TIME_EPS
from ...pk import TwoCompartmentPK, pk_step
from ...regimen import DosingGrid
from ...vocab import ORGANS
from .._equations import (
    GI,
    N_PD,
    PatientPD,
    baseline_state,
    drug_effects,
    infliximab_suppression,
    log_thresholds,
    pd_rhs,
    steroid_suppression,
)
from .._parameters import IraeModel
from .._rescue import INFLIXIMAB, ManagementPolicy
from ._step import pk_half_step, rk4_step

N_ORGAN = len(ORGANS)
INFLIXIMAB_INTERVAL = 14.0
"""Days from an infliximab dose to the check for the next (given if GI injury is still at
grade >= 2 and the policy allows more doses)."""


class PatientInputs(NamedTuple):
    """Everything patient-specific the solver needs."""

    pk: TwoCompartmentPK  # [agent] individual PK parameters
    pd: PatientPD
    weight_kg: Float[Array, "*batch"]
    stop_day: Float[Array, "*batch"]
    z_threshold: Float[Array, "*batch organ"]
    refractory_gi: Float[Array, "*batch"]  # 1: steroids do not suppress the GI drive, else 0


class Daily(NamedTuple):
    """Trajectories saved at the end of each day ``[day, ...]``."""

    concentration: Float[Array, "*batch day agent"]  # mg/L
    state: Float[Array, "*batch day 9"]  # E, P, A, D_organ
    max_injury: Float[Array, "*batch day organ"]  # running maximum of D
    steroid: Float[Array, "*batch day"]  # prednisone-equivalent dose, mg/kg/day
    infliximab: Float[Array, "*batch day"]  # infliximab concentration, mg/L


class Events(NamedTuple):
    """Per-patient event times (days; ``inf`` = did not happen)."""

    onset: Float[Array, "*batch organ grade"]  # first crossing of the patient's own thresholds
    resolution: Float[Array, "*batch organ"]  # back below grade 1 after a grade >= 2 onset
    steroid_start: Float[Array, "*batch"]
    infliximab_doses: Int[Array, "*batch"]


class _Carry(NamedTuple):
    x_pk: Float[Array, "agent 2"]
    y: Float[Array, " 9"]
    m: Float[Array, " organ"]
    x_ifx: Float[Array, " 2"]
    onset: Float[Array, "organ grade"]
    resolution: Float[Array, " organ"]
    start: Float[Array, ""]
    next_check: Float[Array, ""]
    n_ifx: Int[Array, ""]
    stop: Float[Array, ""]
    hold_from: Float[Array, ""]
    taper_from: Float[Array, ""]


def simulate_patient(
    model: IraeModel,
    patient: PatientInputs,
    grid: DosingGrid,
    ec50: Float[Array, " agent"],
    targets: Float[Array, "agent target"],
    agent_weight: Float[Array, " agent"],
    policy: ManagementPolicy,
    *,
    steps_per_day: int,
    michaelis_menten: bool = True,
) -> tuple[Daily, Events]:
    """Simulate one patient over ``grid.n_days`` days.

    ``ec50`` [agent] in mg/L (already scaled); ``targets`` [agent, target] one-hot;
    ``agent_weight`` [agent]: each agent's effect relative to its class (``exp(agent_effect)``);
    ``steps_per_day`` aligns steroid courses to step boundaries; ``michaelis_menten=False``
    (static) skips target-mediated elimination when no agent has it.
    """
    pk = patient.pk
    thr = log_thresholds(model) + (model.sigma * patient.z_threshold)[:, None]
    theta = jnp.exp(thr)  # the patient's own thresholds [organ, grade]; compare without logs
    n_sub = grid.substeps

    def inputs(x_pk, x_ifx, t, c: _Carry):
        """``(f_C, f_P, i_sys, i_gi)`` at ``t`` from the amounts there."""
        effects = drug_effects(model, x_pk[:, 0] / pk.vc, ec50, targets, agent_weight)
        return effects + _suppression(model, policy, t, c.start, c.taper_from, x_ifx)

    def advance(c: _Carry, j, i, t, t1):
        h = t1 - t
        half = 0.5 * h
        k = 2 * (j * n_sub + i)  # the step's first PK cell
        x1 = pk_half_step(pk, c.x_pk, grid, k, patient.weight_kg, c.stop, c.hold_from,
                          mm=michaelis_menten)
        x2 = pk_half_step(pk, x1, grid, k + 1, patient.weight_kg, c.stop, c.hold_from,
                          mm=michaelis_menten)
        q1, q2 = _infliximab_halves(policy, c.x_ifx, t, half)
        # steroid courses start on step boundaries, so the dose is smooth within a step;
        # evaluate it just inside the step so a course starting at t counts from t
        u0 = inputs(c.x_pk, c.x_ifx, t + TIME_EPS * h, c)
        um = inputs(x1, q1, t + half, c)
        u1 = inputs(x2, q2, t1 - TIME_EPS * h, c)
        y = rk4_step(lambda y, u: pd_rhs(model, patient.pd, y, *u, patient.refractory_gi),
                     c.y, h, u0, um, u1)
        c = _record_grades(c._replace(x_pk=x2, x_ifx=q2), y, t1, theta)
        if policy.enabled:
            c = _apply_policy(policy, c, t1, theta, patient.weight_kg, steps_per_day)
        return c

    def daily(c: _Carry, j) -> Daily:
        dose = policy.steroid(j + 1.0, c.start, c.taper_from)
        return Daily(c.x_pk[:, 0] / pk.vc, c.y, c.m, dose, c.x_ifx[0] / INFLIXIMAB.vc)

    init = _initial_carry(patient, grid.first_dose.shape[0])
    final, out = _scan_days(advance, daily, init, grid, steps_per_day)
    return out, Events(final.onset, final.resolution, final.start, final.n_ifx)


def _scan_days(advance, daily, init: _Carry, grid: DosingGrid, steps_per_day: int):
    """Step ``init`` through every day of ``grid`` by ``advance(c, j, i, t, t1)`` (sub-step
    ``i`` of day ``j``, from ``t`` to ``t1``), skipping zero-length padding; returns the final
    carry and ``daily(c, j)`` at the end of each day (stacked)."""
    n_sub = grid.substeps

    def step(c: _Carry, ji):
        j, i = ji
        t, t1 = grid.edges[j, i], grid.edges[j, i + 1]
        # padding sub-steps have zero length; the grid is shared by all patients, so under
        # vmap this predicate stays unbatched and the cond really skips the work
        return jax.lax.cond(t1 > t, advance, lambda c, *_: c, c, j, i, t, t1), None

    def plain_day(c: _Carry, j):
        # no infusion edge inside the day: exactly steps_per_day equal steps, no padding
        return jax.lax.scan(lambda c, ji: (advance(c, *ji, grid.edges[ji[0], ji[1]],
                                                   grid.edges[ji[0], ji[1] + 1]), None),
                            c, (jnp.full(steps_per_day, j), jnp.arange(steps_per_day)))[0]

    def split_day(c: _Carry, j):
        return jax.lax.scan(step, c, (jnp.full(n_sub, j), jnp.arange(n_sub)))[0]

    def day(c: _Carry, j):
        # the predicate comes from the shared grid, so under vmap this is a real branch
        if n_sub == steps_per_day:
            c = plain_day(c, j)
        else:
            c = jax.lax.cond(grid.edges[j, steps_per_day] < j + 1.0 - TIME_EPS, split_day,
                             plain_day, c, j)
        return c, daily(c, j)

    return jax.lax.scan(jax.checkpoint(day), init, jnp.arange(grid.n_days))


def _initial_carry(patient: PatientInputs, n_agent: int) -> _Carry:
    """No drug, baseline PD state, no events, no rescue; treatment until ``patient.stop_day``."""
    dtype = jnp.result_type(float)
    init = _Carry(
        x_pk=jnp.zeros((n_agent, 2), dtype), y=baseline_state(patient.pd).astype(dtype),
        m=jnp.zeros(N_ORGAN, dtype), x_ifx=jnp.zeros(2, dtype),
        onset=jnp.full((N_ORGAN, 3), jnp.inf, dtype), resolution=jnp.full(N_ORGAN, jnp.inf, dtype),
        start=jnp.asarray(jnp.inf, dtype), next_check=jnp.asarray(jnp.inf, dtype),
        n_ifx=jnp.asarray(0, jnp.int32), stop=jnp.asarray(patient.stop_day, dtype),
        hold_from=jnp.asarray(jnp.inf, dtype), taper_from=jnp.asarray(jnp.inf, dtype),
    )
    assert init.y.shape == (N_PD,)
    return init


def _suppression(model: IraeModel, policy: ManagementPolicy, t, start, taper_from, x_ifx):
    """Systemic (steroid) and GI-specific (infliximab) suppression ``(i_sys, i_gi)`` (0-1) at
    day ``t``, for a steroid course from ``start`` tapered from ``taper_from`` and infliximab
    amounts ``x_ifx`` [2] (mg)."""
    i_sys = steroid_suppression(model, policy.steroid(t, start, taper_from))
    return i_sys, infliximab_suppression(model, jnp.maximum(x_ifx[0] / INFLIXIMAB.vc, 0.0))


def _infliximab_halves(policy: ManagementPolicy, x_ifx, t, half):
    """Infliximab amounts [2] (mg) after the first and the second half of the step from ``t``
    (days; no infliximab without a policy)."""
    if not policy.enabled:
        return x_ifx, x_ifx
    q1 = pk_step(INFLIXIMAB, x_ifx, t, half, 0.0, 0.0, 0.0, 0.0, mm=False, aligned=True)
    q2 = pk_step(INFLIXIMAB, q1, t + half, half, 0.0, 0.0, 0.0, 0.0, mm=False, aligned=True)
    return q1, q2


def _record_grades(c: _Carry, y, t1, theta) -> _Carry:
    """The new PD state ``y`` at ``t1``, the running maximum of injury and the first crossings
    of the patient's own thresholds ``theta`` [organ, grade] (onset), and the return below grade
    1 after a grade >= 2 onset (resolution)."""
    d = y[3:]
    m = jnp.maximum(c.m, d)
    crossed = d[:, None] >= theta
    onset = jnp.where(jnp.isinf(c.onset) & crossed, t1, c.onset)
    has_g2 = jnp.isfinite(onset[:, 1])
    healed = has_g2 & jnp.isinf(c.resolution) & (d < theta[:, 0])
    resolution = jnp.where(healed, t1, c.resolution)
    return c._replace(y=y, m=m, onset=onset, resolution=resolution)


def _apply_policy(policy: ManagementPolicy, c: _Carry, t1, theta, weight_kg,
                  steps_per_day: int) -> _Carry:
    """The rescue policy after the step ending at ``t1``, from the grades just recorded: steroid
    start (on a step boundary) and taper, treatment hold and discontinuation, infliximab
    doses for GI injury still at grade >= 2."""
    active = jnp.any(jnp.isfinite(c.onset[:, 1]) & jnp.isinf(c.resolution))
    # full dose until improvement (and at least full_dose_days), then taper
    improved = jnp.isfinite(c.start) & (t1 >= c.start + policy.full_dose_days) & ~active
    taper_from = jnp.where(jnp.isinf(c.taper_from) & improved, t1, c.taper_from)
    stop, hold_from = c.stop, c.hold_from
    if policy.discontinue_grade:
        stop = jnp.minimum(stop, jnp.min(c.onset[:, policy.discontinue_grade - 1]))
    if policy.hold_at_grade2:
        tapered = t1 >= taper_from + policy.taper_days
        hold_from = jnp.where(active | (jnp.isfinite(hold_from) & ~tapered),
                              jnp.minimum(hold_from, t1), jnp.inf)
    first = jnp.min(c.onset[:, policy.trigger_grade - 1])
    aligned = jnp.ceil((first + policy.delay_days) * steps_per_day - ALIGN_EPS) / steps_per_day
    start = jnp.where(jnp.isinf(c.start) & jnp.isfinite(first), aligned, c.start)
    next_check = jnp.where(jnp.isinf(c.start) & jnp.isfinite(start),
                           start + policy.escalate_after_days, c.next_check)
    due = t1 >= next_check
    gi_active = c.y[3 + GI] >= theta[GI, 1]
    give = due & gi_active & (c.n_ifx < policy.max_infliximab_doses)
    dose = policy.infliximab_dose * weight_kg
    next_check = jnp.where(due, jnp.where(give, next_check + INFLIXIMAB_INTERVAL, jnp.inf),
                           next_check)
    return c._replace(x_ifx=c.x_ifx.at[0].add(jnp.where(give, dose, 0.0)), start=start,
                      next_check=next_check, n_ifx=c.n_ifx + give, stop=stop,
                      hold_from=hold_from, taper_from=taper_from)
