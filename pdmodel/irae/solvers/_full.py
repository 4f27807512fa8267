"""The fast fixed-grid solver of the full model, one patient at a time (``vmap`` for many).

Per step (default 0.5 day, shorter where the grid is split at infusions): the PK of every
agent advances exactly in two half steps (``pdmodel.pk._step``), occupancy is evaluated at the
start, middle and end of the step,
and the PD state takes one classical Runge-Kutta-4 step with those inputs. Steroid exposure is
a known function of time; infliximab PK is linear and propagated exactly. The running maximum
of each organ's injury, the per-patient grade crossings (with the patient's own threshold draw)
and the rescue policy are updated after every step. Accuracy is checked against the adaptive
reference solver (``pdmodel.irae.solvers._reference``) in the tests.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ...pk import TwoCompartmentPK, pk_step
from ...regimen import DosingGrid
from ...vocab import ORGANS, TARGETS
from .._equations import GI, N_PD, PatientPD, baseline_state, pd_rhs
from .._parameters import IraeModel
from .._rescue import INFLIXIMAB, ManagementPolicy

PD1, PDL1, CTLA4 = (TARGETS.index(t) for t in ("PD-1", "PD-L1", "CTLA-4"))
N_ORGAN = len(ORGANS)


class PatientInputs(NamedTuple):
    """Everything patient-specific the solver needs."""

    pk: TwoCompartmentPK  # [agent] individual PK parameters
    pd: PatientPD
    weight_kg: jnp.ndarray
    stop_day: jnp.ndarray
    z_threshold: jnp.ndarray  # [organ]


class Daily(NamedTuple):
    """Trajectories saved at the end of each day ``[day, ...]``."""

    concentration: jnp.ndarray  # [day, agent] mg/L
    state: jnp.ndarray  # [day, 9] E, P, A, D_organ
    max_injury: jnp.ndarray  # [day, organ] running maximum of D
    steroid: jnp.ndarray  # [day] prednisone-equivalent dose, mg/kg/day
    infliximab: jnp.ndarray  # [day] infliximab concentration, mg/L


class Events(NamedTuple):
    """Per-patient event times (days; ``inf`` = did not happen)."""

    onset: jnp.ndarray  # [organ, grade] first crossing of the patient's own thresholds
    resolution: jnp.ndarray  # [organ] back below grade 1 after a grade >= 2 onset
    steroid_start: jnp.ndarray  # []
    infliximab_doses: jnp.ndarray  # []


class _Carry(NamedTuple):
    x_pk: jnp.ndarray
    y: jnp.ndarray
    m: jnp.ndarray
    x_ifx: jnp.ndarray
    onset: jnp.ndarray
    resolution: jnp.ndarray
    start: jnp.ndarray
    next_check: jnp.ndarray
    n_ifx: jnp.ndarray
    stop: jnp.ndarray
    hold_from: jnp.ndarray
    taper_from: jnp.ndarray


def drug_effects(model: IraeModel, conc, ec50, targets, agent_weight):
    """CTLA-4 and PD-1/PD-L1 drug effects ``(f_C, f_P)`` from concentrations [agent] (mg/L).

    Competitive binding per target; each agent's bound share is weighted by its agent-level
    deviation from the class effect: ``f_X = Σ_i w_i·x_i / (1 + Σ_i x_i)``, ``x_i = C_i/EC50_i``
    (plain occupancy when all ``w_i = 1``).
    """
    x = jnp.maximum(conc, 0.0) / ec50
    load = x @ targets
    eff = ((x * agent_weight) @ targets) / (1.0 + load)
    return eff[CTLA4], eff[PD1] + model.rho_pdl1 * eff[PDL1]


def log_thresholds(model: IraeModel) -> jnp.ndarray:
    """Median log thresholds ``[organ, grade]`` (grade 1 at log 1 = 0)."""
    lt2 = model.log_gap2
    return jnp.stack([jnp.zeros_like(lt2), lt2, lt2 + model.log_gap3], axis=-1)


def simulate_patient(
    model: IraeModel,
    patient: PatientInputs,
    grid: DosingGrid,
    ec50: jnp.ndarray,
    targets: jnp.ndarray,
    agent_weight: jnp.ndarray,
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
    stop = patient.stop_day  # treatment duration; the policy may shorten it
    n_sub = grid.substeps
    vk = jax.vmap(partial(pk_step, mm=michaelis_menten, aligned=True),
                  in_axes=(0, 0, None, None, 0, 0, 0, 0))

    def pk_half(x_pk, k, stop, hold_from):
        day0 = grid.infusion_day[k]
        given = (day0 < stop) & ~(day0 >= hold_from)
        rate = jnp.where(given, grid.rate_mg[k] + grid.rate_mg_per_kg[k] * patient.weight_kg, 0.0)
        return vk(pk, x_pk, grid.cell_start[k], grid.cell_length[k], grid.offset_on[k],
                  grid.offset_off[k], rate, grid.first_dose)

    def effects(x_pk):
        conc = x_pk[:, 0] / pk.vc
        return drug_effects(model, conc, ec50, targets, agent_weight)

    def suppression(t, start, taper_from, x_ifx):
        dose = policy.steroid(t, start, taper_from)
        i_sys = model.steroid_imax * dose / (dose + model.steroid_ed50)
        c_ifx = jnp.maximum(x_ifx[0] / INFLIXIMAB.vc, 0.0)
        return i_sys, model.ifx_imax * c_ifx / (c_ifx + model.ifx_ec50)

    def step(c: _Carry, ji):
        j, i = ji
        t, t1 = grid.edges[j, i], grid.edges[j, i + 1]
        # padding sub-steps have zero length; the grid is shared by all patients, so under
        # vmap this predicate stays unbatched and the cond really skips the work
        return jax.lax.cond(t1 > t, advance, lambda c, *_: c, c, j, i, t, t1), None

    def advance(c: _Carry, j, i, t, t1):
        h = t1 - t
        half = 0.5 * h
        k = 2 * (j * n_sub + i)
        x1 = pk_half(c.x_pk, k, c.stop, c.hold_from)
        x2 = pk_half(x1, k + 1, c.stop, c.hold_from)
        if policy.enabled:
            q1 = pk_step(INFLIXIMAB, c.x_ifx, t, half, 0.0, 0.0, 0.0, 0.0, mm=False, aligned=True)
            q2 = pk_step(INFLIXIMAB, q1, t + half, half, 0.0, 0.0, 0.0, 0.0, mm=False,
                         aligned=True)
        else:
            q1 = q2 = c.x_ifx
        # steroid courses start on step boundaries, so the dose is smooth within a step;
        # evaluate it just inside the step so a course starting at t counts from t
        u0 = effects(c.x_pk) + suppression(t + 1e-9 * h, c.start, c.taper_from, c.x_ifx)
        um = effects(x1) + suppression(t + half, c.start, c.taper_from, q1)
        u1 = effects(x2) + suppression(t1 - 1e-9 * h, c.start, c.taper_from, q2)

        def f(y, u):
            return pd_rhs(model, patient.pd, y, *u)

        k1 = f(c.y, u0)
        k2 = f(c.y + half * k1, um)
        k3 = f(c.y + half * k2, um)
        k4 = f(c.y + h * k3, u1)
        y = c.y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        d = y[3:]
        m = jnp.maximum(c.m, d)
        crossed = d[:, None] >= theta
        onset = jnp.where(jnp.isinf(c.onset) & crossed, t1, c.onset)
        has_g2 = jnp.isfinite(onset[:, 1])
        healed = has_g2 & jnp.isinf(c.resolution) & (d < theta[:, 0])
        resolution = jnp.where(healed, t1, c.resolution)
        start, next_check, n_ifx, q = c.start, c.next_check, c.n_ifx, q2
        stop_now, hold_from, taper_from = c.stop, c.hold_from, c.taper_from
        active = jnp.any(has_g2 & jnp.isinf(resolution))
        if policy.enabled:
            # full dose until improvement (and at least full_dose_days), then taper
            improved = jnp.isfinite(c.start) & (t1 >= c.start + policy.full_dose_days) & ~active
            taper_from = jnp.where(jnp.isinf(taper_from) & improved, t1, taper_from)
        if policy.enabled and policy.discontinue_grade:
            worst = jnp.min(onset[:, policy.discontinue_grade - 1])
            stop_now = jnp.minimum(stop_now, worst)
        if policy.enabled and policy.hold_at_grade2:
            tapered = t1 >= taper_from + policy.taper_days
            hold_from = jnp.where(active | (jnp.isfinite(hold_from) & ~tapered),
                                  jnp.minimum(hold_from, t1), jnp.inf)
        if policy.enabled:
            first = jnp.min(onset[:, policy.trigger_grade - 1])
            aligned = jnp.ceil((first + policy.delay_days) * steps_per_day - 1e-6) / steps_per_day
            new_start = jnp.where(jnp.isinf(start) & jnp.isfinite(first), aligned, start)
            next_check = jnp.where(jnp.isinf(start) & jnp.isfinite(new_start),
                                   new_start + policy.escalate_after_days, next_check)
            start = new_start
            due = t1 >= next_check
            gi_active = d[GI] >= theta[GI, 1]
            give = due & gi_active & (n_ifx < policy.max_infliximab_doses)
            dose = policy.infliximab_dose * patient.weight_kg
            q = q.at[0].add(jnp.where(give, dose, 0.0))
            n_ifx = n_ifx + give
            next_check = jnp.where(due, jnp.where(give, next_check + 14.0, jnp.inf), next_check)
        return _Carry(x2, y, m, q, onset, resolution, start, next_check, n_ifx, stop_now,
                      hold_from, taper_from)

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
            c = jax.lax.cond(grid.edges[j, steps_per_day] < j + 1.0 - 1e-9, split_day,
                             plain_day, c, j)
        dose = policy.steroid(j + 1.0, c.start, c.taper_from)
        out = Daily(c.x_pk[:, 0] / pk.vc, c.y, c.m, dose, c.x_ifx[0] / INFLIXIMAB.vc)
        return c, out

    dtype = jnp.result_type(float)
    n_agent = grid.first_dose.shape[0]
    init = _Carry(
        x_pk=jnp.zeros((n_agent, 2), dtype), y=baseline_state(patient.pd).astype(dtype),
        m=jnp.zeros(N_ORGAN, dtype), x_ifx=jnp.zeros(2, dtype),
        onset=jnp.full((N_ORGAN, 3), jnp.inf, dtype), resolution=jnp.full(N_ORGAN, jnp.inf, dtype),
        start=jnp.asarray(jnp.inf, dtype), next_check=jnp.asarray(jnp.inf, dtype),
        n_ifx=jnp.asarray(0, jnp.int32), stop=jnp.asarray(stop, dtype),
        hold_from=jnp.asarray(jnp.inf, dtype), taper_from=jnp.asarray(jnp.inf, dtype),
    )
    assert init.y.shape == (N_PD,)
    final, daily = jax.lax.scan(jax.checkpoint(day), init, jnp.arange(grid.n_days))
    return daily, Events(final.onset, final.resolution, final.start, final.n_ifx)
