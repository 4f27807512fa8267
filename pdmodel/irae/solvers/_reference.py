"""Adaptive reference solver of the full model (one patient), for accuracy checks.

The same equations as the fast solver, solved as one ODE system (PK of every agent + PD) with
diffrax ``Tsit5`` and a PID controller that steps exactly to every infusion start/stop and to
the corners of a prescheduled steroid course. No state-triggered rescue (use the fast solver
for policies); a course can be given by its start day.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lazy_loader as _lazy
from jaxtyping import Array, Float

from ...pk import SolverOptions
from ...regimen import DosingGrid
from .._equations import baseline_state, drug_effects, pd_rhs, steroid_suppression
from .._parameters import IraeModel
from .._rescue import ManagementPolicy
from ._full import PatientInputs
from ._step import infusion_rate

diffrax = _lazy.load("diffrax")  # imported on first solve: the library starts fast

REFERENCE_OPTIONS = SolverOptions(rtol=1e-10, atol=1e-12)
"""Default tolerances of the reference solver (tight: it is the yardstick of the others)."""


def reference_states(
    model: IraeModel,
    patient: PatientInputs,
    grid: DosingGrid,
    ec50: Float[Array, " agent"],
    targets: Float[Array, "agent target"],
    agent_weight: Float[Array, " agent"],
    ts,
    *,
    steroid_start=jnp.inf,
    policy: ManagementPolicy | None = None,
    options: SolverOptions = REFERENCE_OPTIONS,
):
    """PK amounts ``[t, agent, 2]`` and PD state ``[t, 9]`` at ``ts`` (days) for one patient.

    Arguments as for :func:`pdmodel.irae.solvers.simulate_patient` (``IraeProblem.reference``
    fills them from a prepared regimen); ``patient`` is one element of
    ``problem.patient_inputs(model, population)``; the steroid course of ``policy`` starts at
    ``steroid_start`` (``inf``: none) and tapers after ``policy.full_dose_days``.
    """
    pk = patient.pk
    cell_on = grid.cell_start[:, None] + grid.offset_on
    cell_off = grid.cell_start[:, None] + grid.offset_off
    rate = infusion_rate(grid, slice(None), patient.weight_kg, patient.stop_day)  # [cell, agent]
    n_agent = grid.first_dose.shape[0]
    policy = ManagementPolicy() if policy is None else policy  # no array made on import
    taper_from = steroid_start + policy.full_dose_days
    corners = steroid_start + jnp.array([0.0, policy.full_dose_days,
                                         policy.full_dose_days + policy.taper_days])
    jump_ts = jnp.sort(jnp.concatenate([cell_on.ravel(), cell_off.ravel(), corners]))

    def field(t, y, args):
        x = y[: 2 * n_agent].reshape(n_agent, 2)
        pd = y[2 * n_agent:]
        infusing = (t >= cell_on) & (t < cell_off)
        r = jnp.sum(jnp.where(infusing, rate, 0.0), axis=0)
        conc = x[:, 0] / pk.vc
        cl = jax.vmap(lambda p, tt: p.clearance(tt))(pk, t - grid.first_dose)
        elim = cl * conc + pk.vmax * jnp.maximum(conc, 0.0) / (pk.km + jnp.maximum(conc, 0.0))
        dist = pk.q * (conc - x[:, 1] / pk.vp)
        dx = jnp.stack([r - elim - dist, dist], axis=-1)
        f_c, f_p = drug_effects(model, conc, ec50, targets, agent_weight)
        i_sys = steroid_suppression(model, policy.steroid(t, steroid_start, taper_from))
        dpd = pd_rhs(model, patient.pd, pd, f_c, f_p, i_sys, 0.0, patient.refractory_gi)
        return jnp.concatenate([dx.ravel(), dpd])

    y0 = jnp.concatenate([jnp.zeros(2 * n_agent), baseline_state(patient.pd)])
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=options.rtol, atol=options.atol), jump_ts=jump_ts)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=None, y0=y0,
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller,
        max_steps=options.max_steps,
    )
    ys = sol.ys
    return ys[:, : 2 * n_agent].reshape(len(ts), n_agent, 2), ys[:, 2 * n_agent:]
