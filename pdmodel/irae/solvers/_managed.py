"""The likelihood's managed course: a management policy's expected effect on each virtual
patient, smooth in the parameters (docs/model.md §5.9).

The full solver (:func:`pdmodel.irae.solvers.simulate_patient`) starts a patient's steroid
course when the injury crosses that patient's own grade threshold: the result is piecewise
constant in the parameters and has no useful gradient. Here each patient keeps the residual
threshold noise ``τ`` of :func:`pdmodel.irae.per_patient_incidence` unresolved, so every event
becomes a probability that moves smoothly with the parameters:

* trigger: organ ``o`` has reached the policy's trigger grade ``g`` by ``t`` with probability
  ``s_o(t) = Φ((log M_o(t) − log θ_og)/τ)`` (``M`` the running maximum of injury, ``θ`` the
  patient's threshold without the residual); the patient's course has started with probability
  ``s(t) = 1 − Π_o (1 − s_o(t))``;
* course: the newly triggered probability mass of each step enters a chain of compartments:
  the delay to the first dose (mean ``delay_days``), the full dose (two compartments, mean
  ``full_dose_days``), the linear taper (four compartments of ``taper_days/4`` at 7/8, 5/8,
  3/8 and 1/8 of the dose);
* two courses of the PD state are stepped side by side: *without steroids*, which sets the
  triggers (no patient has had steroids before its trigger), and *on the course*, whose
  systemic suppression is the expected one among the patients triggered so far,
  ``i_sys = Σ_k c_k·I(d_k) / (s + 10⁻³)`` (``c_k`` the probability of being in compartment ``k``,
  ``I`` the steroid Imax model); grades above the trigger grade, the injury at the horizon
  (resolution) and the infliximab check come from the treated course;
* infliximab: the GI-triggered mass is checked after ``delay_days + escalate_after_days``
  (exponential); the fraction still at the trigger grade then (conditional on having reached
  it) is the probability of infliximab, in two parts (``f = steroid_refractory_gi``): the
  steroid-refractory share ``f`` reads the course without steroids, with the GI threshold
  integrated over patients (``√(σ² + τ²)``; exact there, since that course does not depend on
  when the patient's steroids started); the responders ``1 − f`` read the course on steroids
  at the patient's own threshold (residual ``τ``), the threshold that started it. Infliximab's
  effect: the patient's own GI-triggered mass (own threshold, as the steroid trigger) waits
  for the same check and is infused in the share ``f·P_own(natural) + (1 − f)·P_own(treated)``
  still at the trigger grade, and once more
  :data:`~pdmodel.irae.solvers._full.INFLIXIMAB_INTERVAL` days later (exponential) in the share
  still at the trigger grade then (not conditioned on the first check). The amounts, per kg of
  the patient's weight, follow the infliximab PK exactly (:func:`pdmodel.pk.pk_step`, as the
  full solver); the treated course's GI drive is suppressed by the expected effect among the
  triggered, ``i_GI = (r/(s + 10⁻³))·I_ifx(C)``, ``r`` the patient's infused probability and
  ``C = x_c·w/(V_c·r)`` the infused patients' mean concentration.

The course does not hold or stop the checkpoint inhibitor (the trials' treatment durations
already include stops for toxicity) and does not lengthen the full dose until improvement (the
chain's mean course, ``full_dose_days + taper_days``, stands for it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from jax.scipy.special import log_ndtr, ndtr
from jaxtyping import Array, Float

from ...numerics import LOG_FLOOR
from ...pk import pk_step
from .._equations import GI, PatientPD, baseline_state, fusion_fence, pd_rates
from .._parameters import IraeModel
from .._rescue import INFLIXIMAB, ManagementPolicy
from ._full import INFLIXIMAB_INTERVAL
from ._likelihood import RateConstants
from ._step import rk4_step

TAPER_LEVELS = (7 / 8, 5 / 8, 3 / 8, 1 / 8)
"""Dose of each taper compartment, fraction of the full dose (midpoints of a linear taper)."""

TRIGGERED_FLOOR = 1e-3
"""Added to the trigger probability in the treated course's suppression, ``c/(s + floor)``:
the first, vanishingly improbable triggers do not set the course of a patient (and would make
it a noisy function of the parameters)."""

MIN_STAGE_DAYS = 0.5
"""Shortest mean residence of a compartment, days: faster rates would leave RK4's region of
stability on the likelihood's steps (a shorter delay is taken as this)."""


class CourseChain(NamedTuple):
    """A steroid course as a chain of compartments ``[compartment]`` (delay, full dose, taper),
    the infliximab checks and infliximab's effect."""

    rate: Float[Array, " compartment"]  # outflow rate of each compartment, 1/day
    suppression: Float[Array, " compartment"]  # i_sys while in it (0-1)
    check_rate: Float[Array, ""]  # 1/day: GI trigger to the infliximab check
    ifx_doses: Float[Array, " 2"]  # mg/kg of the first and the second infusion (0: none)
    ifx_imax: Float[Array, ""]  # maximal suppression of the GI drive (0-1)
    ifx_ec50: Float[Array, ""]  # µg/mL
    refractory_gi: Float[Array, ""]  # steroid-refractory share of GI courses (0-1)

    @classmethod
    def of(cls, model: IraeModel, policy: ManagementPolicy) -> CourseChain:
        """The chain of ``policy``'s course with ``model``'s steroid and infliximab effects."""
        full = jnp.asarray(policy.steroid_dose)
        dose = jnp.stack([0.0 * full, full, full, *(lv * full for lv in TAPER_LEVELS)])
        days = jnp.stack([jnp.asarray(policy.delay_days, full.dtype)]
                         + [0.5 * policy.full_dose_days] * 2 + [0.25 * policy.taper_days] * 4)
        rate = 1.0 / jnp.maximum(days, MIN_STAGE_DAYS)
        supp = model.steroid_imax * dose / (dose + model.steroid_ed50)
        check = 1.0 / jnp.maximum(policy.delay_days + policy.escalate_after_days,
                                  MIN_STAGE_DAYS)
        ifx = jnp.stack([jnp.asarray(policy.infliximab_dose, full.dtype)
                         * (policy.max_infliximab_doses > k) for k in range(2)])
        return cls(rate, supp, check, ifx, jnp.asarray(model.ifx_imax),
                   jnp.asarray(model.ifx_ec50), jnp.asarray(model.steroid_refractory_gi))


class ManagedOutcome(NamedTuple):
    """One patient's managed course at the horizon (probabilities over the residual ``τ``)."""

    natural_max: Float[Array, " organ"]  # running maximum of injury without steroids
    treated_max: Float[Array, " organ"]  # running maximum of injury on the course
    final_injury: Float[Array, " organ"]  # injury at the horizon on the course
    steroid: Float[Array, ""]  # probability the steroid course has been triggered
    infliximab: Float[Array, ""]  # probability of infliximab (GI still at the trigger grade)


def _peak(y0, y1, y2, h1, h2):
    """Maximum of the parabola through three successive values ``y0, y1, y2`` (``[organ]``) at
    step lengths ``h1``, ``h2`` where ``y1`` is a local maximum, else ``y2``.

    A running maximum over the steps jumps in its gradient whenever the step holding the
    maximum changes, by ``h·|D''|·|dt*/dθ|`` at a peak moving in time: on the course the
    steroids turn the injury round sharply, and those jumps broke the Laplace Hessian of a fit
    with managed arms (asymmetry 800). The parabola's vertex moves smoothly with the three
    values; the jumps left where two triples exchange the peak are smaller by about ``h``.
    """
    d1, d2 = y0 - y1, y2 - y1  # both ≤ 0 at a local maximum
    den = h1 * h2 * (h1 + h2)
    den = jnp.where(den > 0, den, 1.0)  # padded steps of length 0: no peak, no NaN gradient
    curv = (h1 * d2 + h2 * d1) / den  # parabola y1 + b·x + a·x², a < 0
    slope = (h1**2 * d2 - h2**2 * d1) / den
    peak = (d1 <= 0) & (d2 <= 0) & (curv < 0) & (h1 > 0) & (h2 > 0)
    safe = jnp.where(peak, curv, -1.0)
    return jnp.where(peak, y1 - slope**2 / (4 * safe), y2)


def _chain_rates(chain: CourseChain, c):
    """``dc/dt`` of the course chain (mass flows from each compartment to the next; the last
    one empties)."""
    out = chain.rate * c
    return jnp.concatenate([jnp.zeros_like(out[:1]), out[:-1]]) - out


def managed_course(rates: RateConstants, pd: PatientPD, effects: Float[Array, "step 3 2"],
                   edges: Float[Array, " step1"], chain: CourseChain,
                   log_theta: Float[Array, " organ"], tau: Float[Array, ""],
                   gi_log_theta: Float[Array, ""], gi_spread: Float[Array, ""],
                   weight_kg: Float[Array, ""]) -> ManagedOutcome:
    """One patient's smooth managed course over the steps ``edges`` (RK4, as
    :func:`pdmodel.irae.solvers.max_injury_course`).

    ``effects``: :func:`stage_effects` ``[step, 3, 2]``; ``edges``: step boundaries
    ``[step + 1]`` (days); ``chain``: :meth:`CourseChain.of`; ``log_theta``: the patient's log
    threshold of the trigger grade ``[organ]``; ``tau``: residual threshold SD (log);
    ``gi_log_theta``, ``gi_spread``: median log threshold of the GI trigger grade and its SD
    over patients (``sqrt(σ² + τ²)``), for the steroid-refractory share's infliximab check on
    the course without steroids, which integrates the threshold out as the likelihood's
    incidence does; ``weight_kg``: body weight (infliximab's mg/kg dose).
    """

    carry, _ = _managed_scan(rates, pd, effects, edges, chain, log_theta, tau, gi_log_theta,
                             gi_spread, weight_kg, record=False)
    (_, treated, _, s), m_nat, m_trt = carry[:3]
    return ManagedOutcome(m_nat, m_trt, treated[3], s, carry[3].infused)


class _Infliximab(NamedTuple):
    """The infliximab part of the managed course's carry: the probability reported (module
    docstring: two parts) and the patient's own infusions (the effect)."""

    infused: Float[Array, ""]  # probability of an infusion (the probability reported)
    queue: Float[Array, ""]  # GI-triggered mass waiting for the check, threshold integrated out
    gi_triggered: Float[Array, ""]  # its P(GI at the trigger grade) after the last step
    amounts: Float[Array, " 2"]  # the patient's expected amounts (central, peripheral), mg/kg
    own_infused: Float[Array, ""]  # the patient's probability of an infusion (r)
    own_queue: Float[Array, ""]  # the patient's GI-triggered mass waiting for the check
    own_second_queue: Float[Array, ""]  # the patient's infused mass waiting for the second
    own_gi_triggered: Float[Array, ""]  # the patient's P(GI at the trigger grade)


def _managed_scan(rates, pd, effects, edges, chain, log_theta, tau, gi_log_theta, gi_spread,
                  weight_kg, *, record: bool):
    """The scan of :func:`managed_course`: its final carry and, with ``record``, both running
    maxima after every step ``[step, 2, organ]`` (else None)."""
    dtype = effects.dtype
    ifx_pk = jax.tree.map(lambda a: jnp.asarray(a, dtype), INFLIXIMAB)
    conc_per_amount = weight_kg / ifx_pk.vc  # µg/mL per mg/kg in the central compartment

    def pd_part(y, u, i_sys, i_gi):
        return pd_rates(rates, pd, y[0], y[1], y[2], y[3], u[0], u[1], i_sys, i_gi)

    def f(y, u):
        natural, treated, c, s = y
        eff, ifx_effect = u
        # expected suppression among the patients whose course has been triggered
        i_sys = jnp.dot(c, chain.suppression) / (s + TRIGGERED_FLOOR)
        i_gi = ifx_effect / (s + TRIGGERED_FLOOR)
        return (pd_part(natural, eff, 0.0, 0.0), pd_part(treated, eff, i_sys, i_gi),
                _chain_rates(chain, c), jnp.zeros_like(s))

    def ifx_effect(amounts, infused):
        """``r·I_ifx(C)`` with ``C = x_c·w/(V_c·r)`` the infused patients' mean concentration
        (no division by a vanishing ``r``)."""
        x = jnp.maximum(amounts[0], 0.0) * conc_per_amount
        return chain.ifx_imax * infused * x / (x + chain.ifx_ec50 * infused + 1e-30)

    def slope(k):
        return checkpoint_name(fusion_fence(k), "slope")

    def margin(m, log_th=log_theta, sd=tau):
        return (jnp.log(jnp.maximum(m, LOG_FLOOR)) - log_th) / sd

    def triggered(m, log_th=log_theta, sd=tau):  # probability the trigger grade is reached
        return ndtr(margin(m, log_th, sd))

    def still_at(d, log_th, sd, reached):  # P(injury d at the grade | the grade was reached)
        return jnp.minimum(triggered(d, log_th, sd) / jnp.maximum(reached, LOG_FLOOR), 1.0)

    def body(carry, xs):
        y, m_nat, m_trt, ifx, log_free, (d_nat, d_trt, h_prev) = carry
        h, u = xs
        # infliximab amounts through the step, exactly (linear PK; doses come after the step)
        half = 0.5 * h
        mid = pk_step(ifx_pk, ifx.amounts, 0.0, half, 0.0, 0.0, 0.0, 0.0, mm=False,
                      aligned=True)
        end = pk_step(ifx_pk, mid, 0.0, half, 0.0, 0.0, 0.0, 0.0, mm=False, aligned=True)
        g = [ifx_effect(a, ifx.own_infused) for a in (ifx.amounts, mid, end)]
        natural, treated, c, s = rk4_step(f, y, h, (u[0], g[0]), (u[1], g[1]), (u[2], g[2]),
                                          stage=slope, state=fusion_fence)
        # running maxima through the parabola at each interior peak (_peak); y[0], y[1] are
        # the injuries one and two steps back
        m_nat = jnp.maximum(m_nat, _peak(d_nat, y[0][3], natural[3], h_prev, h))
        m_trt = jnp.maximum(m_trt, _peak(d_trt, y[1][3], treated[3], h_prev, h))
        # triggers come from the course without steroids (no patient has had any before);
        # log P(not triggered) = Σ_o log(1 − s_o), and the newly triggered mass
        # exp(L_old)·(1 − exp(L_new − L_old)), without cancellation while it is small
        margins = margin(m_nat)
        log_free_new = jnp.sum(log_ndtr(-margins))  # ≤ log_free: M^nat only grows
        new = jnp.exp(log_free) * -jnp.expm1(log_free_new - log_free)
        c = c.at[0].add(new)
        # GI-triggered mass waits for the check; there the share still at the trigger grade
        # (given it was reached) is infused: the probability reported, and the patient's own
        # infusions, whose infused mass has a second check
        gi = triggered(m_nat[GI], gi_log_theta, gi_spread)
        leave = -jnp.expm1(-h * chain.check_rate)
        queue = ifx.queue + (gi - ifx.gi_triggered)  # ≥ 0: M^nat only grows
        own_gi = ndtr(margins[GI])
        own_queue = ifx.own_queue + (own_gi - ifx.own_gi_triggered)
        # still at the trigger grade at the check, given it was reached: steroid responders
        # on the treated course at the patient's own threshold; the steroid-refractory share
        # on the course without steroids, whose check integrates the threshold out exactly
        # (that course does not depend on when the patient's steroids started)
        responders = still_at(treated[3][GI], log_theta[GI], tau, own_gi)
        refractory = still_at(natural[3][GI], log_theta[GI], tau, own_gi)
        refractory_pop = still_at(natural[3][GI], gi_log_theta, gi_spread, gi)
        f_ref = chain.refractory_gi
        still = f_ref * refractory + (1.0 - f_ref) * responders  # the patient's own, ≤ 1
        own_first = own_queue * leave * still  # ≤ the mass leaving
        second = ifx.own_second_queue + own_first
        own_second = second * -jnp.expm1(-h / INFLIXIMAB_INTERVAL)
        dose = own_first * chain.ifx_doses[0] + own_second * still * chain.ifx_doses[1]
        infused = leave * (f_ref * queue * refractory_pop
                           + (1.0 - f_ref) * own_queue * responders)
        ifx = _Infliximab(ifx.infused + infused, queue * (1.0 - leave), gi,
                          end.at[0].add(dose), ifx.own_infused + own_first,
                          own_queue * (1.0 - leave), second - own_second, own_gi)
        state = (natural, treated, c, -jnp.expm1(log_free_new))
        back = (y[0][3], y[1][3], h)
        return (state, m_nat, m_trt, ifx, log_free_new, back), (
            jnp.stack([m_nat, m_trt]) if record else None)

    b = baseline_state(pd).astype(dtype)
    zero = jnp.zeros((), dtype)
    state = (b[0], b[1], b[2], b[3:])
    y0 = (state, state, jnp.zeros_like(chain.suppression, dtype), zero)
    body = jax.checkpoint(body, prevent_cse=False,
                          policy=jax.checkpoint_policies.save_only_these_names("slope"))
    m0 = jnp.zeros_like(b[3:])
    back = (b[3:], b[3:], jnp.ones((), dtype))  # no peak at the first step
    ifx0 = _Infliximab(zero, zero, zero, jnp.zeros(2, dtype), zero, zero, zero, zero)
    return jax.lax.scan(body, (y0, m0, m0, ifx0, zero, back), (jnp.diff(edges), effects))


def managed_running_max(rates: RateConstants, pd: PatientPD, effects: Float[Array, "step 3 2"],
                        edges: Float[Array, " step1"], chain: CourseChain,
                        log_theta: Float[Array, " organ"], tau: Float[Array, ""],
                        gi_log_theta: Float[Array, ""], gi_spread: Float[Array, ""],
                        weight_kg: Float[Array, ""]) -> Float[Array, "step 2 organ"]:
    """Running maxima of injury after every step of :func:`managed_course` (arguments as
    there) ``[step, course, organ]``: course 0 without steroids, 1 on the managed course
    (predictions by day; forward mode only)."""
    return _managed_scan(rates, pd, effects, edges, chain, log_theta, tau, gi_log_theta,
                         gi_spread, weight_kg, record=True)[1]
